/**
 * Averaging LoRA adapters, and why the factors cannot simply be averaged: the mean of products
 * (1/n) Σ B_i A_i is not (mean B)(mean A) when the A_i differ. Two exact ways out:
 *
 * - average the dense updates ΔW_i = scale · B_i A_i and re-factor the mean by truncated SVD
 *   (`refactorMean`): exact at a rank of at least Σ rank_i, the best approximation below it, the error
 *   reported;
 * - freeze A and share it (FFA-LoRA, Sun et al. 2024): then (1/n) Σ B_i A = (mean B) A, so averaging B
 *   alone is exact (`sharedAMean`), and only B travels.
 *
 * `factorMean` is the wrong average, kept to show the difference.
 */
import type { LoraModule, LoraWeights } from "../lora/Adapter.js"
import { deltaWeight, scaleOf } from "../lora/Adapter.js"
import { refactorDelta } from "../lora/LowRank.js"
import { refuse } from "./Updates.js"

const normalized = (count: number, weights?: ReadonlyArray<number>): Array<number> => {
  if (count === 0) return refuse("NoUpdates", "no adapters to average")
  const given = weights ?? Array.from({ length: count }, () => 1)
  if (given.length !== count) refuse("BadOptions", `${given.length} weights for ${count} adapters`)
  const total = given.reduce((sum, weight) => sum + weight, 0)
  if (!given.every((weight) => weight >= 0) || !(total > 0)) {
    refuse("BadOptions", `weights must be non-negative with a positive sum, not ${given.join(", ")}`)
  }
  return given.map((weight) => weight / total)
}

const moduleNames = (adapters: ReadonlyArray<LoraWeights>): Array<string> => {
  const names = Object.keys(adapters[0]!.modules).sort()
  for (const adapter of adapters) {
    const other = Object.keys(adapter.modules).sort()
    if (other.join(",") !== names.join(",")) {
      refuse("Mismatch", `adapters adapt different modules: ${names.join(", ")} vs ${other.join(", ")}`)
    }
    for (const name of names) {
      const [a, b] = [adapters[0]!.modules[name]!, adapter.modules[name]!]
      if (a.inFeatures !== b.inFeatures || a.outFeatures !== b.outFeatures) {
        refuse(
          "Mismatch",
          `${name} is [${a.inFeatures}, ${a.outFeatures}] in one adapter, [${b.inFeatures}, ${b.outFeatures}] in another`
        )
      }
    }
  }
  return names
}

/** Per module, Σ w_i scale_i B_i A_i as ΔW [in, out] in float64: the average the others must reproduce. */
export const meanOfProducts = (
  adapters: ReadonlyArray<LoraWeights>,
  weights?: ReadonlyArray<number>
): Record<string, Float64Array> => {
  const shares = normalized(adapters.length, weights)
  return Object.fromEntries(
    moduleNames(adapters).map((name) => {
      const first = adapters[0]!.modules[name]!
      const sum = new Float64Array(first.inFeatures * first.outFeatures)
      adapters.forEach((adapter, index) => {
        const delta = deltaWeight(adapter.modules[name]!, adapter.rank, scaleOf(adapter))
        for (let i = 0; i < sum.length; i++) sum[i]! += shares[index]! * delta[i]!
      })
      return [name, sum]
    })
  )
}

/**
 * The average of the adapters' dense updates, re-factored to `rank` (alpha = rank, scale 1, unless
 * given): exact when `rank` reaches the sum of their ranks.
 */
export const refactorMean = (
  adapters: ReadonlyArray<LoraWeights>,
  rank: number,
  options: { readonly weights?: ReadonlyArray<number>; readonly alpha?: number } = {}
): { readonly weights: LoraWeights; readonly relativeErrors: Readonly<Record<string, number>> } => {
  const alpha = options.alpha ?? rank
  const means = meanOfProducts(adapters, options.weights)
  const relativeErrors: Record<string, number> = {}
  const modules = Object.fromEntries(
    Object.entries(means).map(([name, delta]): [string, LoraModule] => {
      const { inFeatures, outFeatures } = adapters[0]!.modules[name]!
      const refactored = refactorDelta(delta, inFeatures, outFeatures, rank, alpha / rank)
      relativeErrors[name] = refactored.relativeError
      return [name, refactored.module]
    })
  )
  return { weights: { rank, alpha, modules }, relativeErrors }
}

/** FFA-LoRA's average: the shared A, the weighted mean of B. Refuses adapters whose A differ. */
export const sharedAMean = (adapters: ReadonlyArray<LoraWeights>, weights?: ReadonlyArray<number>): LoraWeights => {
  const shares = normalized(adapters.length, weights)
  const first = adapters[0]!
  const names = moduleNames(adapters)
  for (const adapter of adapters) {
    if (adapter.rank !== first.rank || adapter.alpha !== first.alpha) {
      refuse("Mismatch", `rank/alpha ${adapter.rank}/${adapter.alpha} differs from ${first.rank}/${first.alpha}`)
    }
    for (const name of names) {
      const [a, b] = [first.modules[name]!.A, adapter.modules[name]!.A]
      if (a.some((value, i) => value !== b[i])) {
        refuse("Mismatch", `${name}: the adapters' A differ, so A is not shared`)
      }
    }
  }
  const modules = Object.fromEntries(names.map((name): [string, LoraModule] => {
    const module = first.modules[name]!
    const B = new Float64Array(module.B.length)
    adapters.forEach((adapter, index) => {
      const values = adapter.modules[name]!.B
      for (let i = 0; i < B.length; i++) B[i]! += shares[index]! * values[i]!
    })
    return [name, { ...module, A: module.A.slice(), B: Float32Array.from(B) }]
  }))
  return { rank: first.rank, alpha: first.alpha, modules }
}

/** The naive average: mean A and mean B separately. Not the mean of the updates unless A is shared. */
export const factorMean = (adapters: ReadonlyArray<LoraWeights>, weights?: ReadonlyArray<number>): LoraWeights => {
  const shares = normalized(adapters.length, weights)
  const first = adapters[0]!
  const mean = (pick: (adapter: LoraWeights) => Float32Array) => {
    const sum = new Float64Array(pick(first).length)
    adapters.forEach((adapter, index) => {
      const values = pick(adapter)
      for (let i = 0; i < sum.length; i++) sum[i]! += shares[index]! * values[i]!
    })
    return Float32Array.from(sum)
  }
  const modules = Object.fromEntries(
    moduleNames(adapters).map((name): [string, LoraModule] => [name, {
      ...first.modules[name]!,
      A: mean((adapter) => adapter.modules[name]!.A),
      B: mean((adapter) => adapter.modules[name]!.B)
    }])
  )
  return { rank: first.rank, alpha: first.alpha, modules }
}
