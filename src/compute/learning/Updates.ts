/**
 * A peer's contribution to a federated round: named tensors (a LoRA module's dense update ΔW, or only its
 * B factor when A is frozen and shared, and the classifier head) flattened into one vector, with the
 * number of samples it was trained on. Aggregators and gossip work on the vectors; the layout says which
 * coordinates belong to which tensor, so the result goes back into an adapter.
 *
 * Dense ΔW rather than the factors, because the mean of products is not the product of means: averaging
 * A and B separately is not averaging the updates (see `refactorMean` and `sharedAMean`).
 */
import { Data } from "effect"
import type { LoraModule, LoraWeights } from "../lora/Adapter.js"
import { deltaWeight, scaleOf } from "../lora/Adapter.js"
import { refactorDelta } from "../lora/LowRank.js"
import type { ClassifierHead } from "../lora/train/ClassifierHead.js"
import { HEAD_BIAS, HEAD_WEIGHT } from "../lora/train/ClassifierHead.js"

export class LearningError extends Data.TaggedError("LearningError")<{
  readonly kind: "NoUpdates" | "Mismatch" | "NonFinite" | "BadOptions"
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

export const refuse = (kind: LearningError["kind"], reason: string): never => {
  throw new LearningError({ kind, reason })
}

/** One tensor of an update: its name, shape, and where its values sit in the flat vector. */
export interface LayoutEntry {
  readonly name: string
  readonly shape: ReadonlyArray<number>
  readonly offset: number
  readonly length: number
}

export type UpdateLayout = ReadonlyArray<LayoutEntry>

export interface PeerUpdate {
  readonly peer: string
  /** Samples the update was trained on: FedAvg's weight. */
  readonly samples: number
  readonly layout: UpdateLayout
  readonly vector: Float32Array
}

/** Named tensors with shapes as one update, tensors in name order so that every peer's layout agrees. */
export const packUpdate = (
  peer: string,
  samples: number,
  tensors: ReadonlyArray<
    { readonly name: string; readonly shape: ReadonlyArray<number>; readonly values: Float32Array }
  >
): PeerUpdate => {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  let offset = 0
  const layout = sorted.map(({ name, shape, values }) => {
    const length = shape.reduce((product, dim) => product * dim, 1)
    if (length !== values.length) refuse("Mismatch", `${name} has shape [${shape}] but ${values.length} values`)
    const entry = { name, shape, offset, length }
    offset += length
    return entry
  })
  const vector = new Float32Array(offset)
  sorted.forEach(({ values }, index) => vector.set(values, layout[index]!.offset))
  return { peer, samples, layout, vector }
}

/** The values of one named tensor of an update (a view, not a copy). */
export const tensorOf = (update: Pick<PeerUpdate, "layout" | "vector">, name: string): Float32Array => {
  const entry = update.layout.find((candidate) => candidate.name === name)
  if (entry === undefined) return refuse("Mismatch", `the update has no tensor ${name}`)
  return update.vector.subarray(entry.offset, entry.offset + entry.length)
}

const headTensors = (head: ClassifierHead | undefined, before: ClassifierHead | undefined) => {
  if (head === undefined) return []
  const minus = (values: Float32Array, base: Float32Array | undefined) =>
    base === undefined ? values.slice() : Float32Array.from(values, (value, index) => value - base[index]!)
  return [
    { name: HEAD_WEIGHT, shape: [head.hidden, head.classes], values: minus(head.weight, before?.weight) },
    { name: HEAD_BIAS, shape: [head.classes], values: minus(head.bias, before?.bias) }
  ]
}

/** A model as a peer holds it: its adapter and, for a classifier, its head. */
export interface AdaptedModel {
  readonly weights: LoraWeights
  readonly head?: ClassifierHead | undefined
}

/**
 * The dense update from `before` to `after`: per module ΔW_after - ΔW_before ([in, out], as deltaWeight
 * lays it out) and the head's difference. Without `before`, the update from the base model.
 */
export const denseUpdate = (
  peer: string,
  samples: number,
  after: AdaptedModel,
  before?: AdaptedModel
): PeerUpdate => {
  const scale = scaleOf(after.weights)
  const tensors = Object.entries(after.weights.modules).map(([name, module]) => {
    const values = deltaWeight(module, after.weights.rank, scale)
    const previous = before?.weights.modules[name]
    if (previous !== undefined) {
      const old = deltaWeight(previous, before!.weights.rank, scaleOf(before!.weights))
      for (let i = 0; i < values.length; i++) values[i]! -= old[i]!
    }
    return { name, shape: [module.inFeatures, module.outFeatures], values }
  })
  return packUpdate(peer, samples, [...tensors, ...headTensors(after.head, before?.head)])
}

/**
 * The update of an adapter whose A factors are frozen and shared (FFA-LoRA): only B and the head move,
 * so the update is B_after - B_before per module. `sharedAMean` shows why averaging it is exact.
 */
export const sharedAUpdate = (
  peer: string,
  samples: number,
  after: AdaptedModel,
  before: AdaptedModel
): PeerUpdate => {
  const tensors = Object.entries(after.weights.modules).map(([name, module]) => {
    const previous = before.weights.modules[name]
    if (previous === undefined) return refuse("Mismatch", `the starting adapter has no module ${name}`)
    if (!sameValues(previous.A, module.A)) {
      refuse("Mismatch", `${name}: A changed, so this is not a frozen-A (FFA-LoRA) update`)
    }
    return {
      name,
      shape: [module.outFeatures, after.weights.rank],
      values: Float32Array.from(module.B, (value, index) => value - previous.B[index]!)
    }
  })
  return packUpdate(peer, samples, [...tensors, ...headTensors(after.head, before.head)])
}

const sameValues = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((value, i) => value === b[i])

/** `before` moved by a frozen-A update (B + ΔB, head + Δhead): the model a peer continues from. */
export const applySharedAUpdate = (before: AdaptedModel, update: Pick<PeerUpdate, "layout" | "vector">) => {
  const modules = Object.fromEntries(
    Object.entries(before.weights.modules).map(([name, module]): [string, LoraModule] => {
      const delta = tensorOf(update, name)
      return [name, { ...module, A: module.A.slice(), B: Float32Array.from(module.B, (value, i) => value + delta[i]!) }]
    })
  )
  const head = before.head === undefined ? undefined : applyHead(before.head, update)
  return { weights: { ...before.weights, modules }, ...(head === undefined ? {} : { head }) }
}

const applyHead = (head: ClassifierHead, update: Pick<PeerUpdate, "layout" | "vector">): ClassifierHead => {
  const weight = tensorOf(update, HEAD_WEIGHT)
  const bias = tensorOf(update, HEAD_BIAS)
  return {
    ...head,
    weight: Float32Array.from(head.weight, (value, i) => value + weight[i]!),
    bias: Float32Array.from(head.bias, (value, i) => value + bias[i]!)
  }
}

export interface Refactoring {
  readonly model: AdaptedModel
  /** Per module, ‖ΔW - scale · Aᵀ Bᵀ‖_F / ‖ΔW‖_F of the re-factored adapter. */
  readonly relativeErrors: Readonly<Record<string, number>>
}

/**
 * The model `before` moved by a dense update, as an adapter of `rank`: per module the new dense
 * ΔW_before + ΔW_update re-factored by truncated SVD (exact when its rank is at most `rank`, the best
 * rank-`rank` approximation otherwise, with the error reported), the head moved by its difference.
 */
export const applyDenseUpdate = (
  before: AdaptedModel,
  update: Pick<PeerUpdate, "layout" | "vector">,
  rank: number = before.weights.rank,
  alpha: number = before.weights.alpha * (rank / before.weights.rank)
): Refactoring => {
  const scale = alpha / rank
  const relativeErrors: Record<string, number> = {}
  const modules = Object.fromEntries(
    Object.entries(before.weights.modules).map(([name, module]): [string, LoraModule] => {
      const delta = tensorOf(update, name)
      const base = deltaWeight(module, before.weights.rank, scaleOf(before.weights))
      const target = Float64Array.from(base, (value, i) => value + delta[i]!)
      const refactored = refactorDelta(target, module.inFeatures, module.outFeatures, rank, scale)
      relativeErrors[name] = refactored.relativeError
      return [name, refactored.module]
    })
  )
  const head = before.head === undefined ? undefined : applyHead(before.head, update)
  return { model: { weights: { rank, alpha, modules }, ...(head === undefined ? {} : { head }) }, relativeErrors }
}

/** ‖a - b‖² in float64. */
export const squaredDistance = (a: Float32Array, b: Float32Array): number => {
  let sum = 0
  for (let i = 0; i < a.length; i++) {
    const difference = a[i]! - b[i]!
    sum += difference * difference
  }
  return sum
}

/** ‖v‖₂ in float64. */
export const norm = (vector: Float32Array): number => {
  let sum = 0
  for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!
  return Math.sqrt(sum)
}

/** The bytes an update costs on the wire as float32 values. */
export const wireBytes = (layout: UpdateLayout): number => layout.reduce((total, entry) => total + 4 * entry.length, 0)

/**
 * Checks that updates can be combined: at least one, every layout the first's, every value finite, and
 * sample counts positive. Returns the common layout.
 */
export const checkUpdates = (updates: ReadonlyArray<PeerUpdate>): UpdateLayout => {
  const first = updates[0]
  if (first === undefined) return refuse("NoUpdates", "no updates to aggregate")
  const describe = (layout: UpdateLayout) => layout.map((entry) => `${entry.name}[${entry.shape}]`).join(", ")
  const expected = describe(first.layout)
  for (const update of updates) {
    if (!(update.samples > 0) || !Number.isFinite(update.samples)) {
      refuse("BadOptions", `update of ${update.peer} claims ${update.samples} samples; a count is positive`)
    }
    if (update.layout !== first.layout && describe(update.layout) !== expected) {
      refuse(
        "Mismatch",
        `update of ${update.peer} has tensors ${describe(update.layout).slice(0, 200)}, not ${expected.slice(0, 200)}`
      )
    }
    const bad = update.vector.findIndex((value) => !Number.isFinite(value))
    if (bad >= 0) {
      const entry = first.layout.find((candidate) => bad < candidate.offset + candidate.length)
      refuse("NonFinite", `update of ${update.peer} has ${update.vector[bad]} in ${entry?.name ?? "?"} at ${bad}`)
    }
  }
  return first.layout
}
