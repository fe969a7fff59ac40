/**
 * Quality figures of an optimized model against its FP32 original on the same inputs: cosine
 * similarity and largest absolute error of outputs, top-1 agreement along the last axis, and
 * perplexity of next-token logits (for the language model).
 */

export const cosineSimilarity = (reference: ArrayLike<number>, candidate: ArrayLike<number>): number => {
  let dot = 0
  let left = 0
  let right = 0
  for (let i = 0; i < reference.length; i++) {
    const a = reference[i]!
    const b = candidate[i]!
    dot += a * b
    left += a * a
    right += b * b
  }
  if (left === 0 && right === 0) return 1
  if (left === 0 || right === 0) return 0
  return dot / Math.sqrt(left * right)
}

export const maxAbsoluteError = (reference: ArrayLike<number>, candidate: ArrayLike<number>): number => {
  let worst = 0
  for (let i = 0; i < reference.length; i++) {
    const error = Math.abs(reference[i]! - candidate[i]!)
    if (!(error <= worst)) worst = Number.isNaN(error) ? Infinity : error
  }
  return worst
}

const argmax = (values: ArrayLike<number>, start: number, length: number) => {
  let best = start
  for (let i = start + 1; i < start + length; i++) if (values[i]! > values[best]!) best = i
  return best - start
}

/** Share of rows (all axes but the last) whose largest entry is at the same index in both outputs. */
export const top1Agreement = (reference: ArrayLike<number>, candidate: ArrayLike<number>, lastAxis: number): number => {
  const rows = Math.floor(reference.length / lastAxis)
  if (rows === 0) return 1
  let agree = 0
  for (let row = 0; row < rows; row++) {
    if (argmax(reference, row * lastAxis, lastAxis) === argmax(candidate, row * lastAxis, lastAxis)) agree++
  }
  return agree / rows
}

/**
 * The softmax of values[start .. start + length) written to the same span of `out`, each exponential
 * computed once; returns the row's log Σ exp (its log-normalizer), shifted by the maximum so it cannot
 * overflow.
 */
export const softmaxInto = (values: ArrayLike<number>, start: number, length: number, out: Float32Array): number => {
  let max = -Infinity
  for (let i = start; i < start + length; i++) max = Math.max(max, values[i]!)
  let sum = 0
  for (let i = start; i < start + length; i++) sum += out[i] = Math.exp(values[i]! - max)
  const inverse = 1 / sum
  for (let i = start; i < start + length; i++) out[i]! *= inverse
  return Math.log(sum) + max
}

/** log Σ exp(values[start .. start + length)), shifted by the row's maximum so it cannot overflow. */
export const logSumExp = (values: ArrayLike<number>, start: number, length: number): number => {
  let max = -Infinity
  for (let i = start; i < start + length; i++) max = Math.max(max, values[i]!)
  let sum = 0
  for (let i = start; i < start + length; i++) sum += Math.exp(values[i]! - max)
  return Math.log(sum) + max
}

/**
 * Mean negative log-likelihood (nats per token) of `targets` under logits [positions, vocab], where
 * the logits at position t predict targets[t]; positions with a negative target are skipped.
 */
export const negativeLogLikelihood = (
  logits: ArrayLike<number>,
  vocab: number,
  targets: ArrayLike<number>
): { total: number; count: number } => {
  let total = 0
  let count = 0
  for (let t = 0; t < targets.length; t++) {
    const target = targets[t]!
    if (target < 0) continue
    const base = t * vocab
    total += logSumExp(logits, base, vocab) - logits[base + target]!
    count++
  }
  return { total, count }
}

/**
 * Next-token NLL of a causal language model's logits [batch, seq, vocab]: the logits at position t
 * predict input_ids[t + 1] (ids [batch, seq]); a position whose next token is masked out is skipped.
 */
export const nextTokenNegativeLogLikelihood = (
  logits: Float32Array,
  dims: ReadonlyArray<number>,
  inputIds: ArrayLike<number>,
  attentionMask?: ArrayLike<number>
): { total: number; count: number } => {
  const [batch = 1, sequence = 0, vocab = 1] = dims
  let total = 0
  let count = 0
  for (let row = 0; row < batch; row++) {
    const targets = Array.from({ length: sequence }, (_, t) => {
      const next = row * sequence + t + 1
      return t + 1 < sequence && (attentionMask === undefined || attentionMask[next] !== 0) ? inputIds[next]! : -1
    })
    const nll = negativeLogLikelihood(
      logits.subarray(row * sequence * vocab, (row + 1) * sequence * vocab),
      vocab,
      targets
    )
    total += nll.total
    count += nll.count
  }
  return { total, count }
}

/**
 * Summed KL(P ‖ Q) between the next-token distributions of two models' logits [positions, vocab]
 * (P the reference), over every position: how far the quantized model's predictions moved, the figure
 * llama.cpp's perplexity tool reports for quantizations. Never negative, and far steadier than a
 * perplexity difference on a few hundred tokens.
 */
export const klDivergence = (
  reference: ArrayLike<number>,
  candidate: ArrayLike<number>,
  vocab: number
): { total: number; count: number } => {
  const positions = Math.floor(reference.length / vocab)
  let total = 0
  for (let t = 0; t < positions; t++) {
    const base = t * vocab
    let maxP = -Infinity
    let maxQ = -Infinity
    for (let v = 0; v < vocab; v++) {
      maxP = Math.max(maxP, reference[base + v]!)
      maxQ = Math.max(maxQ, candidate[base + v]!)
    }
    let sumP = 0
    let sumQ = 0
    for (let v = 0; v < vocab; v++) {
      sumP += Math.exp(reference[base + v]! - maxP)
      sumQ += Math.exp(candidate[base + v]! - maxQ)
    }
    const logZP = maxP + Math.log(sumP)
    const logZQ = maxQ + Math.log(sumQ)
    let kl = 0
    for (let v = 0; v < vocab; v++) {
      const logP = reference[base + v]! - logZP
      kl += Math.exp(logP) * (logP - (candidate[base + v]! - logZQ))
    }
    total += Math.max(0, kl)
  }
  return { total, count: positions }
}

export const perplexity = (nll: { total: number; count: number }) => Math.exp(nll.total / Math.max(1, nll.count))

export interface OutputComparison {
  readonly name: string
  readonly cosine: number
  readonly maxError: number
  readonly top1: number
}

export const compareOutputs = (
  name: string,
  reference: ArrayLike<number>,
  candidate: ArrayLike<number>,
  lastAxis: number
): OutputComparison => ({
  name,
  cosine: cosineSimilarity(reference, candidate),
  maxError: maxAbsoluteError(reference, candidate),
  top1: top1Agreement(reference, candidate, lastAxis)
})
