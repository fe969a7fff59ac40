/**
 * Choosing the next token from a model's logits, with the semantics of Hugging Face's generate:
 * repetition penalty, then temperature, top-k and top-p (nucleus), then one draw. Pure functions; the
 * random number comes from the caller (Effect's Random in the service) so a seed reproduces a run.
 */

export interface SamplingOptions {
  /** 0 (the default) is greedy decoding; above 0 divides the logits before sampling. */
  readonly temperature?: number | undefined
  /** Keep only the k most likely tokens (and ties with the k-th); 0 or absent keeps all. */
  readonly topK?: number | undefined
  /** Keep the smallest set of most likely tokens whose probabilities sum to at least p; 1 or absent keeps all. */
  readonly topP?: number | undefined
  /** Above 1 discourages tokens already present: positive logits are divided by it, negative ones multiplied. */
  readonly repetitionPenalty?: number | undefined
}

export const argmax = (values: ArrayLike<number>): number => {
  let best = 0
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i
  return best
}

/** HF's RepetitionPenaltyLogitsProcessor: each distinct token already present is penalized once. */
export const applyRepetitionPenalty = (
  logits: Float32Array,
  previous: Iterable<number>,
  penalty: number
): Float32Array => {
  // slice, not Float32Array.from: from walks the iterator, about 40x slower on a 3,072-word vocabulary.
  const out = logits.slice()
  if (penalty === 1) return out
  for (const id of new Set(previous)) {
    if (id < 0 || id >= out.length) continue
    const logit = out[id]!
    out[id] = logit > 0 ? logit / penalty : logit * penalty
  }
  return out
}

/** Probabilities (float64) of the given logits at a temperature. */
export const softmax = (logits: ArrayLike<number>, temperature = 1): Float64Array => {
  const out = new Float64Array(logits.length)
  let max = -Infinity
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!)
  let sum = 0
  for (let i = 0; i < logits.length; i++) {
    const value = Math.exp((logits[i]! - max) / temperature)
    out[i] = value
    sum += value
  }
  for (let i = 0; i < out.length; i++) out[i]! /= sum
  return out
}

/** Candidate tokens in descending order of logit, cut to the top k (ties with the k-th kept, as HF does). */
export const topKCandidates = (logits: ArrayLike<number>, k: number | undefined): Array<number> => {
  const descending = (a: number, b: number) => logits[b]! - logits[a]! || a - b
  if (k === undefined || k <= 0 || k >= logits.length) {
    return Array.from({ length: logits.length }, (_, i) => i).sort(descending)
  }
  // The k-th largest logit through a size-k min-heap: no full sort of a large vocabulary per token.
  const heap: Array<number> = []
  const siftDown = (start: number) => {
    let i = start
    while (true) {
      const left = 2 * i + 1, right = left + 1
      let smallest = i
      if (left < heap.length && heap[left]! < heap[smallest]!) smallest = left
      if (right < heap.length && heap[right]! < heap[smallest]!) smallest = right
      if (smallest === i) return
      ;[heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!]
      i = smallest
    }
  }
  for (let i = 0; i < logits.length; i++) {
    const value = logits[i]!
    if (heap.length < k) {
      heap.push(value)
      for (let j = heap.length - 1; j > 0 && heap[(j - 1) >> 1]! > heap[j]!; j = (j - 1) >> 1) {
        ;[heap[j], heap[(j - 1) >> 1]] = [heap[(j - 1) >> 1]!, heap[j]!]
      }
    } else if (value > heap[0]!) {
      heap[0] = value
      siftDown(0)
    }
  }
  const threshold = heap[0]!
  const kept: Array<number> = []
  for (let i = 0; i < logits.length; i++) if (logits[i]! >= threshold) kept.push(i)
  return kept.sort(descending)
}

/**
 * Nucleus filtering over probabilities sorted in descending order: how many of them to keep, the
 * smallest prefix whose sum reaches p (at least one).
 */
export const topPCount = (sortedProbabilities: ArrayLike<number>, p: number | undefined): number => {
  if (p === undefined || p >= 1) return sortedProbabilities.length
  let cumulative = 0
  for (let i = 0; i < sortedProbabilities.length; i++) {
    cumulative += sortedProbabilities[i]!
    if (cumulative >= p) return i + 1
  }
  return sortedProbabilities.length
}

/** The index drawn from (unnormalized) weights with a uniform number in [0, 1). */
export const drawIndex = (weights: ArrayLike<number>, uniform: number): number => {
  let total = 0
  for (let i = 0; i < weights.length; i++) total += weights[i]!
  let target = uniform * total
  for (let i = 0; i < weights.length; i++) {
    target -= weights[i]!
    if (target < 0) return i
  }
  return weights.length - 1
}

/** The distribution the sampler draws from, as (token, probability) pairs, most likely first. */
export const samplingDistribution = (logits: Float32Array, previous: Iterable<number>, options: SamplingOptions) => {
  const penalized = applyRepetitionPenalty(logits, previous, options.repetitionPenalty ?? 1)
  const temperature = options.temperature ?? 0
  const candidates = topKCandidates(penalized, options.topK)
  const probabilities = softmax(candidates.map((id) => penalized[id]!), temperature > 0 ? temperature : 1)
  const keep = topPCount(probabilities, options.topP)
  let kept = 0
  for (let i = 0; i < keep; i++) kept += probabilities[i]!
  return candidates.slice(0, keep).map((id, i) => ({ id, probability: probabilities[i]! / kept }))
}

/** The next token: argmax of the penalized logits at temperature 0, otherwise one draw with `uniform`. */
export const selectToken = (
  logits: Float32Array,
  previous: Iterable<number>,
  options: SamplingOptions,
  uniform: number
): number => {
  if ((options.temperature ?? 0) <= 0) {
    const penalty = options.repetitionPenalty ?? 1
    return argmax(penalty === 1 ? logits : applyRepetitionPenalty(logits, previous, penalty))
  }
  const distribution = samplingDistribution(logits, previous, options)
  return distribution[drawIndex(distribution.map((entry) => entry.probability), uniform)]!.id
}
