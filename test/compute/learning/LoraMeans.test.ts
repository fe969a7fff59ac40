/**
 * Averaging adapters: the product of mean factors is not the mean of the updates when A differs, while
 * the dense average re-factored at the summed rank reproduces it, and with a frozen shared A (FFA-LoRA)
 * averaging B alone is exact; the same through peers' updates, FedAvg and re-factoring.
 */
import { describe, expect, it } from "@effect/vitest"
import { aggregate } from "../../../src/compute/learning/Aggregators.js"
import { factorMean, meanOfProducts, refactorMean, sharedAMean } from "../../../src/compute/learning/LoraMeans.js"
import {
  applyDenseUpdate,
  applySharedAUpdate,
  denseUpdate,
  sharedAUpdate
} from "../../../src/compute/learning/Updates.js"
import type { LoraModule, LoraWeights } from "../../../src/compute/lora/Adapter.js"
import { deltaWeight, scaleOf, SeededRandom } from "../../../src/compute/lora/Adapter.js"

const shapes = { "layers.0.query": [12, 10], "layers.0.output": [16, 9] } as const

const randomModule = (
  random: SeededRandom,
  rank: number,
  inFeatures: number,
  outFeatures: number,
  A?: Float32Array
) => ({
  inFeatures,
  outFeatures,
  A: A ?? Float32Array.from({ length: rank * inFeatures }, () => random.uniform() * 2 - 1),
  B: Float32Array.from({ length: outFeatures * rank }, () => random.uniform() * 2 - 1)
})

const adapter = (seed: number, rank = 2, sharedA?: LoraWeights): LoraWeights => {
  const random = new SeededRandom(seed)
  const modules: Record<string, LoraModule> = {}
  for (const [name, [inFeatures, outFeatures]] of Object.entries(shapes)) {
    modules[name] = randomModule(random, rank, inFeatures, outFeatures, sharedA?.modules[name]!.A)
  }
  return { rank, alpha: 2 * rank, modules }
}

/** ‖X - Y‖_F / ‖Y‖_F over every module, X the adapter's dense update, Y the reference. */
const relativeDifference = (weights: LoraWeights, reference: Record<string, Float64Array>) => {
  let error = 0
  let size = 0
  for (const [name, target] of Object.entries(reference)) {
    const dense = deltaWeight(weights.modules[name]!, weights.rank, scaleOf(weights))
    target.forEach((value, i) => {
      error += (dense[i]! - value) ** 2
      size += value * value
    })
  }
  return Math.sqrt(error / size)
}

describe("averaging LoRA adapters", () => {
  const adapters = [adapter(1), adapter(2), adapter(3)]
  const weights = [1, 2, 3]

  it("(c) mean(B)·mean(A) is not the mean of B_i·A_i when the A_i are independent", () => {
    const reference = meanOfProducts(adapters, weights)
    expect(relativeDifference(factorMean(adapters, weights), reference)).toBeGreaterThan(0.3)
  })

  it("(a) the dense average re-factored at rank Σ r_i reproduces the mean of products", () => {
    const reference = meanOfProducts(adapters, weights)
    const exact = refactorMean(adapters, 6, { weights })
    expect(relativeDifference(exact.weights, reference)).toBeLessThan(1e-5)
    for (const error of Object.values(exact.relativeErrors)) expect(error).toBeLessThan(1e-5)
    // Below the summed rank it is an approximation, and the reported error says so.
    const truncated = refactorMean(adapters, 3, { weights })
    const measured = relativeDifference(truncated.weights, reference)
    expect(measured).toBeGreaterThan(0.05)
    expect(Math.max(...Object.values(truncated.relativeErrors))).toBeGreaterThan(0.05)
  })

  it("(b) with a frozen shared A, mean(B_i)·A equals the mean of B_i·A", () => {
    const shared = adapter(10)
    const ffa = [adapter(11, 2, shared), adapter(12, 2, shared), adapter(13, 2, shared)]
    const reference = meanOfProducts(ffa, weights)
    expect(relativeDifference(sharedAMean(ffa, weights), reference)).toBeLessThan(1e-6)
    expect(relativeDifference(factorMean(ffa, weights), reference)).toBeLessThan(1e-6)
    expect(() => sharedAMean(adapters)).toThrow("layers.0.output: the adapters' A differ, so A is not shared")
  })

  it("peers' dense updates, averaged by FedAvg and re-factored, give the weighted mean of products", () => {
    const zero: LoraWeights = {
      rank: 6,
      alpha: 6,
      modules: Object.fromEntries(
        Object.entries(shapes).map(([name, [inFeatures, outFeatures]]) => [name, {
          inFeatures,
          outFeatures,
          A: new Float32Array(6 * inFeatures),
          B: new Float32Array(outFeatures * 6)
        }])
      )
    }
    const updates = adapters.map((weights, k) => denseUpdate(`peer-${k}`, k + 1, { weights }))
    const mean = aggregate(updates, { kind: "fedavg" })
    const global = applyDenseUpdate({ weights: zero }, mean)
    expect(relativeDifference(global.model.weights, meanOfProducts(adapters, weights))).toBeLessThan(1e-5)

    const shared = adapter(20)
    const start = { weights: shared }
    const trained = [adapter(21, 2, shared), adapter(22, 2, shared), adapter(23, 2, shared)]
    const ffaUpdates = trained.map((weights, k) => sharedAUpdate(`peer-${k}`, k + 1, { weights }, start))
    const moved = applySharedAUpdate(start, aggregate(ffaUpdates, { kind: "fedavg" }))
    expect(relativeDifference(moved.weights, meanOfProducts(trained, weights))).toBeLessThan(1e-6)
    expect(() => sharedAUpdate("x", 1, { weights: adapters[0]! }, start)).toThrow(
      "layers.0.query: A changed, so this is not a frozen-A (FFA-LoRA) update"
    )
  })
})
