/**
 * Federated rounds over RPC. The coordinator opens and aggregates its round and each peer submits
 * its own update, so every step is signed by the account it names; closing a round whose deadline
 * passed is anyone's to do. Reading a round is unsigned.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { anyKey, Authority, owner, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { AccountId } from "../../domain/Money.js"
import { RoundRefused, RoundState, RuleSpec } from "./FederatedRound.js"

export const RoundView = Schema.Struct({ ...RoundState.fields, version: Schema.Number })
export type RoundView = typeof RoundView.Type

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
  }).middleware(SignedCommands).annotate(Authority, owner("peer")),
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
  })
) {}
