/**
 * Federated rounds over RPC. The coordinator opens and aggregates its round and each peer submits
 * its own update, so every step is signed by the account it names; closing a round whose deadline
 * passed is anyone's to do. Reading a round is unsigned.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { DataSource, ModelSource, ModelSourceError } from "../../content/ModelSource.js"
import { anyKey, Authority, operator, owner, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { AccountId } from "../../domain/Money.js"
import { AnsweredByPeers } from "../../domain/Sequencing.js"
import { RoundRefused, RoundState, RuleSpec } from "./FederatedRound.js"
import { GossipRefused, GossipSettings, GossipState } from "./GossipLearner.js"

export const RoundView = Schema.Struct({ ...RoundState.fields, version: Schema.Number })
export type RoundView = typeof RoundView.Type

export const GossipView = Schema.Struct({ ...GossipState.fields, version: Schema.Number })
export type GossipView = typeof GossipView.Type

const RoundId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/))
const AdapterRef = Schema.Struct({ id: Schema.String, version: Schema.String })

export class LearningRpcs extends RpcGroup.make(
  Rpc.make("LearnRoundOpen", {
    payload: {
      roundId: RoundId,
      coordinator: AccountId,
      base: Schema.Struct({ id: Schema.String, version: Schema.optional(Schema.String) }),
      task: Schema.String,
      rule: RuleSpec,
      durationMs: Schema.Number.pipe(Schema.int(), Schema.between(1, 30 * 86_400_000)),
      quorum: Schema.Number.pipe(Schema.int(), Schema.between(1, 10_000)),
      result: AdapterRef,
      ...signedFields
    },
    success: RoundView,
    error: RoundRefused
  }).middleware(SignedCommands).annotate(Authority, owner("coordinator")),
  Rpc.make("LearnRoundSubmit", {
    payload: {
      roundId: RoundId,
      peer: AccountId,
      /** The adapter trained from the round's base, as AdapterExport's one JSON document. */
      document: Schema.String,
      samples: Schema.Number.pipe(Schema.int(), Schema.positive()),
      figures: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number })),
      ...signedFields
    },
    success: RoundView,
    error: RoundRefused
  }).middleware(SignedCommands).annotate(Authority, owner("peer")).annotate(AnsweredByPeers, true),
  Rpc.make("LearnRoundAggregate", {
    payload: { roundId: RoundId, coordinator: AccountId, ...signedFields },
    success: RoundView,
    error: RoundRefused
  }).middleware(SignedCommands).annotate(Authority, owner("coordinator")),
  Rpc.make("LearnRoundClose", {
    payload: { roundId: RoundId, ...signedFields },
    success: RoundView,
    error: RoundRefused
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("LearnRound", {
    payload: { roundId: RoundId },
    success: RoundView,
    error: RoundRefused
  }),
  /** The round and its base adapter as one JSON document: what a peer joining it trains from. */
  Rpc.make("LearnRoundBase", {
    payload: { roundId: RoundId },
    success: Schema.Struct({ round: RoundView, document: Schema.String }),
    error: RoundRefused
  }).annotate(AnsweredByPeers, true),
  Rpc.make("LearnGossipStart", {
    payload: {
      adapter: Schema.Struct({ id: Schema.String, version: Schema.optional(Schema.String) }),
      ...GossipSettings.fields,
      ...signedFields
    },
    success: GossipView,
    error: GossipRefused
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("LearnGossipStop", {
    payload: { ...signedFields },
    success: GossipView,
    error: GossipRefused
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("LearnGossip", { payload: {}, success: GossipView }),
  /** A neighbour's adapter pushed to this node, signed by the neighbour's node key (its account). */
  Rpc.make("LearnGossipPush", {
    payload: {
      from: AccountId,
      document: Schema.String,
      samples: Schema.Number.pipe(Schema.int(), Schema.positive()),
      ...signedFields
    },
    success: GossipView,
    error: GossipRefused
  }).middleware(SignedCommands).annotate(Authority, owner("from")).annotate(AnsweredByPeers, true)
) {}

/**
 * Joining a round another node holds: this node fetches the round and its base over libp2p, trains
 * from the base on the caller's data, and sends its update, signed by the node key, to that node.
 * Training spends the node's compute, so it takes the operator key(s).
 */
export class LearningPeerRpcs extends RpcGroup.make(
  Rpc.make("LearnRoundJoin", {
    payload: {
      roundId: RoundId,
      /** The peer id of the node that holds the round (its coordinator's node). */
      at: Schema.String.pipe(Schema.maxLength(128)),
      /** The round's base model, as this node holds it. */
      model: ModelSource,
      data: DataSource,
      steps: Schema.Number.pipe(Schema.int(), Schema.between(1, 100_000)),
      learningRate: Schema.optional(Schema.Number.pipe(Schema.positive())),
      /** Tokens per language-model window. */
      window: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.positive())),
      seed: Schema.optional(Schema.Number.pipe(Schema.int())),
      ...signedFields
    },
    success: RoundView,
    error: Schema.Union(RoundRefused, ModelSourceError)
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
