/**
 * The training loop: epochs over the samples in a seeded order, one optimizer step per accumulated group
 * of micro-batches, progress after each step and checkpoints on schedule; a resumed run continues exactly.
 */
import type { LoraWeights } from "../Adapter.js"
import { SeededRandom } from "../Adapter.js"
import { learningRateAt } from "./AdamW.js"
import type { ClassifierHead } from "./ClassifierHead.js"
import type { LoraTrainer, TrainingCheckpoint } from "./LoraTrainer.js"
import type { Sample } from "./Objectives.js"
import { PrioritizedReplay } from "./PrioritizedReplay.js"
import type { ResolvedConfig } from "./TrainingConfig.js"
import { check } from "./TrainingConfig.js"
import type { ShardRequest } from "./TrainingProtocol.js"

export interface TrainingProgress {
  readonly epoch: number
  readonly step: number
  readonly totalSteps: number
  /** Mean loss per token (LM) or per sample (classification) over this step's micro-batches. */
  readonly loss: number
  readonly learningRate: number
  readonly gradNorm: number
  readonly samplesPerSecond: number
  readonly elapsedMs: number
}

/**
 * An extra term of the objective on the trainable parameters (FedProx's proximal term, EWC's penalty):
 * its value and its gradient by parameter name, for the parameters as they are before the step.
 */
export type Regularizer = (parameters: ReadonlyMap<string, Float32Array>) => {
  readonly loss: number
  readonly grads: ReadonlyMap<string, Float32Array>
}

/** The loss and gradients of one shard of a micro-batch, as `LoraTrainer.lossAndGrads` gives them. */
export interface ShardResult {
  readonly total: number
  readonly count: number
  readonly grads: ReadonlyMap<string, Float32Array>
  readonly sampleLosses: ArrayLike<number>
}

/**
 * A second thread with its own copy of the trainer: `start` hands it a shard and the parameters as they
 * are, `finish` waits for its result. Between the two, this thread computes the other shard.
 */
export interface ShardHelper {
  start(request: ShardRequest): void
  finish(): ShardResult
}

export interface TrainingHooks {
  readonly onProgress?: ((progress: TrainingProgress) => void) | undefined
  readonly onCheckpoint?: ((checkpoint: TrainingCheckpoint) => void) | undefined
  /** Its gradient joins the data gradient of every step, before clipping and the optimizer. */
  readonly regularizer?: Regularizer | undefined
  /** Parameters that never move (FFA-LoRA's shared A): the optimizer does not see their gradients. */
  readonly frozen?: ReadonlySet<string> | undefined
  /** Computes the second shard of every micro-batch on another thread (TrainingWorker.ts). */
  readonly helper?: ShardHelper | undefined
}

/**
 * (strength / 2) · Σ_i precision_i (θ_i - anchor_i)² over the anchored parameters, as plain data so that
 * it crosses into a training thread: FedProx's proximal term (precision 1, strength μ, anchor the global
 * model) and EWC's penalty (precision the Fisher diagonal, strength λ, anchor the task-A optimum).
 */
export interface QuadraticPenalty {
  readonly strength: number
  readonly anchor: Readonly<Record<string, Float32Array>>
  readonly precision?: Readonly<Record<string, Float32Array>> | undefined
}

/** The penalty as a Regularizer: gradient strength · precision_i · (θ_i - anchor_i). */
export const quadraticPenalty = (penalty: QuadraticPenalty): Regularizer => {
  const { strength, anchor, precision } = penalty
  check(strength >= 0 && Number.isFinite(strength), `a penalty's strength is 0 or more (not ${strength})`)
  return (parameters) => {
    let loss = 0
    const grads = new Map<string, Float32Array>()
    for (const [name, center] of Object.entries(anchor)) {
      const theta = parameters.get(name)
      check(theta !== undefined && theta.length === center.length, `the penalty anchors ${name}, which is not trained`)
      const weights = precision?.[name]
      const grad = new Float32Array(center.length)
      for (let i = 0; i < center.length; i++) {
        const difference = theta![i]! - center[i]!
        const f = weights === undefined ? 1 : weights[i]!
        loss += f * difference * difference
        grad[i] = strength * f * difference
      }
      grads.set(name, grad)
    }
    return { loss: (strength / 2) * loss, grads }
  }
}

