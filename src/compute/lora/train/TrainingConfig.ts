/**
 * How a LoRA adapter is trained (the seed's `MicroLoRAConfig`), its defaults, and the TrainingError
 * that names the first bad option, so a bad config fails before any work starts.
 */
import type { OnnxModel } from "../../onnx/OnnxModel.js"
import { loraTargets } from "../GraphLora.js"
import type { Schedule } from "./AdamW.js"

/** The seed's `MicroLoRAConfig`: the adapter's shape and how it is trained. */
export interface MicroLoRAConfig {
  /** 1 to 64; MicroLoRA proper is 1-2, graph adapters usually 4-16. */
  readonly rank: number
  /** The update is scaled by alpha / rank (PEFT's lora_alpha). Default 2 · rank. */
  readonly alpha?: number | undefined
  /** Dropout on each branch's input while training (PEFT's lora_dropout). Default 0. */
  readonly dropout?: number | undefined
  /** Module paths to adapt (see loraTargets). Default: every target of the model. */
  readonly targetModules?: ReadonlyArray<string> | undefined
  readonly learningRate?: number | undefined
  readonly weightDecay?: number | undefined
  readonly betas?: readonly [number, number] | undefined
  readonly epsilon?: number | undefined
  readonly schedule?: Schedule | undefined
  /** Steps of linear warmup; or a fraction of all steps with warmupRatio. */
  readonly warmupSteps?: number | undefined
  readonly warmupRatio?: number | undefined
  readonly epochs?: number | undefined
  /** Stop after this many optimizer steps (default: all epochs). */
  readonly maxSteps?: number | undefined
  /** Samples per forward/backward pass. */
  readonly batchSize?: number | undefined
  /** Micro-batches whose gradients are summed before one optimizer step. */
  readonly gradientAccumulationSteps?: number | undefined
  /** Clip the global gradient norm to this (0: no clipping). */
  readonly maxGradNorm?: number | undefined
  readonly seed?: number | undefined
  /** Report a checkpoint every this many optimizer steps (0: none). */
  readonly checkpointEvery?: number | undefined
  /**
   * Draw every step's samples from a prioritized replay of the training set instead of the epochs'
   * shuffles (Schaul et al., 2016): in proportion to each sample's last loss raised to α, each weighed
   * by its importance-sampling weight, β rising to 1 over the run. The same number of steps is taken.
   */
  readonly replay?: ReplaySampling | undefined
}

/** Prioritized replay's two exponents (defaults α 0.6, β 0.4 at the first step, as the paper's). */
export interface ReplaySampling {
  readonly alpha?: number | undefined
  readonly beta?: number | undefined
}

export type ResolvedConfig =
  & {
    readonly [K in Exclude<keyof MicroLoRAConfig, "targetModules" | "warmupRatio" | "maxSteps" | "replay">]-?:
      NonNullable<
        MicroLoRAConfig[K]
      >
  }
  & {
    readonly targetModules: ReadonlyArray<string>
    readonly maxSteps: number | undefined
    readonly warmupRatio: number | undefined
    readonly replay: { readonly alpha: number; readonly beta: number } | undefined
  }

export class TrainingError extends Error {
  override readonly name = "TrainingError"
}

export const check = (ok: boolean, reason: string) => {
  if (!ok) throw new TrainingError(reason)
}

