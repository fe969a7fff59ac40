/**
 * The node's own RPC contract: who it is, where its journal stands, and the audit it can run on
 * itself (chain verification, replay against live state).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"

export const ChainHeadView = Schema.Struct({ position: Schema.Number, hash: Schema.String })

export const NodeInfoView = Schema.Struct({
  nodeId: Schema.String,
  publicKey: Schema.String,
  version: Schema.String,
  dataDir: Schema.String,
  startedAt: Schema.String,
  head: ChainHeadView
})

export const ChainReportView = Schema.Struct({
  ok: Schema.Boolean,
  eventsChecked: Schema.Number,
  headsChecked: Schema.Number,
  head: ChainHeadView,
  firstBadPosition: Schema.NullOr(Schema.Number),
  problem: Schema.NullOr(Schema.String),
  signers: Schema.Array(Schema.String)
})

export const ReplayReportView = Schema.Struct({
  ok: Schema.Boolean,
  head: ChainHeadView,
  actors: Schema.Array(
    Schema.Struct({
      category: Schema.String,
      entities: Schema.Number,
      mismatches: Schema.Array(Schema.Struct({ entityId: Schema.String, live: Schema.Unknown, replayed: Schema.Unknown }))
    })
  ),
  supply: Schema.Struct({
    minted: Schema.BigInt,
    available: Schema.BigInt,
    held: Schema.BigInt,
    inFlight: Schema.BigInt,
    conserved: Schema.Boolean
  })
})
export type ReplayReportView = typeof ReplayReportView.Type

export class NodeRpcs extends RpcGroup.make(
  Rpc.make("NodeInfo", { success: NodeInfoView }),
  Rpc.make("JournalHead", { success: ChainHeadView }),
  Rpc.make("AuditVerify", { success: ChainReportView }),
  Rpc.make("AuditReplay", { success: ReplayReportView })
) {}
