/**
 * Calling a node from another program: the node's RPC groups (`NodeApiRpcs`), the protocols to
 * reach it (WebSocket or HTTP), and signed commands (every state change is signed by its owner's
 * Ed25519 key: `signingClientLayer` signs them as the client sends them).
 *
 * @packageDocumentation
 * @module edge-net/rpc
 */
export { CommandRefused } from "../domain/CommandAuthority.js"
export { accountIdOf, ed25519 } from "../domain/Ed25519.js"
export type { Ed25519 } from "../domain/Ed25519.js"
export { CommandAuth, commandMessage, signCommand, StoredCommand } from "../domain/SignedCommand.js"
export type { SigningKey } from "../domain/SignedCommand.js"
export { authFor, CurrentSigner, signingAs, signingClientLayer } from "./CommandSigning.js"
export type { CommandSigner } from "./CommandSigning.js"
export { ModelsRpcs, NodePullEvent, TrustedKeyView } from "./ModelsRpc.js"
export { NodeApiRpcs } from "./NodeApiRpcs.js"
export { httpProtocol, socketProtocol } from "./NodeConnection.js"
