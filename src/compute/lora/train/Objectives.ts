/**
 * The two training objectives and their batches: next-token prediction over windows of token ids for a
 * causal LM, and sequence classification for an encoder through the mask-weighted mean of its output.
 */
import type { OnnxModel } from "../../onnx/OnnxModel.js"
import { logSumExp, softmaxInto } from "../../validate/Metrics.js"
import { simdSoftmaxRows } from "./RowKernels.js"
import type { FloatTensor, Tensor } from "./Tensor.js"
import { floatTensor, intTensor, unfilledFloats } from "./Tensor.js"

/** A causal LM learns to predict each next token of equally long windows of token ids. */
export interface CausalLmSample {
  readonly ids: ReadonlyArray<number>
}

/** An encoder learns to give a sequence its class label. */
export interface ClassificationSample {
  readonly ids: ReadonlyArray<number>
  readonly label: number
}

export type Objective = { readonly kind: "causal-lm" } | {
  readonly kind: "classification"
  readonly classes: number
  readonly padId?: number
}

export type Sample = CausalLmSample | ClassificationSample
const symbolicDims = (model: OnnxModel, name: string): Array<number | string> =>
  (model.graph.inputs.find((input) => input.name === name)?.type?.tensorType?.shape ?? []).map((dim) =>
    dim.value ?? dim.param ?? "?"
  )

/** Feeds for a batch of token rows (right-padded to one length, mask 0 on padding), empty KV cache. */
export const tokenFeeds = (
  model: OnnxModel,
  rows: ReadonlyArray<ReadonlyArray<number>>,
  padId = 0
): Map<string, Tensor> => {
  const batch = rows.length
  const length = Math.max(...rows.map((row) => row.length))
  const ids = new Float64Array(batch * length).fill(padId)
  const mask = new Float64Array(batch * length)
  const positions = new Float64Array(batch * length)
  rows.forEach((row, b) => {
    for (let t = 0; t < length; t++) {
      positions[b * length + t] = t
      if (t < row.length) {
        ids[b * length + t] = row[t]!
        mask[b * length + t] = 1
      }
    }
  })
  const feeds = new Map<string, Tensor>()
  for (const input of model.graph.inputs) {
    const name = input.name
    if (name === "input_ids") feeds.set(name, intTensor([batch, length], ids))
    else if (name === "attention_mask") feeds.set(name, intTensor([batch, length], mask))
    else if (name === "position_ids") feeds.set(name, intTensor([batch, length], positions))
    else if (name === "token_type_ids") feeds.set(name, intTensor([batch, length]))
    else if (name.startsWith("past_key_values")) {
      const dims = symbolicDims(model, name).map((
        dim,
        axis
      ) => (axis === 0 ? batch : axis === 2 ? 0 : typeof dim === "number" ? dim : 1))
      feeds.set(name, floatTensor(dims))
    }
  }
  return feeds
}

/**
 * Summed next-token negative log-likelihood of logits [B, T, V], each row's mean per token
 * (`rowLosses`, unweighted), and optionally the gradient scaled by `gradScale`. With `rowWeights`,
 * each row's terms in the sum and the gradient are scaled by its weight (prioritized replay's
 * importance-sampling weights).
 */
export const nextTokenLoss = (
  logits: FloatTensor,
  rows: ReadonlyArray<ReadonlyArray<number>>,
  gradScale?: number,
  rowWeights?: ArrayLike<number>
) => {
  const [batch, length, vocab] = logits.dims as [number, number, number]
  // Every position with a target gets its row written; the rest (each row's last, padding) are zeroed below.
  const grad = gradScale === undefined ? undefined : unfilledFloats(logits.data.length)
  let total = 0
  let count = 0
  const rowLosses = new Float64Array(batch)
  const x = logits.data
  const logSumExps = new Float64Array(length)
  for (let b = 0; b < batch; b++) {
    const row = rows[b]!
    const weight = rowWeights?.[b] ?? 1
    const scale = gradScale === undefined ? 0 : gradScale * weight
    const positions = Math.max(0, Math.min(length, row.length) - 1)
    grad?.fill(0, (b * length + positions) * vocab, (b + 1) * length * vocab)
    // The whole row's softmax at once in SIMD where it runs; its log-sum-exps come with it.
    const softmaxed = grad !== undefined && simdSoftmaxRows(x, b * length * vocab, positions, vocab, grad, logSumExps)
    let rowTotal = 0
    for (let t = 0; t < positions; t++) {
      const start = (b * length + t) * vocab
      const target = row[t + 1]!
      count++
      if (grad === undefined) {
        rowTotal += logSumExp(x, start, vocab) - x[start + target]!
        continue
      }
      rowTotal += (softmaxed ? logSumExps[t]! : softmaxInto(x, start, vocab, grad)) - x[start + target]!
      for (let v = 0; v < vocab; v++) grad[start + v]! *= scale
      grad[start + target]! -= scale
    }
    total += weight * rowTotal
    rowLosses[b] = positions === 0 ? 0 : rowTotal / positions
  }
  return { total, count, grad, rowLosses }
}

/** The mask-weighted mean over positions of hidden [B, T, H]. */
export const meanPool = (hidden: FloatTensor, rows: ReadonlyArray<ReadonlyArray<number>>): Float32Array => {
  const [batch, length, width] = hidden.dims as [number, number, number]
  const pooled = new Float32Array(batch * width)
  for (let b = 0; b < batch; b++) {
    const count = Math.min(length, rows[b]!.length)
    for (let t = 0; t < count; t++) {
      const from = (b * length + t) * width
      for (let h = 0; h < width; h++) pooled[b * width + h]! += hidden.data[from + h]! / count
    }
  }
  return pooled
}
