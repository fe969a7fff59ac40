/**
 * One optimization job as an event-sourced entity: what was asked, each layer's measured sensitivity,
 * the precision chosen for it, and the result with its digests and quality report (or why it failed
 * or was refused), so every automatic decision can be audited from the log alone.
 */
import { Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

export const Bits = Schema.Literal(4, 8, 16, 32)

export const JobSpec = Schema.Struct({
  /** The source model: its SHA-256 and size. */
  model: Schema.Struct({ sha256: Schema.String, size: Schema.Number, name: Schema.optional(Schema.String) }),
  /** "none": only the optional steps (pruning, simplification), weights kept in FP32. */
  quantization: Schema.Literal("INT8", "INT8_DYNAMIC", "INT4", "GPTQ", "AWQ", "FP16", "auto", "none"),
  blockSize: Schema.optional(Schema.Number),
  pruning: Schema.optional(
    Schema.Struct({
      method: Schema.Literal("magnitude", "block"),
      sparsity: Schema.Number,
      blockSize: Schema.optional(Schema.Number)
    })
  ),
  calibration: Schema.optional(Schema.Struct({ sha256: Schema.String, samples: Schema.Number })),
  target: Schema.optional(Schema.Literal("browser", "node")),
  /** For `auto`: the size the optimized weights must fit. */
  sizeBudgetBytes: Schema.optional(Schema.Number),
  /** Refuse the result below these (e.g. `{ cosine: 0.99 }`). */
  qualityBar: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number }))
})
export type JobSpec = typeof JobSpec.Type

export const LayerSensitivity = Schema.Struct({
  layer: Schema.String,
  parameters: Schema.Number,
  damage: Schema.Record({ key: Schema.String, value: Schema.Number })
})

export const Artifact = Schema.Struct({ sha256: Schema.String, size: Schema.Number })

/** Figures of the validation report, by name (sizeRatio, latencyRatio, cosine, maxError, top1, perplexityDelta, ...). */
export const Report = Schema.Record({ key: Schema.String, value: Schema.Number })

// Events
export const JobRequested = Schema.TaggedStruct("JobRequested", { spec: JobSpec })
export const SensitivitiesMeasured = Schema.TaggedStruct("SensitivitiesMeasured", {
  metric: Schema.String,
  layers: Schema.Array(LayerSensitivity)
})
export const PrecisionAssigned = Schema.TaggedStruct("PrecisionAssigned", {
  bits: Schema.Record({ key: Schema.String, value: Bits }),
  estimatedBytes: Schema.Number,
  budgetBytes: Schema.Number,
  estimatedDamage: Schema.Number
})
export const JobCompleted = Schema.TaggedStruct("JobCompleted", {
  artifact: Artifact,
  report: Report,
  keptFp32: Schema.Array(Schema.String)
})
export const JobRefused = Schema.TaggedStruct("JobRefused", { report: Report, reasons: Schema.Array(Schema.String) })
export const JobFailed = Schema.TaggedStruct("JobFailed", { reason: Schema.String })
export const JobEvent = Schema.Union(
  JobRequested,
  SensitivitiesMeasured,
  PrecisionAssigned,
  JobCompleted,
  JobRefused,
  JobFailed
)
export type JobEvent = typeof JobEvent.Type

export const JobStatus = Schema.Literal("none", "requested", "measured", "assigned", "completed", "refused", "failed")

export const JobState = Schema.Struct({
  status: JobStatus,
  spec: Schema.NullOr(JobSpec),
  sensitivities: Schema.NullOr(Schema.Array(LayerSensitivity)),
  bits: Schema.NullOr(Schema.Record({ key: Schema.String, value: Bits })),
  artifact: Schema.NullOr(Artifact),
  report: Schema.NullOr(Report)
})
export type JobState = typeof JobState.Type

