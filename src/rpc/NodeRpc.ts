/**
 * The node's own RPC contract: who it is, where its journal stands, the audit it can run on itself
 * (chain verification, replay against live state), and its policies' dead letters, which only the
 * network's operators retry or clear.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Authority, operator, SignedCommands, signedFields } from "../domain/CommandAuthority.js"
import { DeadLetter } from "../events/Checkpoints.js"
import { DeadLetterNotFound, DeadLettersView, DeadLetterTarget, RetryOutcome } from "../events/DeadLetters.js"
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
  }),
  Rpc.make("DeadLetterList", {
    payload: { limit: Schema.Number.pipe(Schema.int(), Schema.between(1, 10_000)) },
    success: DeadLettersView
  }),
  Rpc.make("DeadLetterRetry", {
    payload: { target: DeadLetterTarget, ...signedFields },
    success: Schema.Array(RetryOutcome),
    error: DeadLetterNotFound
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("DeadLetterClear", {
    payload: { target: DeadLetterTarget, ...signedFields },
    success: Schema.Array(DeadLetter),
    error: DeadLetterNotFound
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
