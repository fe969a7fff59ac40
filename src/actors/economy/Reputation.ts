/**
 * A node's reputation as an event-sourced entity (`Reputation-<node>`): a score in ppm that task
 * outcomes move (the seed's +0.05 / -0.10 per unit of weight) and that decays lazily with time.
 */
import { Clock, Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

export const MAX_SCORE_PPM = 1_000_000n
/** The seed's initial reputation, 0.5. */
export const INITIAL_SCORE_PPM = 500_000n
/** The seed's +0.05 for a successful task, per unit of weight. */
export const SUCCESS_STEP_PPM = 50_000n
/** The seed's -0.10 for a failed task, per unit of weight. */
export const FAILURE_STEP_PPM = 100_000n
export const MAX_WEIGHT = 1_000

export const Outcome = Schema.Literal("success", "failure")
export type Outcome = typeof Outcome.Type

const outcomeFields = {
  taskId: Schema.String,
  weight: Schema.Number,
  at: Schema.Number,
  /** The stored score before this event, as last written (before decay). */
  storedPpm: Schema.BigInt,
  /** Whole decay intervals applied since `decayedUntil` of the previous event. */
  decayIntervals: Schema.Number,
  /** The effective score just before the outcome: `storedPpm` after decay. */
  scoreBeforePpm: Schema.BigInt,
  scoreAfterPpm: Schema.BigInt,
  /** Decay counted up to here; the part of an interval after it carries over to the next decay. */
  decayedUntil: Schema.Number,
  decayPpm: Schema.BigInt,
  decayIntervalMs: Schema.BigInt,
  parametersVersion: Schema.Number
}

// Events
export const TaskSucceeded = Schema.TaggedStruct("TaskSucceeded", outcomeFields)
export const TaskFailed = Schema.TaggedStruct("TaskFailed", outcomeFields)
export const ReputationEvent = Schema.Union(TaskSucceeded, TaskFailed)
export type ReputationEvent = typeof ReputationEvent.Type

export const ReputationState = Schema.Struct({
  /** The score as last written; what it is worth now depends on the time since `decayedUntil`. */
  scorePpm: Schema.BigInt,
  /** Null until the first outcome: a node nobody has rated does not decay from the initial score. */
  decayedUntil: Schema.NullOr(Schema.Number),
  successes: Schema.Number,
  failures: Schema.Number
})
export type ReputationState = typeof ReputationState.Type

export interface DecayParameters {
  readonly decayPpm: bigint
  readonly decayIntervalMs: bigint
  readonly version: number
}

export type ReputationCommand = {
  readonly _tag: "RecordOutcome"
  readonly outcome: Outcome
  readonly taskId: string
  /** Whole units of weight: the step is multiplied by it. */
  readonly weight: number
  readonly decay: DecayParameters
}

export class InvalidWeight extends Schema.TaggedError<InvalidWeight>()("InvalidWeight", { weight: Schema.Number }) {
  override get message() {
    return `invalid task weight ${this.weight}: a weight is a whole number from 1 to ${MAX_WEIGHT}`
  }
}

export const initialReputation: ReputationState = {
  scorePpm: INITIAL_SCORE_PPM,
  decayedUntil: null,
  successes: 0,
  failures: 0
}

export interface Decayed {
  readonly scorePpm: bigint
  readonly intervals: number
  readonly decayedUntil: number | null
}

/**
 * The score at `now`: for each whole interval since `decayedUntil`, score = floor(score * (1e6 -
 * decayPpm) / 1e6). Integer arithmetic only; every step with a positive score and rate takes at least
 * 1 ppm, so the loop ends within 1e6 steps however long the node was idle.
 */
export const decayedScore = (
  state: ReputationState,
  now: number,
  decay: Pick<DecayParameters, "decayPpm" | "decayIntervalMs">
): Decayed => {
  if (state.decayedUntil === null || decay.decayIntervalMs <= 0n || now <= state.decayedUntil) {
    return { scorePpm: state.scorePpm, intervals: 0, decayedUntil: state.decayedUntil }
  }
  const interval = Number(decay.decayIntervalMs)
  const intervals = Math.floor((now - state.decayedUntil) / interval)
  const decayedUntil = state.decayedUntil + intervals * interval
  if (decay.decayPpm <= 0n) return { scorePpm: state.scorePpm, intervals, decayedUntil }
  // ppm fit a double exactly (score * keep < 2^53), so the loop runs on numbers.
  const keep = 1_000_000 - Number(decay.decayPpm)
  let score = Number(state.scorePpm)
  for (let step = 0; step < intervals && score > 0; step++) score = Math.floor((score * keep) / 1_000_000)
  return { scorePpm: BigInt(score), intervals, decayedUntil }
}

const clamp = (score: bigint) => (score < 0n ? 0n : score > MAX_SCORE_PPM ? MAX_SCORE_PPM : score)

const decide = (
  command: ReputationCommand,
  state: ReputationState
): Effect.Effect<ReadonlyArray<ReputationEvent>, InvalidWeight> => {
  const { weight } = command
  if (!Number.isInteger(weight) || weight < 1 || weight > MAX_WEIGHT) return Effect.fail(new InvalidWeight({ weight }))
  return Effect.map(Clock.currentTimeMillis, (at) => {
    const decayed = decayedScore(state, at, command.decay)
    const step = command.outcome === "success" ? SUCCESS_STEP_PPM * BigInt(weight) : -FAILURE_STEP_PPM * BigInt(weight)
    const fields = {
      taskId: command.taskId,
      weight,
      at,
      storedPpm: state.scorePpm,
      decayIntervals: decayed.intervals,
      scoreBeforePpm: decayed.scorePpm,
      scoreAfterPpm: clamp(decayed.scorePpm + step),
      decayedUntil: decayed.decayedUntil ?? at,
      decayPpm: command.decay.decayPpm,
      decayIntervalMs: command.decay.decayIntervalMs,
      parametersVersion: command.decay.version
    }
    return [command.outcome === "success" ? TaskSucceeded.make(fields) : TaskFailed.make(fields)]
  })
}

const evolve = (state: ReputationState, event: ReputationEvent): ReputationState => ({
  scorePpm: event.scoreAfterPpm,
  decayedUntil: event.decayedUntil,
  successes: state.successes + (event._tag === "TaskSucceeded" ? 1 : 0),
  failures: state.failures + (event._tag === "TaskFailed" ? 1 : 0)
})

export const Reputations: EventSourced<ReputationCommand, ReputationEvent, ReputationState, InvalidWeight> = {
  category: "Reputation",
  decider: { initialState: initialReputation, decide, evolve },
  event: ReputationEvent,
  state: ReputationState
}
