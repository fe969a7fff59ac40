/**
 * One adapter training job as an event-sourced entity: what was asked (the base model and the data by
 * digest, the task, the settings, the adapter it makes) and how it ended (the adapter stored, with its
 * held-out figure before and after, or why it failed), so every adapter a node made can be traced to
 * its data and settings from the log alone.
 */
import { Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

export const Digest = Schema.Struct({ sha256: Schema.String, size: Schema.Number })

export const TrainingSpec = Schema.Struct({
  base: Schema.Struct({ ...Digest.fields, id: Schema.String }),
  data: Schema.Struct({ ...Digest.fields, name: Schema.String }),
  task: Schema.Literal("causal-lm", "classification", "auto"),
  /** The training settings asked for (rank, alpha, learning rate, steps, seed, ...). */
  settings: Schema.Record({ key: Schema.String, value: Schema.Union(Schema.Number, Schema.String) }),
  adapter: Schema.Struct({ id: Schema.String, version: Schema.String })
})
export type TrainingSpec = typeof TrainingSpec.Type

export const TrainingRequested = Schema.TaggedStruct("TrainingRequested", { spec: TrainingSpec })
export const TrainingCompleted = Schema.TaggedStruct("TrainingCompleted", {
  adapter: Schema.Struct({ id: Schema.String, version: Schema.String, checksum: Schema.String }),
  metric: Schema.Literal("heldOutLoss", "heldOutAccuracy"),
  before: Schema.Number,
  after: Schema.Number,
  steps: Schema.Number,
  trainSamples: Schema.Number,
  heldOutSamples: Schema.Number,
  durationMs: Schema.Number
})
export const TrainingFailed = Schema.TaggedStruct("TrainingFailed", { reason: Schema.String })
export const TrainingEvent = Schema.Union(TrainingRequested, TrainingCompleted, TrainingFailed)
export type TrainingEvent = typeof TrainingEvent.Type

export const TrainingStatus = Schema.Literal("none", "requested", "completed", "failed")

export const TrainingState = Schema.Struct({
  status: TrainingStatus,
  spec: Schema.NullOr(TrainingSpec),
  outcome: Schema.NullOr(TrainingCompleted),
  reason: Schema.NullOr(Schema.String)
})
export type TrainingState = typeof TrainingState.Type

export type TrainingCommand =
  | { readonly _tag: "Request"; readonly spec: TrainingSpec }
  | { readonly _tag: "Complete"; readonly outcome: Omit<typeof TrainingCompleted.Type, "_tag"> }
  | { readonly _tag: "Fail"; readonly reason: string }

export class TrainingStepRejected extends Schema.TaggedError<TrainingStepRejected>()("TrainingStepRejected", {
  step: Schema.String,
  status: TrainingStatus
}) {
  override get message() {
    return `training job: cannot ${this.step} a job that is ${this.status === "none" ? "not requested" : this.status}`
  }
}

const initialState: TrainingState = { status: "none", spec: null, outcome: null, reason: null }

const decide = (
  command: TrainingCommand,
  state: TrainingState
): Effect.Effect<ReadonlyArray<TrainingEvent>, TrainingStepRejected> => {
  const allowed = command._tag === "Request" ? state.status === "none" : state.status === "requested"
  if (!allowed) return Effect.fail(new TrainingStepRejected({ step: command._tag, status: state.status }))
  switch (command._tag) {
    case "Request":
      return Effect.succeed([TrainingRequested.make({ spec: command.spec })])
    case "Complete":
      return Effect.succeed([TrainingCompleted.make(command.outcome)])
    case "Fail":
      return Effect.succeed([TrainingFailed.make({ reason: command.reason })])
  }
}

const evolve = (state: TrainingState, event: TrainingEvent): TrainingState => {
  switch (event._tag) {
    case "TrainingRequested":
      return { ...state, status: "requested", spec: event.spec }
    case "TrainingCompleted":
      return { ...state, status: "completed", outcome: event }
    case "TrainingFailed":
      return { ...state, status: "failed", reason: event.reason }
  }
}

export const TrainingJob: EventSourced<TrainingCommand, TrainingEvent, TrainingState, TrainingStepRejected> = {
  category: "TrainingJob",
  decider: { initialState, decide, evolve },
  event: TrainingEvent,
  state: TrainingState
}
