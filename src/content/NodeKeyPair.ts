/**
 * A node's Ed25519 key pair made from its seed, with node:crypto alone: the journal's writer thread
 * signs heads with it and loads no Effect runtime (NodeKey.ts is the service that stores the key).
 */
import * as crypto from "node:crypto"
import type { NodeId } from "../domain/Ids.js"

export interface NodeKeyPair {
  readonly nodeId: NodeId
  readonly publicKey: string
  readonly sign: (message: Uint8Array | string) => string
  /** The private seed, for this process's own worker threads (the journal writer); never leaves the process. */
  readonly seed: Uint8Array
}

// DER prefixes that wrap a raw 32-byte Ed25519 seed / public key for node:crypto.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex")
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex")

export const nodeIdOf = (publicKeyHex: string): NodeId =>
  crypto.createHash("sha256").update(Buffer.from(publicKeyHex, "hex")).digest("hex").slice(0, 32) as NodeId

export const keyPairFromSeed = (seed: Uint8Array): NodeKeyPair => {
  const privateKey = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" })
  const spki = crypto.createPublicKey(privateKey).export({ format: "der", type: "spki" })
  const publicKey = spki.subarray(SPKI_PREFIX.length).toString("hex")
  return {
    nodeId: nodeIdOf(publicKey),
    publicKey,
    seed: Uint8Array.from(seed),
    sign: (message) =>
      crypto.sign(null, typeof message === "string" ? Buffer.from(message) : message, privateKey).toString("hex")
  }
}
