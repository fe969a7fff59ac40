/**
 * Adapter training over RPC: another program sends its data (inline, or as a blob it uploaded) and
 * asks a node to train a LoRA adapter on a model the node holds, watching phases, steps and the
 * recorded job; the adapter is stored with the node's adapters, where its inference finds it.
 * Training spends the node's compute and writes to its store, so it takes the operator key(s).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { DataSource, ModelSource, ModelSourceError } from "../../content/ModelSource.js"
import { Authority, operator, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { AdapterTrainingFailed, TrainingProgressEvent } from "./AdapterTraining.js"

const optionalNumber = Schema.optional(Schema.Number)

/** The CLI's `adapters train` options, by the same names. */
export const TrainSettings = Schema.Struct({
  rank: Schema.Number.pipe(Schema.int(), Schema.between(1, 256)),
  alpha: optionalNumber,
  dropout: optionalNumber,
  targetModules: Schema.optional(Schema.Array(Schema.String)),
  learningRate: optionalNumber,
  weightDecay: optionalNumber,
  schedule: Schema.optional(Schema.Literal("cosine", "linear", "constant")),
  warmupSteps: optionalNumber,
  epochs: optionalNumber,
  maxSteps: optionalNumber,
  batchSize: optionalNumber,
  gradientAccumulationSteps: optionalNumber,
  maxGradNorm: optionalNumber,
  seed: optionalNumber,
  /** Tokens per language-model window (default 128). */
  window: optionalNumber,
  /** Tokens a classification example is cut to (default 64). */
  maxTokens: optionalNumber,
  /** Share of the data held out to measure before and after (default 0.1). */
  heldOut: optionalNumber
})
export type TrainSettings = typeof TrainSettings.Type

export class AdapterTrainingRpcs extends RpcGroup.make(
  Rpc.make("AdapterTrain", {
    payload: {
      base: ModelSource,
      data: DataSource,
      task: Schema.optional(Schema.Literal("causal-lm", "classification")),
      settings: TrainSettings,
      adapter: Schema.Struct({
        id: Schema.String,
        version: Schema.String,
        name: Schema.optional(Schema.String),
        domain: Schema.optional(Schema.String),
        license: Schema.optional(Schema.String)
      }),
      ...signedFields
    },
    success: TrainingProgressEvent,
    error: Schema.Union(AdapterTrainingFailed, ModelSourceError),
    stream: true
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
