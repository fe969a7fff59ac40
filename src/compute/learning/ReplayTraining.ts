/**
 * Training from a prioritized replay of the samples: each step draws a minibatch in proportion to each
 * sample's last loss (raised to α), so the trainer spends its steps where it is still wrong, and weighs
 * each drawn sample's loss by its importance-sampling weight so that the expected gradient stays the
 * one of the plain average. Samples are forwarded one by one, since each gets its own weight and loss.
 */
import { SeededRandom } from "../lora/Adapter.js"
import { learningRateAt } from "../lora/train/AdamW.js"
import type { LoraTrainer } from "../lora/train/LoraTrainer.js"
import type { Sample } from "../lora/train/Objectives.js"
import type { TrainingHooks } from "../lora/train/TrainingLoop.js"
import type { ReplayOptions } from "./PrioritizedReplay.js"
import { PrioritizedReplay } from "./PrioritizedReplay.js"
import { refuse } from "./Updates.js"

export interface ReplayTrainingResult {
  readonly steps: number
  /** Each step's IS-weighted mean loss. */
  readonly losses: ReadonlyArray<number>
  readonly replay: PrioritizedReplay<Sample>
}

/**
 * `steps` optimizer steps of `batchSize` draws each from a replay holding `samples` (β annealed to 1
 * over the run unless the options say otherwise); the trainer's config gives the learning rate,
 * schedule and seed. `hooks.regularizer` and `hooks.frozen` apply as in the training loop.
 */
export const trainWithReplay = (
  trainer: LoraTrainer,
  samples: ReadonlyArray<Sample>,
  options: {
    readonly steps: number
    readonly batchSize: number
    readonly replay?: ReplayOptions
    readonly hooks?: Pick<TrainingHooks, "regularizer" | "frozen">
  }
): ReplayTrainingResult => {
  const { steps, batchSize } = options
  if (samples.length === 0) refuse("BadOptions", "no training samples")
  if (!Number.isInteger(steps) || steps < 1) refuse("BadOptions", `steps must be 1 or more, not ${steps}`)
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    refuse("BadOptions", `batchSize must be 1 or more, not ${batchSize}`)
  }
  const config = trainer.config
  const replay = new PrioritizedReplay<Sample>({
    capacity: Math.max(samples.length, options.replay?.capacity ?? 10_000),
    betaSteps: steps,
    seed: config.seed + 17,
    ...options.replay
  })
  for (const sample of samples) replay.add(sample)
  const dropout = new SeededRandom(config.seed * 1_000_003 + 11)
  const random = () => dropout.uniform()
  const losses: Array<number> = []
  for (let step = 0; step < steps; step++) {
    const draw = replay.sample(batchSize)
    const summed = new Map<string, Float32Array>()
    const sampleLosses: Array<number> = []
    let weighted = 0
    draw.items.forEach((sample, k) => {
      const weight = draw.weights[k]!
      const result = trainer.lossAndGrads([sample], weight / batchSize, random)
      const loss = result.total / Math.max(1, result.count)
      sampleLosses.push(loss)
      weighted += (weight * loss) / batchSize
      for (const [name, grad] of result.grads) {
        const into = summed.get(name)
        if (into === undefined) summed.set(name, grad)
        else for (let i = 0; i < grad.length; i++) into[i]! += grad[i]!
      }
    })
    if (options.hooks?.regularizer !== undefined) {
      for (const [name, grad] of options.hooks.regularizer(trainer.parameters()).grads) {
        const into = summed.get(name)
        if (into !== undefined) { for (let i = 0; i < grad.length; i++) into[i]! += grad[i]! }
      }
    }
    for (const name of options.hooks?.frozen ?? []) summed.delete(name)
    trainer.applyGradients(
      summed,
      learningRateAt(config.schedule, config.learningRate, step, steps, config.warmupSteps)
    )
    replay.updatePriorities(draw.indices, sampleLosses)
    losses.push(weighted)
  }
  return { steps, losses, replay }
}
