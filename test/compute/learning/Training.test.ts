/**
 * Learning's terms in the trainer, on the reference encoder: the Fisher diagonal is the mean squared
 * per-sample gradient (checked against central differences), the quadratic penalty's gradient against
 * finite differences, the training loop's regularizer hook (a huge FedProx μ pins the parameters to the
 * anchor, strength 0 changes nothing), frozen parameters stay put, the worker takes the same penalty as
 * plain data, and the training loop's prioritized replay: a weighted micro-batch is exactly the weighted
 * sum of its samples, a run lowers the loss in the steps the epochs would take, and what it refuses.
 */
import { describe, expect, it } from "@effect/vitest"
import { ewcPenalty, fisherDiagonal, proximalPenalty, snapshotParameters } from "../../../src/compute/learning/Ewc.js"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import { LoraTrainer } from "../../../src/compute/lora/train/LoraTrainer.js"
import type { ClassificationSample } from "../../../src/compute/lora/train/Objectives.js"
import type { MicroLoRAConfig } from "../../../src/compute/lora/train/TrainingConfig.js"
import { plannedSteps, quadraticPenalty, trainAdapter } from "../../../src/compute/lora/train/TrainingLoop.js"
import { trainInWorker } from "../../../src/compute/lora/train/TrainInWorker.js"
import { referenceModel } from "../../support/LoraTasks.js"

const encoderTask = () => {
  const { bytes, model, tokenizer } = referenceModel("tiny-encoder")
  const texts = [
    ["Win a free cruise now, click here to claim your prize", 1],
    ["The meeting about the kernel patch moved to Thursday", 0],
    ["Lowest mortgage rates guaranteed, act today", 1],
    ["Can you review my change to the build scripts?", 0],
    ["Cheap meds online without prescription", 1],
    ["Minutes of yesterday's call are on the wiki", 0],
    ["You have been selected for a cash reward", 1],
    ["The release branch is frozen until Monday", 0]
  ] as const
  const samples: Array<ClassificationSample> = texts.map(([text, label]) => ({
    ids: Array.from(tokenizer.encode(text, { truncation: 12 }).ids, Number),
    label
  }))
  return { bytes, model, samples }
}

const config: MicroLoRAConfig = {
  rank: 2,
  alpha: 4,
  learningRate: 1e-2,
  batchSize: 4,
  epochs: 3,
  seed: 3,
  schedule: "constant",
  targetModules: ["layers.3.query", "layers.3.intermediate"]
}
const objective = { kind: "classification", classes: 2 } as const

const distance = (a: Readonly<Record<string, Float32Array>>, b: Readonly<Record<string, Float32Array>>) => {
  let sum = 0
  for (const [name, values] of Object.entries(a)) values.forEach((value, i) => (sum += (value - b[name]![i]!) ** 2))
  return Math.sqrt(sum)
}

