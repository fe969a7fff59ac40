/**
 * Re-factoring a dense weight update ΔW [in, out] into LoRA factors of a chosen rank by truncated SVD:
 * the best approximation of that rank in Frobenius norm (Eckart–Young), exact when ΔW's rank is lower.
 *
 * The SVD comes from the Gram matrix of ΔW's shorter side (ΔWᵀΔW when out <= in, else ΔWΔWᵀ), whose
 * eigenvectors, found by cyclic Jacobi rotations, are ΔW's singular vectors on that side. ΔW is then
 * projected on the leading k of them rather than rebuilt from singular values, so the result is
 * ΔW V Vᵀ, exactly ΔW whenever V spans its rows. Cost: O(in · out · min(in, out)) to form the Gram
 * matrix and O(min(in, out)³) per Jacobi sweep, fine for adapter-sized layers.
 */
import type { LoraModule } from "./Adapter.js"

export interface SymmetricEigen {
  /** Eigenvalues, largest first. */
  readonly values: Float64Array
  /** Eigenvectors as the columns of an [n, n] row-major matrix, in the order of `values`. */
  readonly vectors: Float64Array
}

const maxSweeps = 64

/** Eigen-decomposition of a symmetric [n, n] row-major matrix (not modified) by cyclic Jacobi rotations. */
export const symmetricEigen = (matrix: Float64Array, n: number): SymmetricEigen => {
  const a = Float64Array.from(matrix)
  const v = new Float64Array(n * n)
  for (let i = 0; i < n; i++) v[i * n + i] = 1
  let total = 0
  for (let i = 0; i < n * n; i++) total += a[i]! * a[i]!
  const tolerance = 1e-30 * total
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let offDiagonal = 0
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) offDiagonal += a[p * n + q]! * a[p * n + q]!
    if (offDiagonal <= tolerance) break
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!
        if (apq === 0) continue
        // The rotation J (J_pp = J_qq = c, J_pq = s, J_qp = -s) with t = s / c the smaller root of
        // t² + 2θt - 1 = 0 zeroes a_pq in Jᵀ a J.
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq)
        const t = Math.abs(theta) > 1e150
          ? 1 / (2 * theta)
          : Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1))
        const c = 1 / Math.sqrt(t * t + 1)
        const s = t * c
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!
          const akq = a[k * n + q]!
          a[k * n + p] = c * akp - s * akq
          a[k * n + q] = s * akp + c * akq
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!
          const aqk = a[q * n + k]!
          a[p * n + k] = c * apk - s * aqk
          a[q * n + k] = s * apk + c * aqk
        }
        a[p * n + q] = 0
        a[q * n + p] = 0
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!
          const vkq = v[k * n + q]!
          v[k * n + p] = c * vkp - s * vkq
          v[k * n + q] = s * vkp + c * vkq
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => a[j * n + j]! - a[i * n + i]! || i - j)
  const values = Float64Array.from(order, (i) => a[i * n + i]!)
  const vectors = new Float64Array(n * n)
  order.forEach((from, to) => {
    for (let k = 0; k < n; k++) vectors[k * n + to] = v[k * n + from]!
  })
  return { values, vectors }
}

export interface Refactored {
  /** A [rank, in] and B [out, rank] with scale · Aᵀ Bᵀ ≈ ΔW; components past min(in, out) are zero. */
  readonly module: LoraModule
  /** The leading singular values of ΔW, largest first (min(rank, in, out) of them). */
  readonly singularValues: Float64Array
  /** `relativeError` of the float32 factors as stored. */
  readonly relativeError: number
}

/**
 * Truncated SVD of ΔW [in, out] (row-major) as LoRA factors of `rank` for an adapter of `scale`: each
 * kept component σ u vᵀ becomes the column u √σ / √scale of Aᵀ and v √σ / √scale of B, so A and B
 * carry equal magnitudes.
 */
