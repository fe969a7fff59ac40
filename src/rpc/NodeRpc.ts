/**
 * The node's own RPC contract: who it is, where its journal stands, and the audit it can run on
 * itself (chain verification, replay against live state).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { EntityNotFound, ExplainKind, ExplainView, ReplayReportView } from "../layers/NodeAudit.js"
import { ChainHeadView, NodeInfoView } from "../layers/NodeStatus.js"

export const ChainReportView = Schema.Struct({
  ok: Schema.Boolean,
  eventsChecked: Schema.Number,
  headsChecked: Schema.Number,
  head: ChainHeadView,
  firstBadPosition: Schema.NullOr(Schema.Number),
  problem: Schema.NullOr(Schema.String),
  signers: Schema.Array(Schema.String),
  /** Distinct signed commands whose signatures, network and authority were checked. */
  commandsChecked: Schema.Number,
  /** Debits, holds, stakes, votes, bids and proposals checked to come from their owner's command. */
  ownerEventsChecked: Schema.Number
})
export type ChainReportView = typeof ChainReportView.Type

export class NodeRpcs extends RpcGroup.make(
  Rpc.make("NodeInfo", { success: NodeInfoView }),
  Rpc.make("JournalHead", { success: ChainHeadView }),
  Rpc.make("AuditVerify", { success: ChainReportView }),
  Rpc.make("AuditReplay", { success: ReplayReportView }),
  Rpc.make("AuditExplain", {
    payload: { kind: ExplainKind, id: Schema.String },
    success: ExplainView,
    error: EntityNotFound
  })
) {}
