/**
 * The node's own RPC contract: who it is, where its journal stands, and the audit it can run on
 * itself (chain verification, replay against live state).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { DeadLetter } from "../events/Checkpoints.js"

export const ChainHeadView = Schema.Struct({ position: Schema.Number, hash: Schema.String })

export const PolicyView = Schema.Struct({ name: Schema.String, checkpoint: Schema.Number, lag: Schema.Number })

export const NodeInfoView = Schema.Struct({
  nodeId: Schema.String,
  publicKey: Schema.String,
  version: Schema.String,
  dataDir: Schema.String,
  startedAt: Schema.String,
  head: ChainHeadView,
  /** The network id signed commands must name, and the operator keys (k of n) named at genesis. */
  network: Schema.NullOr(Schema.String),
  operators: Schema.Array(Schema.String),
  operatorThreshold: Schema.Number,
  /** Each policy's checkpoint, and its lag: events of the log it has still to look at. */
  policies: Schema.Array(PolicyView),
  /** Events a policy gave up on after its retries (all of them counted, the newest shown). */
  deadLetterCount: Schema.Number,
  deadLetters: Schema.Array(DeadLetter)
})

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

/**
 * One subsystem's books against the ledger: `expected` is the rUv the subsystem says it keeps (the
 * pool's reserve, stakers' active + unbonding stake, open auctions' deposits), `actual` the balance of
 * the ledger accounts that should hold it. A book is one line; an account of it that disagrees gets a
 * line of its own, so drift between two stakers shows even when the totals agree.
 */
export const BookLine = Schema.Struct({ book: Schema.String, expected: Schema.BigInt, actual: Schema.BigInt, ok: Schema.Boolean })
export type BookLine = typeof BookLine.Type

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
    burned: Schema.BigInt,
    conserved: Schema.Boolean
  }),
  books: Schema.Array(BookLine)
})
export type ReplayReportView = typeof ReplayReportView.Type

export const ExplainKind = Schema.Literal("auction", "proposal", "account")
export type ExplainKind = typeof ExplainKind.Type

export const ExplainView = Schema.Struct({
  kind: ExplainKind,
  id: Schema.String,
  streamId: Schema.String,
  events: Schema.Array(Schema.Struct({
    position: Schema.Number,
    streamVersion: Schema.Number,
    hash: Schema.String,
    eventType: Schema.String,
    recordedAt: Schema.String,
    commandId: Schema.NullOr(Schema.String),
    causationId: Schema.NullOr(Schema.String),
    payload: Schema.Unknown
  })),
  /** One paragraph: why the entity is in the state it is in, from its events alone. */
  why: Schema.String,
  /** The facts the paragraph states, as JSON (amounts as decimal strings). */
  facts: Schema.Unknown
})
export type ExplainView = typeof ExplainView.Type

export class EntityNotFound extends Schema.TaggedError<EntityNotFound>()("EntityNotFound", { kind: Schema.String, id: Schema.String }) {
  override get message() {
    return `no ${this.kind} ${this.id} in the journal`
  }
}

export class NodeRpcs extends RpcGroup.make(
  Rpc.make("NodeInfo", { success: NodeInfoView }),
  Rpc.make("JournalHead", { success: ChainHeadView }),
  Rpc.make("AuditVerify", { success: ChainReportView }),
  Rpc.make("AuditReplay", { success: ReplayReportView }),
  Rpc.make("AuditExplain", { payload: { kind: ExplainKind, id: Schema.String }, success: ExplainView, error: EntityNotFound })
) {}
