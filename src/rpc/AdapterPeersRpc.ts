/**
 * The node's adapter swarm over RPC: anyone may look at who holds which adapter; pulling one from
 * peers and publishing a quality report are signed commands any key may send (what is pulled is
 * checked against its publisher's signature, and a report carries its reporter's own).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { anyKey, Authority, SignedCommands, signedFields } from "../domain/CommandAuthority.js"
import { AdapterPullReceipt, AdapterReportReceipt, AdapterSwarmView } from "../net/AdapterSwarm.js"
import { PeersError } from "../net/Peers.js"

export class AdapterPeersRpcs extends RpcGroup.make(
  Rpc.make("AdapterPeersList", { success: AdapterSwarmView, error: PeersError }),
  Rpc.make("AdapterPeersPull", {
    payload: { id: Schema.String, version: Schema.optional(Schema.String), ...signedFields },
    success: AdapterPullReceipt,
    error: PeersError
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("AdapterPeersReport", {
    /** The seed's AdapterReport, encoded and signed by its reporter, as hex. */
    payload: { report: Schema.String.pipe(Schema.maxLength(8192)), ...signedFields },
    success: AdapterReportReceipt,
    error: PeersError
  }).middleware(SignedCommands).annotate(Authority, anyKey)
) {}
