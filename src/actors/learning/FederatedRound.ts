/**
 * One federated round as an event-sourced entity: opened by its coordinator on a base adapter with an
 * aggregation rule, a deadline and a quorum; peers' updates submitted, each by its digest, its sample
 * count and the peer's own figures; aggregated, with which updates were kept and which excluded and
 * why; closed. Replaying the log rebuilds every round, and the aggregation's verdicts are what
 * `audit explain round ID` reads back.
 */
import { Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

/** The aggregation rule as a round records it (compute/learning/Aggregators.ts runs it). */
export const RuleSpec = Schema.Union(
  Schema.TaggedStruct("fedavg", {}),
  Schema.TaggedStruct("median", {}),
  Schema.TaggedStruct("trimmed-mean", { trim: Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThan(0.5)) }),
  Schema.TaggedStruct("krum", { attackers: Schema.Number.pipe(Schema.int(), Schema.nonNegative()) }),
  Schema.TaggedStruct("multi-krum", {
    attackers: Schema.Number.pipe(Schema.int(), Schema.nonNegative()),
    selected: Schema.Number.pipe(Schema.int(), Schema.positive())
  }),
  /** FedAvg with each peer's weight times its reputation in the economy at aggregation. */
  Schema.TaggedStruct("reputation", {})
)
export type RuleSpec = typeof RuleSpec.Type

const AdapterRef = Schema.Struct({ id: Schema.String, version: Schema.String })

export const RoundSpec = Schema.Struct({
  coordinator: Schema.String,
  /** The adapter every peer starts from, pinned by its checksum, and the model it adapts. */
  base: Schema.Struct({
    ...AdapterRef.fields,
    checksum: Schema.String,
    baseModel: Schema.String,
    baseModelDigest: Schema.String
  }),
  task: Schema.String,
  rule: RuleSpec,
  /** Updates are taken until this time (ms since the epoch). */
  deadline: Schema.Number,
  /** Updates needed before the round can be aggregated. */
  quorum: Schema.Number.pipe(Schema.int(), Schema.positive()),
  /** Where the aggregated adapter is stored. */
  result: AdapterRef
})
export type RoundSpec = typeof RoundSpec.Type

const Figures = Schema.Record({ key: Schema.String, value: Schema.Number })

export const Submission = Schema.Struct({
  peer: Schema.String,
  /** sha256 of the update as submitted (the adapter's one-document JSON). */
  digest: Schema.String,
  samples: Schema.Number.pipe(Schema.int(), Schema.positive()),
  /** The peer's own figures of its local training (loss, accuracy, ...). */
  figures: Figures
})
export type Submission = typeof Submission.Type

export const Verdict = Schema.Struct({
  peer: Schema.String,
  digest: Schema.String,
  kept: Schema.Boolean,
  reason: Schema.String
})

export const RoundOpened = Schema.TaggedStruct("RoundOpened", { roundId: Schema.String, spec: RoundSpec })
export const UpdateSubmitted = Schema.TaggedStruct("UpdateSubmitted", Submission.fields)
export const RoundAggregated = Schema.TaggedStruct("RoundAggregated", {
  /** The rule as run, in a few words (Krum f=2, trimmed mean β=0.2, ...). */
  rule: Schema.String,
  verdicts: Schema.Array(Verdict),
  /** Samples behind the kept updates. */
  samples: Schema.Number,
  result: Schema.Struct({ ...AdapterRef.fields, checksum: Schema.String }),
  /** The largest relative error of re-factoring a module's aggregated ΔW to the adapter's rank. */
  refactorError: Schema.Number
})
export const RoundClosed = Schema.TaggedStruct("RoundClosed", {
  reason: Schema.String,
  /** Closed with no aggregate: the deadline passed below the quorum (absent in logs written before). */
  failed: Schema.optional(Schema.Boolean)
})
export const RoundEvent = Schema.Union(RoundOpened, UpdateSubmitted, RoundAggregated, RoundClosed)
export type RoundEvent = typeof RoundEvent.Type

/** "failed": closed at its deadline with fewer updates than its quorum, so with no aggregate. */
export const RoundStatus = Schema.Literal("none", "open", "aggregated", "closed", "failed")

export const RoundState = Schema.Struct({
  status: RoundStatus,
  spec: Schema.NullOr(RoundSpec),
  updates: Schema.Array(Submission),
  outcome: Schema.NullOr(RoundAggregated),
  closedBecause: Schema.NullOr(Schema.String)
})
export type RoundState = typeof RoundState.Type

