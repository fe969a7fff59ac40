/**
 * Elastic weight consolidation (Kirkpatrick et al., 2017): after task A, each trainable parameter gets
 * a stiffness, the diagonal of the Fisher information (the mean squared gradient of the loss on task-A
 * samples), and training on task B pays (λ/2) Σ F_i (θ_i - θ*_i)², so the parameters task A relied on
 * stay near θ*, the others are free. The penalty is a QuadraticPenalty, the training loop's one shape
 * for extra terms, which FedProx shares.
 */
import { SeededRandom } from "../lora/Adapter.js"
import type { LoraTrainer } from "../lora/train/LoraTrainer.js"
import type { Sample } from "../lora/train/Objectives.js"
import type { QuadraticPenalty } from "../lora/train/TrainingLoop.js"
import { refuse } from "./Updates.js"

/** A copy of the trainer's current parameters: the anchor θ* of a penalty. */
export const snapshotParameters = (trainer: LoraTrainer): Record<string, Float32Array> =>
  Object.fromEntries([...trainer.parameters()].map(([name, values]) => [name, values.slice()]))

/**
 * The empirical Fisher diagonal of the trainer's parameters at their current values: the mean over
 * batches of the squared gradient of each batch's mean loss. With `batchSize` 1 (the default) it is
 * the textbook per-sample estimate; larger batches are cheaper and underestimate it by averaging.
 */
export const fisherDiagonal = (
  trainer: LoraTrainer,
  samples: ReadonlyArray<Sample>,
  options: { readonly batchSize?: number; readonly seed?: number } = {}
): Record<string, Float32Array> => {
  if (samples.length === 0) refuse("BadOptions", "a Fisher estimate needs task samples, got none")
  const batchSize = options.batchSize ?? 1
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    refuse("BadOptions", `batchSize must be 1 or more, not ${batchSize}`)
  }
  const random = new SeededRandom(options.seed ?? 0)
  const sums = new Map<string, Float64Array>()
  let batches = 0
  for (let start = 0; start < samples.length; start += batchSize) {
    const batch = samples.slice(start, start + batchSize)
    const { grads } = trainer.lossAndGrads(batch, 1 / batch.length, () => random.uniform())
    for (const [name, grad] of grads) {
      let sum = sums.get(name)
      if (sum === undefined) sums.set(name, sum = new Float64Array(grad.length))
      for (let i = 0; i < grad.length; i++) sum[i]! += grad[i]! * grad[i]!
    }
    batches++
  }
  return Object.fromEntries([...sums].map(([name, sum]) => [name, Float32Array.from(sum, (value) => value / batches)]))
}

/** EWC's penalty (λ/2) Σ F_i (θ_i - θ*_i)², gradient λ F_i (θ_i - θ*_i). */
export const ewcPenalty = (
  anchor: Readonly<Record<string, Float32Array>>,
  fisher: Readonly<Record<string, Float32Array>>,
  lambda: number
): QuadraticPenalty => {
  if (!(lambda >= 0) || !Number.isFinite(lambda)) refuse("BadOptions", `λ must be 0 or more, not ${lambda}`)
  for (const name of Object.keys(anchor)) {
    if (fisher[name]?.length !== anchor[name]!.length) {
      refuse("Mismatch", `the Fisher diagonal has no ${name} of its size`)
    }
  }
  return { strength: lambda, anchor, precision: fisher }
}

/** FedProx's proximal term (μ/2) ‖θ - θ_global‖², gradient μ (θ - θ_global) (Li et al., 2020). */
export const proximalPenalty = (global: Readonly<Record<string, Float32Array>>, mu: number): QuadraticPenalty => {
  if (!(mu >= 0) || !Number.isFinite(mu)) refuse("BadOptions", `μ must be 0 or more, not ${mu}`)
  return { strength: mu, anchor: global }
}
