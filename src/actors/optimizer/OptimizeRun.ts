/**
 * An optimization run as callers ask for it and watch it: the settings (the CLI's options, as a
 * Schema the RPC carries), the progress it streams (pipeline steps, each job step recorded in the
 * journal, the outcome), and the one-line error of a run that could not finish.
 */
import { Schema } from "effect"
import { Artifact, JobStatus, Report } from "./OptimizerJob.js"

export const Quantization = Schema.Literal("INT8", "INT8_DYNAMIC", "INT4", "GPTQ", "AWQ", "FP16", "auto", "none")
export type Quantization = typeof Quantization.Type

/** What to do to a model: the quantization and the optional steps around it. */
export const OptimizeSettings = Schema.Struct({
  quantization: Quantization,
  /** INT4 / GPTQ / AWQ: weights per quantization block (default 32). */
  blockSize: Schema.optional(Schema.Literal(32, 64, 128)),
  pruning: Schema.optional(Schema.Struct({
    method: Schema.Literal("magnitude", "block"),
    sparsity: Schema.Number.pipe(Schema.between(0, 0.99))
  })),
  /** Simplify the graph first (constants folded, duplicates merged, dead nodes dropped). */
  simplify: Schema.optional(Schema.Boolean),
  /** auto: the size the optimized file may take. */
  sizeBudgetBytes: Schema.optional(Schema.Number.pipe(Schema.positive())),
  /** Refuse a result below these: `cosine` (output cosine vs FP32), `maxPerplexityDelta`. */
  qualityBar: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number })),
  /** Where the model will run: the report validates and times it in onnxruntime-web or -node. */
  target: Schema.optional(Schema.Literal("browser", "node"))
})
export type OptimizeSettings = typeof OptimizeSettings.Type

/** A pipeline step's advance (simplify, prune, quantize, sensitivity, validate, evaluate). */
export const OptimizeStep = Schema.TaggedStruct("OptimizeStep", {
  step: Schema.String,
  done: Schema.Number,
  total: Schema.Number
})

/** A job step written to the journal (requested, measured, assigned, completed, refused, failed). */
export const OptimizeRecorded = Schema.TaggedStruct("OptimizeRecorded", {
  jobId: Schema.String,
  status: JobStatus,
  /** The job entity's version after the step. */
  version: Schema.Number
})

/** The outcome: the optimized model's digest (stored where the caller's service says) and its report. */
export const OptimizeFinished = Schema.TaggedStruct("OptimizeFinished", {
  jobId: Schema.String,
  status: Schema.Literal("completed", "refused"),
  artifact: Artifact,
  report: Report,
  /** Why the quality bar refused it (empty when completed). */
  reasons: Schema.Array(Schema.String),
  keptFp32: Schema.Array(Schema.String),
  /** Per-layer precision chosen in the automatic mode. */
  bits: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number }))
})
export type OptimizeFinished = typeof OptimizeFinished.Type

export const OptimizeProgress = Schema.Union(OptimizeStep, OptimizeRecorded, OptimizeFinished)
export type OptimizeProgress = typeof OptimizeProgress.Type

export class OptimizeRunFailed extends Schema.TaggedError<OptimizeRunFailed>()("OptimizeRunFailed", {
  jobId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}