export interface TrainingResult {
  readonly weights: LoraWeights
  readonly head?: ClassifierHead
  readonly steps: number
  readonly finalLoss: number
  readonly samples: number
  readonly durationMs: number
  readonly losses: ReadonlyArray<number>
}

/** Seeded Fisher-Yates permutation of 0..n-1. */
const permutation = (n: number, random: SeededRandom): Array<number> => {
  const order = Array.from({ length: n }, (_, i) => i)
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1))
    ;[order[i], order[j]] = [order[j]!, order[i]!]
  }
  return order
}

/** Optimizer steps of a run over `samples` under `config`. */
export const plannedSteps = (config: ResolvedConfig, samples: number): number => {
  const perEpoch = Math.ceil(Math.ceil(samples / config.batchSize) / config.gradientAccumulationSteps)
  const all = perEpoch * config.epochs
  return config.maxSteps === undefined ? all : Math.min(all, config.maxSteps)
}

/** A micro-batch, and with prioritized replay the slots it was drawn from and their weights. */
interface MicroBatch {
  readonly samples: ReadonlyArray<Sample>
  readonly slots?: ReadonlyArray<number> | undefined
  readonly weights?: ReadonlyArray<number> | undefined
}

/**
 * A micro-batch as its two shards, the first ceil(n/2) samples and the rest (one shard for one
 * sample). Every micro-batch is computed this way, by one thread or two, so a run's result does not
 * depend on the threads it had: each shard draws dropout from its own seed, and the gradients are
 * always summed first shard first.
 */
const shardsOf = (batch: MicroBatch): Array<MicroBatch> => {
  const half = Math.ceil(batch.samples.length / 2)
  if (batch.samples.length < 2) return [batch]
  const part = (from: number, to: number): MicroBatch => ({
    samples: batch.samples.slice(from, to),
    slots: batch.slots?.slice(from, to),
    weights: batch.weights?.slice(from, to)
  })
  return [part(0, half), part(half, batch.samples.length)]
}

/** The dropout seed of shard `shard` of step `step`. */
const dropoutSeed = (seed: number, step: number, shard: number) => seed * 1_000_003 + step + 7 + shard * 104_729

/**
 * Trains over `samples` for the configured epochs (each in a seeded order), one optimizer step per
 * `gradientAccumulationSteps` micro-batches, with progress after every step and checkpoints every
 * `checkpointEvery`. A trainer started from a checkpoint skips the steps it has done; the shuffles and
 * each step's dropout draws are functions of the seed and the step, so the resumed run continues
 * exactly as the uninterrupted one would have.
 *
 * With `config.replay`, each micro-batch is drawn from a prioritized replay of the samples instead
 * (as many steps as the epochs would take): each drawn sample's loss is weighed by its
 * importance-sampling weight and becomes its priority. The priorities are not in checkpoints, so such
 * a run starts at step 0.
 */
