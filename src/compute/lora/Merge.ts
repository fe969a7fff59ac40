/**
 * Merging LoRA adapters of one base model: TIES, DARE and task arithmetic on each module's dense update
 * ΔW = scale · Aᵀ Bᵀ, the merged update re-factored to LoRA factors of a chosen rank by truncated SVD.
 *
 * Adapters are merged module by module in float64. A module one adapter lacks counts as ΔW = 0 for it
 * (the adapter leaves that layer as it is). Each method, with τ_t the update of adapter t:
 * - task arithmetic: Σ_t w_t τ_t (Ilharco et al.).
 * - TIES (Yadav et al., "TIES-Merging"): trim each τ_t, removing its ⌊trimFraction · n + ½⌋
 *   smallest-magnitude entries of the module's n (equal magnitudes go in index order); elect a sign
 *   per entry; average the trimmed values that carry the elected sign (the disjoint mean; 0 where none
 *   does); multiply by `scalingCoef`. Sign election `weighted` is the paper's rule and mergekit's
 *   `sum`: the sign of Σ_t τ̂_t, every value voting with its magnitude. `majority` is mergekit's
 *   `count`: the sign of Σ_t sgn(τ̂_t), one vote per adapter with a surviving value; a tied count
 *   falls back to the weighted rule (mergekit elects + there). A zero sum elects +, as in mergekit.
 * - DARE (Yu et al., "Language Models are Super Mario"): drop each entry of each τ_t with probability
 *   `dropRate`, divide survivors by 1 - dropRate when `rescale`, then Σ_t w_t (w_t = 1 by default).
 *   Entry e of adapter t is dropped when its draw u < dropRate, u = `SeededRandom(seed).uniform()`
 *   drawn for every entry (dropped or not, zero or not) in this order: modules by name (code units),
 *   adapters in the order given, entries row-major in ΔW's [in, out] layout. The seed and the number
 *   of draws are in the report, so tools/lora_merge_reference.py reproduces the drops.
 */
import { Data, Either } from "effect"
import type { LoraModule, LoraWeights } from "./Adapter.js"
import { scaleOf, SeededRandom } from "./Adapter.js"
import { refactorDelta } from "./LowRank.js"

export interface MergeInput {
  readonly id: string
  /** SHA-256 of the base model's ONNX file the adapter was made for: merging requires one for all. */
  readonly baseModelDigest: string
  readonly weights: LoraWeights
}

export interface TaskArithmetic {
  readonly method: "task_arithmetic"
  /** One per adapter. */
  readonly weights: ReadonlyArray<number>
}

export interface Ties {
  readonly method: "ties"
  /** Fraction of each update's smallest-magnitude entries removed, 0 to 1. */
  readonly trimFraction: number
  readonly signElection: "majority" | "weighted"
  readonly scalingCoef: number
}

export interface Dare {
  readonly method: "dare"
  /** Probability of dropping each entry, 0 to below 1. */
  readonly dropRate: number
  readonly rescale: boolean
  /** A non-negative safe integer. */
  readonly seed: number
  /** One per adapter; all 1 when absent. */
  readonly weights?: ReadonlyArray<number>
}

export type MergeMethod = TaskArithmetic | Ties | Dare

export interface MergeTarget {
  /** Rank of the merged adapter; defaults to the largest input rank. */
  readonly rank?: number
  /** Alpha of the merged adapter; defaults to its rank (scale 1). The factors absorb whatever scale results. */
  readonly alpha?: number
}