export type RoundCommand =
  | { readonly _tag: "Open"; readonly roundId: string; readonly spec: RoundSpec }
  | { readonly _tag: "Submit"; readonly submission: Submission; readonly now: number }
  | { readonly _tag: "Aggregate"; readonly outcome: Omit<typeof RoundAggregated.Type, "_tag"> }
  /** `because`: why a round that has its quorum still fails (its aggregation could not run). */
  | { readonly _tag: "Close"; readonly now: number; readonly because?: string | undefined }

export class RoundRefused extends Schema.TaggedError<RoundRefused>()("RoundRefused", {
  roundId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `round ${this.roundId}: ${this.reason}`
  }
}

const initialState: RoundState = { status: "none", spec: null, updates: [], outcome: null, closedBecause: null }

/** Whether a round can be aggregated now, or why not. */
export const aggregationProblem = (state: RoundState): string | undefined => {
  if (state.status !== "open") return state.status === "none" ? "no such round" : `the round is ${state.status}`
  if (state.updates.length < state.spec!.quorum) {
    return `${state.updates.length} update(s) of the ${state.spec!.quorum} its quorum needs`
  }
  return undefined
}

const decide = (
  command: RoundCommand,
  state: RoundState
): Effect.Effect<ReadonlyArray<RoundEvent>, string> => {
  switch (command._tag) {
    case "Open":
      return state.status === "none"
        ? Effect.succeed([RoundOpened.make({ roundId: command.roundId, spec: command.spec })])
        : Effect.fail("a round of this id was opened before")
    case "Submit": {
      const { submission } = command
      if (state.status !== "open") {
        return Effect.fail(state.status === "none" ? "no such round" : `the round is ${state.status}`)
      }
      if (command.now > state.spec!.deadline) {
        return Effect.fail(`the round took updates until ${new Date(state.spec!.deadline).toISOString()}`)
      }
      const earlier = state.updates.find((update) => update.peer === submission.peer)
      if (earlier !== undefined) {
        return earlier.digest === submission.digest
          ? Effect.succeed([])
          : Effect.fail(`${submission.peer} already submitted update ${earlier.digest.slice(0, 12)}`)
      }
      return Effect.succeed([UpdateSubmitted.make(submission)])
    }
    case "Aggregate": {
      const problem = aggregationProblem(state)
      return problem === undefined
        ? Effect.succeed([RoundAggregated.make(command.outcome)])
        : Effect.fail(`cannot aggregate: ${problem}`)
    }
    case "Close":
      if (state.status === "closed" || state.status === "failed") return Effect.succeed([])
      if (state.status === "none") return Effect.fail("no such round")
      if (state.status === "open" && command.now <= state.spec!.deadline) {
        return Effect.fail(`the round takes updates until ${new Date(state.spec!.deadline).toISOString()}`)
      }
      if (state.status === "open" && state.updates.length >= state.spec!.quorum) {
        return command.because === undefined
          ? Effect.fail("the round has its quorum: it is aggregated, not closed")
          : Effect.succeed([RoundClosed.make({ reason: command.because, failed: true })])
      }
      return Effect.succeed([
        state.status === "aggregated"
          ? RoundClosed.make({ reason: "aggregated" })
          : RoundClosed.make({
            reason: `deadline passed with ${state.updates.length} update(s) of the ${
              state.spec!.quorum
            } its quorum needs`,
            failed: true
          })
      ])
  }
}

const evolve = (state: RoundState, event: RoundEvent): RoundState => {
  switch (event._tag) {
    case "RoundOpened":
      return { ...state, status: "open", spec: event.spec }
    case "UpdateSubmitted": {
      const { _tag, ...submission } = event
      return { ...state, updates: [...state.updates, submission] }
    }
    case "RoundAggregated":
      return { ...state, status: "aggregated", outcome: event }
    case "RoundClosed":
      return { ...state, status: event.failed === true ? "failed" : "closed", closedBecause: event.reason }
  }
}

/** The round's entity; a refusal names the round (the runner knows the stream id, the decider does not). */
export const FederatedRound: EventSourced<RoundCommand, RoundEvent, RoundState, string> = {
  category: "Round",
  decider: { initialState, decide, evolve },
  event: RoundEvent,
  state: RoundState
}
