/**
 * Weight pruning: magnitude (zero the smallest |w| until a target sparsity) and block-structured
 * (zero whole runs of `block` consecutive input weights of an output column with the smallest norm,
 * the shape sparse kernels can skip).
 */

/** Zeroes the `sparsity` fraction of smallest-magnitude weights; returns how many were zeroed. */
export const pruneMagnitude = (weights: Float32Array, sparsity: number): number => {
  const count = Math.floor(weights.length * Math.min(1, Math.max(0, sparsity)))
  if (count === 0) return 0
  const magnitudes = Float32Array.from(weights, Math.abs).sort()
  const threshold = magnitudes[count - 1]!
  let zeroed = 0
  // Strictly below the threshold first, then ties, so exactly `count` weights go.
  for (let i = 0; i < weights.length && zeroed < count; i++) {
    if (Math.abs(weights[i]!) < threshold) {
      weights[i] = 0
      zeroed++
    }
  }
  for (let i = 0; i < weights.length && zeroed < count; i++) {
    if (weights[i] !== 0 && Math.abs(weights[i]!) === threshold) {
      weights[i] = 0
      zeroed++
    }
  }
  return zeroed
}

/**
 * For B [K, N]: splits each column into blocks of `block` rows and zeroes the `sparsity` fraction of
 * blocks with the smallest L2 norm, across the whole tensor. Returns the number of blocks zeroed.
 */
export const pruneBlocks = (weights: Float32Array, K: number, N: number, block: 4 | 8, sparsity: number): number => {
  const perColumn = Math.floor(K / block)
  const norms: Array<{ n: number; b: number; norm: number }> = []
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < perColumn; b++) {
      let norm = 0
      for (let k = b * block; k < (b + 1) * block; k++) norm += weights[k * N + n]! ** 2
      norms.push({ n, b, norm })
    }
  }
  const count = Math.floor(norms.length * Math.min(1, Math.max(0, sparsity)))
  norms.sort((left, right) => left.norm - right.norm || left.n - right.n || left.b - right.b)
  for (const { b, n } of norms.slice(0, count)) {
    for (let k = b * block; k < (b + 1) * block; k++) weights[k * N + n] = 0
  }
  return count
}

export const sparsityOf = (weights: Float32Array) =>
  weights.reduce((zeros, value) => zeros + (value === 0 ? 1 : 0), 0) / Math.max(1, weights.length)