export class MergeError extends Data.TaggedError("MergeError")<{
  readonly kind: "BaseModelMismatch" | "ShapeMismatch" | "BadAdapter" | "BadOptions"
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

export interface MergedDelta {
  readonly inFeatures: number
  readonly outFeatures: number
  /** The merged ΔW, [in, out] row-major. */
  readonly delta: Float64Array
  /** TIES: entries trimmed, summed over adapters. */
  readonly trimmed?: number
  /** DARE: entries dropped, summed over adapters. */
  readonly dropped?: number
}

export interface MergeRandomness {
  readonly generator: "xoshiro128**"
  readonly seed: number
  readonly draws: number
}

export interface MergedDeltas {
  readonly modules: Readonly<Record<string, MergedDelta>>
  /** DARE only. */
  readonly random?: MergeRandomness
}

export interface ModuleMergeReport {
  readonly inFeatures: number
  readonly outFeatures: number
  readonly trimmed?: number
  readonly dropped?: number
  /** Leading singular values of the merged ΔW, as many as the merged adapter keeps. */
  readonly singularValues: ReadonlyArray<number>
  /** ‖ΔW - ΔW_refactored‖_F / ‖ΔW‖_F: what re-factoring to the target rank lost. */
  readonly refactorError: number
}

export interface MergeReport {
  readonly method: MergeMethod
  readonly adapters: ReadonlyArray<string>
  readonly baseModelDigest: string
  readonly rank: number
  readonly alpha: number
  readonly modules: Readonly<Record<string, ModuleMergeReport>>
  readonly random?: MergeRandomness
}

export interface MergedAdapter {
  readonly weights: LoraWeights
  readonly report: MergeReport
}

const refuse = (kind: MergeError["kind"], reason: string) => Either.left(new MergeError({ kind, reason }))

/** The first reason these adapters and options cannot be merged, if any. */
const problemOf = (adapters: ReadonlyArray<MergeInput>, method: MergeMethod): MergeError | undefined => {
  const fail = (kind: MergeError["kind"], reason: string) => new MergeError({ kind, reason })
  const first = adapters[0]
  if (first === undefined) return fail("BadOptions", "nothing to merge: no adapters given")
  for (const adapter of adapters) {
    if (adapter.baseModelDigest !== first.baseModelDigest) {
      return fail(
        "BaseModelMismatch",
        `adapter ${adapter.id} was made for base model ${adapter.baseModelDigest}, adapter ${first.id} for ${first.baseModelDigest}: adapters of different base models cannot be merged`
      )
    }
  }
  const shapes = new Map<string, { readonly id: string; readonly inFeatures: number; readonly outFeatures: number }>()
  for (const { id, weights } of adapters) {
    if (!Number.isInteger(weights.rank) || weights.rank < 1 || !(weights.alpha > 0)) {
      return fail(
        "BadAdapter",
        `adapter ${id} has rank ${weights.rank} and alpha ${weights.alpha}; a rank is a positive integer and alpha positive`
      )
    }
    for (const [name, module] of Object.entries(weights.modules)) {
      const { inFeatures, outFeatures, A, B } = module
      if (A.length !== weights.rank * inFeatures || B.length !== outFeatures * weights.rank) {
        return fail(
          "BadAdapter",
          `adapter ${id} module ${name}: A holds ${A.length} and B ${B.length} values, not rank ${weights.rank} × ${inFeatures} and ${outFeatures} × rank`
        )
      }
      if (!A.every(Number.isFinite) || !B.every(Number.isFinite)) {
        return fail("BadAdapter", `adapter ${id} module ${name} holds a non-finite value`)
      }
      const seen = shapes.get(name)
      if (seen === undefined) shapes.set(name, { id, inFeatures, outFeatures })
      else if (seen.inFeatures !== inFeatures || seen.outFeatures !== outFeatures) {
        return fail(
          "ShapeMismatch",
          `module ${name} is [${seen.inFeatures}, ${seen.outFeatures}] in adapter ${seen.id} but [${inFeatures}, ${outFeatures}] in adapter ${id}`
        )
      }
    }
  }
  const weights = method.method === "ties" ? undefined : method.weights
  if (weights !== undefined && (weights.length !== adapters.length || !weights.every(Number.isFinite))) {
    return fail(
      "BadOptions",
      `${method.method} needs one finite weight per adapter: ${adapters.length} adapters, weights [${
        weights.join(", ")
      }]`
    )
  }
  if (method.method === "ties") {
    if (!(method.trimFraction >= 0 && method.trimFraction <= 1)) {
      return fail("BadOptions", `TIES trimFraction must be between 0 and 1, not ${method.trimFraction}`)
    }
    if (!Number.isFinite(method.scalingCoef)) {
      return fail("BadOptions", `TIES scalingCoef must be finite, not ${method.scalingCoef}`)
    }
  }
  if (method.method === "dare") {
    if (!(method.dropRate >= 0 && method.dropRate < 1)) {
      return fail("BadOptions", `DARE dropRate must be at least 0 and below 1, not ${method.dropRate}`)
    }
    if (!Number.isSafeInteger(method.seed) || method.seed < 0) {
      return fail("BadOptions", `DARE seed must be a non-negative safe integer, not ${method.seed}`)
    }
  }
  return undefined
}

/** scale · Aᵀ Bᵀ in float64, [in, out]: each entry summed over rank in order, then scaled. */
const denseDelta = (module: LoraModule, rank: number, scale: number): Float64Array => {
  const { inFeatures, outFeatures, A, B } = module
  const delta = new Float64Array(inFeatures * outFeatures)
  for (let i = 0; i < inFeatures; i++) {
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0
      for (let r = 0; r < rank; r++) sum += A[r * inFeatures + i]! * B[o * rank + r]!
      delta[i * outFeatures + o] = scale * sum
    }
  }
  return delta
}