export const trainAdapter = (
  trainer: LoraTrainer,
  samples: ReadonlyArray<Sample>,
  hooks: TrainingHooks = {}
): TrainingResult => {
  const config = trainer.config
  check(samples.length > 0, "no training samples")
  const totalSteps = plannedSteps(config, samples.length)
  const warmup = config.warmupRatio === undefined ? config.warmupSteps : Math.round(config.warmupRatio * totalSteps)
  const shuffles = new SeededRandom(config.seed + 1)
  const began = performance.now()
  const losses: Array<number> = []
  let step = 0
  let seen = 0
  let finalLoss = Number.NaN
  const micro = config.batchSize
  const accumulation = config.gradientAccumulationSteps
  const perSequence = trainer.objective.kind === "classification"
  const replay = config.replay === undefined ? undefined : new PrioritizedReplay<Sample>({
    capacity: samples.length,
    alpha: config.replay.alpha,
    beta: config.replay.beta,
    betaSteps: Math.max(1, totalSteps * accumulation),
    seed: config.seed + 17
  })
  if (replay !== undefined) {
    check(
      trainer.optimizerStep === 0,
      "a run with prioritized replay starts at step 0: its priorities are not in checkpoints"
    )
    for (const sample of samples) replay.add(sample)
  }
  const microBatches = Math.ceil(samples.length / micro)
  for (let epoch = 0; epoch < config.epochs && step < totalSteps; epoch++) {
    const order = replay === undefined ? permutation(samples.length, shuffles) : []
    const batches: Array<Array<Sample>> = []
    for (let start = 0; start < order.length; start += micro) {
      batches.push(order.slice(start, start + micro).map((index) => samples[index]!))
    }
    for (let first = 0; first < microBatches && step < totalSteps; first += accumulation) {
      if (step < trainer.optimizerStep) {
        step++
        continue
      }
      const group: Array<MicroBatch> = []
      for (let k = first; k < Math.min(first + accumulation, microBatches); k++) {
        if (replay === undefined) group.push({ samples: batches[k]! })
        else {
          const draw = replay.sample(micro)
          group.push({ samples: draw.items, slots: draw.indices, weights: draw.weights })
        }
      }
      // The loss is a mean over the step's tokens (LM) or sequences (classifier), whatever the micro-batching.
      const units = group.reduce(
        (total, batch) =>
          total +
          batch.samples.reduce((sum, sample) => sum + (perSequence ? 1 : Math.max(0, sample.ids.length - 1)), 0),
        0
      )
      const gradScale = 1 / Math.max(1, units)
      const summed = new Map<string, Float32Array>()
      let total = 0
      let count = 0
      const local = (shard: MicroBatch, index: number): ShardResult => {
        const dropout = new SeededRandom(dropoutSeed(config.seed, step, index))
        return trainer.lossAndGrads(shard.samples, gradScale, () => dropout.uniform(), shard.weights)
      }
      let index = 0
      for (const batch of group) {
        const shards = shardsOf(batch)
        const remote = hooks.helper !== undefined && shards.length === 2 ? hooks.helper : undefined
        remote?.start({
          samples: shards[1]!.samples,
          gradScale,
          seed: dropoutSeed(config.seed, step, index + 1),
          weights: shards[1]!.weights,
          parameters: Object.fromEntries(trainer.parameters())
        })
        const results = [local(shards[0]!, index)]
        if (shards.length === 2) results.push(remote === undefined ? local(shards[1]!, index + 1) : remote.finish())
        index += shards.length
        results.forEach((result, position) => {
          const slots = shards[position]!.slots
          if (slots !== undefined) replay!.updatePriorities(slots, Array.from(result.sampleLosses))
          total += result.total
          count += result.count
          for (const [name, grad] of result.grads) {
            const into = summed.get(name)
            if (into === undefined) summed.set(name, grad)
            else for (let i = 0; i < grad.length; i++) into[i]! += grad[i]!
          }
        })
        seen += batch.samples.length
      }
      if (hooks.regularizer !== undefined) {
        for (const [name, grad] of hooks.regularizer(trainer.parameters()).grads) {
          const into = summed.get(name)
          check(
            into !== undefined && into.length === grad.length,
            `the regularizer's ${name} is not a trained parameter`
          )
          for (let i = 0; i < grad.length; i++) into![i]! += grad[i]!
        }
      }
      if (hooks.frozen !== undefined) { for (const name of hooks.frozen) summed.delete(name) }
      const learningRate = learningRateAt(config.schedule, config.learningRate, step, totalSteps, warmup)
      const gradNorm = trainer.applyGradients(summed, learningRate)
      step++
      finalLoss = total / Math.max(1, count)
      losses.push(finalLoss)
      const elapsedMs = performance.now() - began
      hooks.onProgress?.({
        epoch,
        step,
        totalSteps,
        loss: finalLoss,
        learningRate,
        gradNorm,
        samplesPerSecond: (seen / elapsedMs) * 1000,
        elapsedMs
      })
      if (config.checkpointEvery > 0 && step % config.checkpointEvery === 0 && step < totalSteps) {
        hooks.onCheckpoint?.(trainer.checkpoint())
      }
    }
  }
  const head = trainer.head()
  return {
    weights: trainer.weights(),
    ...(head === undefined ? {} : { head }),
    steps: step,
    finalLoss,
    samples: samples.length,
    durationMs: performance.now() - began,
    losses
  }
}
