/**
 * Sentence embeddings from an encoder's hidden states: mean over the tokens the attention mask keeps,
 * L2-normalized; cosine similarity; and length bucketing so a batch carries little padding.
 */

/**
 * Mean of one batch row of `hidden` ([batch, seq, dim], row-major) over its first `kept` positions:
 * the rows of a length-sorted batch keep a prefix (their tokens) and pad the rest. A row that keeps no
 * token is all zeros.
 */
export const meanPoolRow = (
  hidden: Float32Array,
  row: number,
  seq: number,
  dim: number,
  kept: number
): Float32Array => {
  const sum = new Float64Array(dim)
  const first = row * seq * dim
  for (let s = 0; s < kept; s++) {
    const offset = first + s * dim
    for (let d = 0; d < dim; d++) sum[d]! += hidden[offset + d]!
  }
  const vector = new Float32Array(dim)
  // transformers.js and sentence-transformers clamp the count at 1e-9; a row without tokens stays 0.
  const divisor = Math.max(kept, 1e-9)
  for (let d = 0; d < dim; d++) vector[d] = sum[d]! / divisor
  return vector
}

/** Scales `vector` to unit length in place (a zero vector stays zero) and returns it. */
export const l2Normalize = (vector: Float32Array): Float32Array => {
  let sum = 0
  for (let i = 0; i < vector.length; i++) sum += vector[i]! * vector[i]!
  const norm = Math.max(Math.sqrt(sum), 1e-12)
  for (let i = 0; i < vector.length; i++) vector[i]! /= norm
  return vector
}

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let sum = 0
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[i]!
  return sum
}

export const cosineSimilarity = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  const denominator = Math.sqrt(dot(a, a)) * Math.sqrt(dot(b, b))
  return denominator === 0 ? 0 : dot(a, b) / denominator
}

/**
 * Indices of items grouped into batches of at most `batchSize`, items of similar length together, cut
 * where the padding cost model says: a run costs `runOverhead` (in tokens, the fixed price of one
 * model run) plus its rows times its longest item's length (every row pads to that). Items are sorted
 * by length (stable), and the batches are the cheapest split of that order into runs, found exactly by
 * dynamic programming (O(items x batchSize)): a batch of mixed lengths is cut where the padding it
 * would carry costs more than another run.
 */
export const lengthBuckets = (
  lengths: ReadonlyArray<number>,
  batchSize: number,
  runOverhead = 0
): Array<Array<number>> => {
  const size = Math.max(1, Math.floor(batchSize))
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]! || a - b)
  const count = order.length
  // cost[i]: the cheapest runs of the first i items in order; start[i]: where the last of them starts.
  const cost = new Float64Array(count + 1)
  const start = new Int32Array(count + 1)
  for (let end = 1; end <= count; end++) {
    const padded = lengths[order[end - 1]!]!
    let best = Number.POSITIVE_INFINITY
    let bestStart = end - 1
    // Largest batch first: of two splits that cost the same, the one whose last batch is larger wins.
    for (let first = Math.max(0, end - size); first < end; first++) {
      const total = cost[first]! + runOverhead + (end - first) * padded
      if (total < best) {
        best = total
        bestStart = first
      }
    }
    cost[end] = best
    start[end] = bestStart
  }
  const buckets: Array<Array<number>> = []
  for (let end = count; end > 0; end = start[end]!) buckets.push(order.slice(start[end]!, end))
  return buckets.reverse()
}