/** The config with defaults filled in, or a TrainingError naming the first bad option. */
export const resolveConfig = (model: OnnxModel, config: MicroLoRAConfig): ResolvedConfig => {
  const targets = loraTargets(model).map((target) => target.module)
  const rank = config.rank
  check(Number.isInteger(rank) && rank >= 1 && rank <= 64, `rank must be a whole number from 1 to 64 (not ${rank})`)
  const resolved: ResolvedConfig = {
    rank,
    alpha: config.alpha ?? 2 * rank,
    dropout: config.dropout ?? 0,
    targetModules: config.targetModules ?? targets,
    learningRate: config.learningRate ?? 1e-3,
    weightDecay: config.weightDecay ?? 0.01,
    betas: config.betas ?? [0.9, 0.999],
    epsilon: config.epsilon ?? 1e-8,
    schedule: config.schedule ?? "cosine",
    warmupSteps: config.warmupSteps ?? 0,
    warmupRatio: config.warmupRatio,
    epochs: config.epochs ?? 1,
    maxSteps: config.maxSteps,
    batchSize: config.batchSize ?? 8,
    gradientAccumulationSteps: config.gradientAccumulationSteps ?? 1,
    maxGradNorm: config.maxGradNorm ?? 1,
    seed: config.seed ?? 0,
    checkpointEvery: config.checkpointEvery ?? 0,
    replay: config.replay === undefined
      ? undefined
      : { alpha: config.replay.alpha ?? 0.6, beta: config.replay.beta ?? 0.4 }
  }
  check(
    resolved.replay === undefined || (resolved.replay.alpha >= 0 && Number.isFinite(resolved.replay.alpha)),
    `replay alpha must be 0 or more (not ${resolved.replay?.alpha})`
  )
  check(
    resolved.replay === undefined || (resolved.replay.beta >= 0 && resolved.replay.beta <= 1),
    `replay beta must be in [0, 1] (not ${resolved.replay?.beta})`
  )
  check(
    resolved.alpha > 0 && Number.isFinite(resolved.alpha),
    `alpha must be a positive number (not ${resolved.alpha})`
  )
  check(resolved.dropout >= 0 && resolved.dropout < 1, `dropout must be in [0, 1) (not ${resolved.dropout})`)
  check(
    resolved.learningRate > 0 && Number.isFinite(resolved.learningRate),
    `learningRate must be a positive number (not ${resolved.learningRate})`
  )
  check(resolved.weightDecay >= 0, `weightDecay must be 0 or more (not ${resolved.weightDecay})`)
  check(
    resolved.betas.every((beta) => beta >= 0 && beta < 1),
    `betas must be in [0, 1) (not ${resolved.betas.join(", ")})`
  )
  check(
    ["cosine", "linear", "constant"].includes(resolved.schedule),
    `schedule must be cosine, linear or constant (not ${resolved.schedule})`
  )
  check(
    Number.isInteger(resolved.warmupSteps) && resolved.warmupSteps >= 0,
    `warmupSteps must be a whole number, 0 or more (not ${resolved.warmupSteps})`
  )
  check(
    resolved.warmupRatio === undefined || (resolved.warmupRatio >= 0 && resolved.warmupRatio < 1),
    `warmupRatio must be in [0, 1) (not ${resolved.warmupRatio})`
  )
  check(
    Number.isInteger(resolved.epochs) && resolved.epochs >= 1,
    `epochs must be a whole number, 1 or more (not ${resolved.epochs})`
  )
  check(
    resolved.maxSteps === undefined || (Number.isInteger(resolved.maxSteps) && resolved.maxSteps >= 1),
    `maxSteps must be a whole number, 1 or more (not ${resolved.maxSteps})`
  )
  check(
    Number.isInteger(resolved.batchSize) && resolved.batchSize >= 1,
    `batchSize must be a whole number, 1 or more (not ${resolved.batchSize})`
  )
  check(
    Number.isInteger(resolved.gradientAccumulationSteps) && resolved.gradientAccumulationSteps >= 1,
    `gradientAccumulationSteps must be a whole number, 1 or more (not ${resolved.gradientAccumulationSteps})`
  )
  check(resolved.maxGradNorm >= 0, `maxGradNorm must be 0 or more (not ${resolved.maxGradNorm})`)
  check(
    Number.isSafeInteger(resolved.seed) && resolved.seed >= 0,
    `seed must be a non-negative whole number (not ${resolved.seed})`
  )
  check(
    Number.isInteger(resolved.checkpointEvery) && resolved.checkpointEvery >= 0,
    `checkpointEvery must be a whole number, 0 or more (not ${resolved.checkpointEvery})`
  )
  check(resolved.targetModules.length > 0, "no target modules: the model has no MatMul weights LoRA can adapt")
  const known = new Set(targets)
  const unknown = resolved.targetModules.filter((module) => !known.has(module))
  check(
    unknown.length === 0,
    `${unknown[0]} is not a LoRA target of this model (${targets.length} targets, such as ${
      targets.slice(0, 3).join(", ")
    })`
  )
  return resolved
}