export type JobCommand =
  | { readonly _tag: "Request"; readonly spec: JobSpec }
  | {
    readonly _tag: "RecordSensitivities"
    readonly metric: string
    readonly layers: ReadonlyArray<typeof LayerSensitivity.Type>
  }
  | {
    readonly _tag: "AssignPrecision"
    readonly bits: Readonly<Record<string, 4 | 8 | 16 | 32>>
    readonly estimatedBytes: number
    readonly budgetBytes: number
    readonly estimatedDamage: number
  }
  | {
    readonly _tag: "Complete"
    readonly artifact: typeof Artifact.Type
    readonly report: Readonly<Record<string, number>>
    readonly keptFp32: ReadonlyArray<string>
  }
  | {
    readonly _tag: "Refuse"
    readonly report: Readonly<Record<string, number>>
    readonly reasons: ReadonlyArray<string>
  }
  | { readonly _tag: "Fail"; readonly reason: string }

export class JobStepRejected extends Schema.TaggedError<JobStepRejected>()("JobStepRejected", {
  step: Schema.String,
  status: JobStatus
}) {
  override get message() {
    return `optimizer job: cannot ${this.step} a job that is ${this.status === "none" ? "not requested" : this.status}`
  }
}

const initialState: JobState = {
  status: "none",
  spec: null,
  sensitivities: null,
  bits: null,
  artifact: null,
  report: null
}

const finished = (status: JobState["status"]) => status === "completed" || status === "refused" || status === "failed"

const allowed: Record<JobCommand["_tag"], (state: JobState) => boolean> = {
  Request: (state) => state.status === "none",
  // Sensitivities and precision are the automatic mode's steps, in that order.
  RecordSensitivities: (state) => state.status === "requested" && state.spec?.quantization === "auto",
  AssignPrecision: (state) => state.status === "measured",
  Complete: (state) =>
    !finished(state.status) && state.status !== "none" &&
    (state.spec?.quantization !== "auto" || state.status === "assigned"),
  Refuse: (state) => !finished(state.status) && state.status !== "none",
  Fail: (state) => !finished(state.status) && state.status !== "none"
}

const decide = (command: JobCommand, state: JobState): Effect.Effect<ReadonlyArray<JobEvent>, JobStepRejected> => {
  if (!allowed[command._tag](state)) {
    return Effect.fail(new JobStepRejected({ step: command._tag, status: state.status }))
  }
  switch (command._tag) {
    case "Request":
      return Effect.succeed([JobRequested.make({ spec: command.spec })])
    case "RecordSensitivities":
      return Effect.succeed([SensitivitiesMeasured.make({ metric: command.metric, layers: command.layers })])
    case "AssignPrecision":
      return Effect.succeed([PrecisionAssigned.make({
        bits: command.bits,
        estimatedBytes: command.estimatedBytes,
        budgetBytes: command.budgetBytes,
        estimatedDamage: command.estimatedDamage
      })])
    case "Complete":
      return Effect.succeed([
        JobCompleted.make({ artifact: command.artifact, report: command.report, keptFp32: command.keptFp32 })
      ])
    case "Refuse":
      return Effect.succeed([JobRefused.make({ report: command.report, reasons: command.reasons })])
    case "Fail":
      return Effect.succeed([JobFailed.make({ reason: command.reason })])
  }
}

const evolve = (state: JobState, event: JobEvent): JobState => {
  switch (event._tag) {
    case "JobRequested":
      return { ...state, status: "requested", spec: event.spec }
    case "SensitivitiesMeasured":
      return { ...state, status: "measured", sensitivities: event.layers }
    case "PrecisionAssigned":
      return { ...state, status: "assigned", bits: event.bits }
    case "JobCompleted":
      return { ...state, status: "completed", artifact: event.artifact, report: event.report }
    case "JobRefused":
      return { ...state, status: "refused", report: event.report }
    case "JobFailed":
      return { ...state, status: "failed" }
  }
}

export const OptimizerJob: EventSourced<JobCommand, JobEvent, JobState, JobStepRejected> = {
  category: "OptimizerJob",
  decider: { initialState, decide, evolve },
  event: JobEvent,
  state: JobState
}