export const refactorDelta = (
  delta: Float64Array,
  inFeatures: number,
  outFeatures: number,
  rank: number,
  scale: number
): Refactored => {
  if (delta.length !== inFeatures * outFeatures) {
    throw new RangeError(
      `a [${inFeatures}, ${outFeatures}] delta holds ${inFeatures * outFeatures} values, not ${delta.length}`
    )
  }
  if (!Number.isInteger(rank) || rank < 1) {
    throw new RangeError(`the target rank must be a positive integer, not ${rank}`)
  }
  if (!(scale > 0)) throw new RangeError(`the adapter scale must be positive, not ${scale}`)
  // Work on M [rows, cols] with cols the shorter side: M = ΔW, or ΔWᵀ when in < out.
  const transposed = inFeatures < outFeatures
  const rows = transposed ? outFeatures : inFeatures
  const cols = transposed ? inFeatures : outFeatures
  const m = transposed ? transpose(delta, inFeatures, outFeatures) : delta
  const gram = new Float64Array(cols * cols)
  for (let row = 0; row < rows; row++) {
    for (let p = 0; p < cols; p++) {
      const mp = m[row * cols + p]!
      if (mp === 0) continue
      for (let q = p; q < cols; q++) gram[p * cols + q]! += mp * m[row * cols + q]!
    }
  }
  for (let p = 0; p < cols; p++) for (let q = p + 1; q < cols; q++) gram[q * cols + p] = gram[p * cols + q]!
  const { vectors } = symmetricEigen(gram, cols)
  const kept = Math.min(rank, cols)
  const A = new Float32Array(rank * inFeatures)
  const B = new Float32Array(outFeatures * rank)
  const singularValues = new Float64Array(kept)
  const projected = new Float64Array(rows)
  for (let j = 0; j < kept; j++) {
    // projected = M v_j = σ_j u_j; its norm is σ_j, measured directly rather than from the eigenvalue.
    let norm = 0
    for (let row = 0; row < rows; row++) {
      let sum = 0
      for (let col = 0; col < cols; col++) sum += m[row * cols + col]! * vectors[col * cols + j]!
      projected[row] = sum
      norm += sum * sum
    }
    const sigma = Math.sqrt(norm)
    singularValues[j] = sigma
    if (sigma === 0) continue
    // σ u goes out as σ u / √(σ scale) = u √σ / √scale, v as v √σ / √scale.
    const projectedFactor = 1 / Math.sqrt(sigma * scale)
    const vectorFactor = Math.sqrt(sigma / scale)
    for (let row = 0; row < rows; row++) {
      if (transposed) B[row * rank + j] = projected[row]! * projectedFactor
      else A[j * inFeatures + row] = projected[row]! * projectedFactor
    }
    for (let col = 0; col < cols; col++) {
      if (transposed) A[j * inFeatures + col] = vectors[col * cols + j]! * vectorFactor
      else B[col * rank + j] = vectors[col * cols + j]! * vectorFactor
    }
  }
  const module: LoraModule = { inFeatures, outFeatures, A, B }
  return { module, singularValues, relativeError: relativeError(delta, module, rank, scale) }
}

const transpose = (matrix: Float64Array, rows: number, cols: number) => {
  const result = new Float64Array(rows * cols)
  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < cols; col++) result[col * rows + row] = matrix[row * cols + col]!
  }
  return result
}

/** ‖ΔW - scale · Aᵀ Bᵀ‖_F / ‖ΔW‖_F in float64; the absolute error when ΔW = 0. */
export const relativeError = (delta: Float64Array, module: LoraModule, rank: number, scale: number): number => {
  const { inFeatures, outFeatures, A, B } = module
  let error = 0
  let reference = 0
  for (let i = 0; i < inFeatures; i++) {
    for (let o = 0; o < outFeatures; o++) {
      let approximation = 0
      for (let r = 0; r < rank; r++) approximation += A[r * inFeatures + i]! * B[o * rank + r]!
      const target = delta[i * outFeatures + o]!
      error += (target - scale * approximation) ** 2
      reference += target * target
    }
  }
  return reference === 0 ? Math.sqrt(error) : Math.sqrt(error / reference)
}
