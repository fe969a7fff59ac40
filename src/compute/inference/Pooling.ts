/**
 * Sentence embeddings from an encoder's hidden states: mean over the tokens the attention mask keeps,
 * L2-normalized; cosine similarity; and length bucketing so a batch carries little padding.
 */

/**
 * Mean of `hidden` ([batch, seq, dim], row-major) over the positions where `mask` ([batch, seq]) is
 * non-zero: one vector of `dim` per batch row. A row with no kept token is all zeros.
 */
export const meanPool = (
  hidden: Float32Array,
  dims: readonly [number, number, number],
  mask: ArrayLike<number | bigint>
): Array<Float32Array> => {
  const [batch, seq, dim] = dims
  const out: Array<Float32Array> = []
  for (let b = 0; b < batch; b++) {
    const sum = new Float64Array(dim)
    let count = 0
    for (let s = 0; s < seq; s++) {
      if (Number(mask[b * seq + s]!) === 0) continue
      count++
      const offset = (b * seq + s) * dim
      for (let d = 0; d < dim; d++) sum[d]! += hidden[offset + d]!
    }
    const vector = new Float32Array(dim)
    // transformers.js and sentence-transformers clamp the count at 1e-9; a row without tokens stays 0.
    const divisor = Math.max(count, 1e-9)
    for (let d = 0; d < dim; d++) vector[d] = sum[d]! / divisor
    out.push(vector)
  }
  return out
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
 * Indices of items grouped into batches of at most `batchSize`, items of similar length together
 * (sorted by length, stable), so each batch pads to a length close to its members'.
 */
export const lengthBuckets = (lengths: ReadonlyArray<number>, batchSize: number): Array<Array<number>> => {
  const size = Math.max(1, Math.floor(batchSize))
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[a]! - lengths[b]! || a - b)
  const buckets: Array<Array<number>> = []
  for (let i = 0; i < order.length; i += size) buckets.push(order.slice(i, i + size))
  return buckets
}