describe("learning's terms in the trainer", () => {
  it("the Fisher diagonal is the mean of squared per-sample gradients (central differences)", () => {
    const { model, samples } = encoderTask()
    const trainer = new LoraTrainer(model, config, objective)
    // Move off B = 0 so that every parameter has a gradient.
    trainAdapter(trainer, samples)
    const fisher = fisherDiagonal(trainer, samples)
    const parameters = trainer.parameters()
    const lossOf = (sample: ClassificationSample) => trainer.lossAndGrads([sample], 1, () => 0.5).total
    const checked = [["head.weight", 5], ["head.bias", 1], ["layers.3.query.B", 7], [
      "layers.3.intermediate.A",
      100
    ]] as const
    for (const [name, index] of checked) {
      const values = parameters.get(name)!
      const original = values[index]!
      let squares = 0
      for (const sample of samples) {
        const h = 1e-2
        values[index] = original + h
        const up = lossOf(sample)
        values[index] = original - h
        const down = lossOf(sample)
        values[index] = original
        squares += ((up - down) / (2 * h)) ** 2
      }
      const expected = squares / samples.length
      expect(Math.abs(fisher[name]![index]! - expected)).toBeLessThan(0.03 * expected + 1e-7)
      expect(expected).toBeGreaterThan(1e-7)
    }
  })

  it("the EWC penalty's gradient matches finite differences of its value", () => {
    const random = new SeededRandom(8)
    const draw = (length: number) => Float32Array.from({ length }, () => random.uniform() * 2 - 1)
    const anchor = { a: draw(5), b: draw(3) }
    const fisher = { a: draw(5).map(Math.abs), b: draw(3).map(Math.abs) }
    const theta = new Map([["a", draw(5)], ["b", draw(3)], ["untouched", draw(2)]])
    const penalty = quadraticPenalty(ewcPenalty(anchor, fisher, 7.5))
    const { loss, grads } = penalty(theta)
    let expectedLoss = 0
    for (const name of ["a", "b"] as const) {
      theta.get(name)!.forEach((value, i) => (expectedLoss += fisher[name][i]! * (value - anchor[name][i]!) ** 2))
    }
    expect(loss).toBeCloseTo((7.5 / 2) * expectedLoss, 5)
    expect(grads.has("untouched")).toBe(false)
    for (const name of ["a", "b"]) {
      const values = theta.get(name)!
      values.forEach((original, i) => {
        const h = 1e-3
        values[i] = original + h
        const up = penalty(theta).loss
        values[i] = original - h
        const down = penalty(theta).loss
        values[i] = original
        expect(grads.get(name)![i]).toBeCloseTo((up - down) / (2 * h), 2)
      })
    }
    expect(() => ewcPenalty(anchor, { a: fisher.a }, 1)).toThrow("the Fisher diagonal has no b of its size")
  })

  it("a huge FedProx μ keeps the parameters at the anchor; μ = 0 changes nothing; frozen ones never move", () => {
    const { model, samples } = encoderTask()
    const start = snapshotParameters(new LoraTrainer(model, config, objective))
    const run = (hooks: Parameters<typeof trainAdapter>[2]) => {
      const trainer = new LoraTrainer(model, { ...config, epochs: 6 }, objective)
      const result = trainAdapter(trainer, samples, hooks)
      return { parameters: snapshotParameters(trainer), result }
    }
    const plain = run({})
    const zero = run({ regularizer: quadraticPenalty(proximalPenalty(start, 0)) })
    expect(zero.result.losses).toEqual(plain.result.losses)
    expect(zero.parameters).toEqual(plain.parameters)
    const pinned = run({ regularizer: quadraticPenalty(proximalPenalty(start, 1e6)) })
    // Adam moves each coordinate by about the learning rate per step: unpinned they drift for 12 steps,
    // pinned they only jitter around the anchor.
    const largest = (parameters: Record<string, Float32Array>) =>
      Math.max(
        ...Object.entries(parameters).map(([name, values]) =>
          Math.max(...values.map((value, i) => Math.abs(value - start[name]![i]!)))
        )
      )
    expect(largest(plain.parameters)).toBeGreaterThan(8 * config.learningRate!)
    expect(largest(pinned.parameters)).toBeLessThan(2 * config.learningRate!)
    expect(distance(pinned.parameters, start)).toBeLessThan(0.1 * distance(plain.parameters, start))
    const frozenNames = ["layers.3.query.A", "layers.3.intermediate.A"]
    const frozen = run({ frozen: new Set(frozenNames) })
    for (const name of frozenNames) expect(frozen.parameters[name]).toEqual(start[name])
    expect(frozen.parameters["layers.3.query.B"]).not.toEqual(start["layers.3.query.B"])
  })

  it("the training thread applies a penalty and frozen parameters given as plain data", async () => {
    const { bytes, model, samples } = encoderTask()
    const start = snapshotParameters(new LoraTrainer(model, config, objective))
    const penalty = proximalPenalty(start, 0.5)
    const frozen = ["layers.3.query.A"]
    const trainer = new LoraTrainer(model, config, objective)
    const here = trainAdapter(trainer, samples, { regularizer: quadraticPenalty(penalty), frozen: new Set(frozen) })
    const there = await trainInWorker({ modelBytes: bytes, config, objective, samples, penalty, frozen })
    expect(there.losses).toEqual(here.losses)
    expect(there.weights.modules["layers.3.query"]!.B).toEqual(here.weights.modules["layers.3.query"]!.B)
    expect(there.weights.modules["layers.3.query"]!.A).toEqual(start["layers.3.query.A"])
  })

  it("a micro-batch with sample weights is exactly the weighted sum of its samples, losses unweighted", () => {
    const { model, samples } = encoderTask()
    const trainer = new LoraTrainer(model, { ...config, batchSize: 8 }, objective)
    const weights = [1, 0.25, 0.5, 0.75, 1, 0.1, 0.9, 0.3]
    const batched = trainer.lossAndGrads(samples, 1, () => 0.5, weights)
    const singles = samples.map((sample) => trainer.lossAndGrads([sample], 1, () => 0.5))
    expect(batched.total).toBeCloseTo(singles.reduce((sum, one, i) => sum + weights[i]! * one.total, 0), 4)
    singles.forEach((one, i) => expect(batched.sampleLosses[i]).toBeCloseTo(one.total, 4))
    for (const [name, grad] of batched.grads) {
      const expected = new Float32Array(grad.length)
      singles.forEach((one, i) => one.grads.get(name)!.forEach((value, k) => (expected[k]! += weights[i]! * value)))
      grad.forEach((value, k) => expect(value).toBeCloseTo(expected[k]!, 5))
    }
  })

  it("training from prioritized replay lowers the loss in the steps the epochs would take", () => {
    const { model, samples } = encoderTask()
    const replayed = { ...config, replay: { alpha: 0.6, beta: 0.4 } }
    const trainer = new LoraTrainer(model, replayed, objective)
    const lossOf = () => samples.reduce((sum, sample) => sum + trainer.lossAndGrads([sample], 1, () => 0.5).total, 0)
    const before = lossOf()
    const result = trainAdapter(trainer, samples)
    expect(result.steps).toBe(plannedSteps(trainer.config, samples.length))
    expect(lossOf()).toBeLessThan(0.8 * before)
    // Not the epochs' shuffles: the same seed without replay trains to other weights.
    const plain = trainAdapter(new LoraTrainer(model, config, objective), samples)
    expect(plain.weights.modules["layers.3.query"]!.B).not.toEqual(result.weights.modules["layers.3.query"]!.B)
  })

  it("refuses bad replay exponents and a replay run resumed from a checkpoint, in one line", () => {
    const { model, samples } = encoderTask()
    expect(() => new LoraTrainer(model, { ...config, replay: { alpha: -1 } }, objective)).toThrow(
      "replay alpha must be 0 or more (not -1)"
    )
    expect(() => new LoraTrainer(model, { ...config, replay: { beta: 2 } }, objective)).toThrow(
      "replay beta must be in [0, 1] (not 2)"
    )
    const first = new LoraTrainer(model, { ...config, checkpointEvery: 1 }, objective)
    let checkpoint: ReturnType<LoraTrainer["checkpoint"]> | undefined
    trainAdapter(first, samples, { onCheckpoint: (saved) => (checkpoint ??= saved) })
    const resumed = new LoraTrainer(model, { ...config, replay: {} }, objective, checkpoint)
    expect(() => trainAdapter(resumed, samples)).toThrow(
      "a run with prioritized replay starts at step 0: its priorities are not in checkpoints"
    )
  })
})