/** A copy of `values` with its `count` smallest magnitudes zeroed, equal magnitudes in index order. */
const trimSmallest = (values: Float64Array, count: number): Float64Array => {
  const trimmed = Float64Array.from(values)
  if (count === 0) return trimmed
  const magnitudes = Float64Array.from(values, Math.abs).sort()
  const threshold = magnitudes[count - 1]!
  let tiesToRemove = count - magnitudes.indexOf(threshold)
  for (let e = 0; e < trimmed.length; e++) {
    const magnitude = Math.abs(trimmed[e]!)
    if (magnitude < threshold) trimmed[e] = 0
    else if (magnitude === threshold && tiesToRemove > 0) {
      trimmed[e] = 0
      tiesToRemove--
    }
  }
  return trimmed
}

const ties = (updates: ReadonlyArray<Float64Array>, options: Ties): { delta: Float64Array; trimmed: number } => {
  const entries = updates[0]!.length
  const removed = Math.min(entries, Math.floor(options.trimFraction * entries + 0.5))
  const trimmed = updates.map((update) => trimSmallest(update, removed))
  const delta = new Float64Array(entries)
  for (let e = 0; e < entries; e++) {
    let mass = 0
    let votes = 0
    for (const update of trimmed) {
      mass += update[e]!
      votes += Math.sign(update[e]!)
    }
    const elected = options.signElection === "majority" && votes !== 0 ? Math.sign(votes) : mass >= 0 ? 1 : -1
    let sum = 0
    let agreeing = 0
    for (const update of trimmed) {
      if (Math.sign(update[e]!) === elected) {
        sum += update[e]!
        agreeing++
      }
    }
    delta[e] = agreeing === 0 ? 0 : (sum / agreeing) * options.scalingCoef
  }
  return { delta, trimmed: removed * updates.length }
}

const weightedSum = (updates: ReadonlyArray<Float64Array>, weights: ReadonlyArray<number>): Float64Array => {
  const delta = new Float64Array(updates[0]!.length)
  updates.forEach((update, t) => {
    for (let e = 0; e < delta.length; e++) delta[e]! += weights[t]! * update[e]!
  })
  return delta
}

const dare = (
  updates: ReadonlyArray<Float64Array>,
  options: Dare,
  random: SeededRandom
): { delta: Float64Array; dropped: number } => {
  const keptFactor = options.rescale ? 1 / (1 - options.dropRate) : 1
  let dropped = 0
  const thinned = updates.map((update) =>
    update.map((value) => {
      if (random.uniform() < options.dropRate) {
        dropped++
        return 0
      }
      return value * keptFactor
    })
  )
  return { delta: weightedSum(thinned, options.weights ?? updates.map(() => 1)), dropped }
}

