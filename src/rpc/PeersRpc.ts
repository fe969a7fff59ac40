/**
 * The node's peers over RPC: anyone may look; only the operator may dial, follow or forget a peer
 * (a signed command under the operator keys named at genesis).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Authority, operator, SignedCommands, signedFields } from "../domain/CommandAuthority.js"
import { PeersError, PeersView, PeerView } from "../net/Peers.js"

export class PeersRpcs extends RpcGroup.make(
  Rpc.make("PeersList", { success: PeersView }),
  Rpc.make("PeersAdd", {
    payload: { address: Schema.String, follow: Schema.Boolean, ...signedFields },
    success: PeerView,
    error: PeersError
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("PeersRemove", {
    payload: { peerId: Schema.String, ...signedFields },
    success: Schema.Boolean,
    error: PeersError
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