/** The merged dense update of every module any adapter holds, before re-factoring. */
export const mergeDeltas = (
  adapters: ReadonlyArray<MergeInput>,
  method: MergeMethod
): Either.Either<MergedDeltas, MergeError> => {
  const problem = problemOf(adapters, method)
  if (problem !== undefined) return Either.left(problem)
  const names = [...new Set(adapters.flatMap(({ weights }) => Object.keys(weights.modules)))].sort()
  const random = method.method === "dare" ? new SeededRandom(method.seed) : undefined
  const modules: Record<string, MergedDelta> = {}
  for (const name of names) {
    const { inFeatures, outFeatures } = adapters.map(({ weights }) => weights.modules[name]).find((module) =>
      module !== undefined
    )!
    const updates = adapters.map(({ weights }) => {
      const module = weights.modules[name]
      return module === undefined
        ? new Float64Array(inFeatures * outFeatures)
        : denseDelta(module, weights.rank, scaleOf(weights))
    })
    if (method.method === "task_arithmetic") {
      modules[name] = { inFeatures, outFeatures, delta: weightedSum(updates, method.weights) }
    } else if (method.method === "ties") {
      const { delta, trimmed } = ties(updates, method)
      modules[name] = { inFeatures, outFeatures, delta, trimmed }
    } else {
      const { delta, dropped } = dare(updates, method, random!)
      modules[name] = { inFeatures, outFeatures, delta, dropped }
    }
  }
  return Either.right(
    random === undefined
      ? { modules }
      : { modules, random: { generator: "xoshiro128**", seed: random.seed, draws: random.draws } }
  )
}

/**
 * Merges adapters of one base model into one LoRA adapter of `target.rank` (default: the largest
 * input rank) and `target.alpha` (default: that rank), with a report of what each module's
 * re-factoring lost. Refuses, with one line, adapters of different base models, modules whose shapes
 * disagree, and options out of range.
 */
export const mergeAdapters = (
  adapters: ReadonlyArray<MergeInput>,
  method: MergeMethod,
  target: MergeTarget = {}
): Either.Either<MergedAdapter, MergeError> =>
  Either.flatMap(mergeDeltas(adapters, method), (merged) => {
    const rank = target.rank ?? Math.max(...adapters.map(({ weights }) => weights.rank))
    const alpha = target.alpha ?? rank
    if (!Number.isInteger(rank) || rank < 1) {
      return refuse("BadOptions", `the merged rank must be a positive integer, not ${rank}`)
    }
    if (!(alpha > 0 && Number.isFinite(alpha))) {
      return refuse("BadOptions", `the merged alpha must be positive, not ${alpha}`)
    }
    const modules: Record<string, LoraModule> = {}
    const reports: Record<string, ModuleMergeReport> = {}
    for (const [name, { inFeatures, outFeatures, delta, trimmed, dropped }] of Object.entries(merged.modules)) {
      const refactored = refactorDelta(delta, inFeatures, outFeatures, rank, alpha / rank)
      modules[name] = refactored.module
      reports[name] = {
        inFeatures,
        outFeatures,
        ...(trimmed === undefined ? {} : { trimmed }),
        ...(dropped === undefined ? {} : { dropped }),
        singularValues: Array.from(refactored.singularValues),
        refactorError: refactored.relativeError
      }
    }
    const report: MergeReport = {
      method,
      adapters: adapters.map(({ id }) => id),
      baseModelDigest: adapters[0]!.baseModelDigest,
      rank,
      alpha,
      modules: reports,
      ...(merged.random === undefined ? {} : { random: merged.random })
    }
    return Either.right({ weights: { rank, alpha, modules }, report })
  })
