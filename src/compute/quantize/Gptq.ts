/**
 * GPTQ (Frantar et al., 2022) for a MatMul weight B [K, N] in MatMulNBits' 4-bit block layout: rows
 * of B are quantized one input dimension at a time, and each row's rounding error is pushed onto the
 * rows not yet quantized, weighted by the inverse Hessian of the layer's calibration inputs, so the
 * layer's outputs on real data move as little as possible.
 */
import type { Int4Blocks } from "./Int4.js"
import { emptyInt4Blocks, int4Range, quantizeValue, setBlockParameters, setQuantized } from "./Int4.js"

/** H = 2/n · XᵀX over `samples` rows of activations X [samples, K] (the layer's inputs). */
export const hessianOf = (activations: Float32Array, samples: number, K: number): Float64Array => {
  const hessian = new Float64Array(K * K)
  for (let s = 0; s < samples; s++) {
    const row = activations.subarray(s * K, (s + 1) * K)
    for (let i = 0; i < K; i++) {
      const xi = row[i]!
      if (xi === 0) continue
      const base = i * K
      for (let j = i; j < K; j++) hessian[base + j]! += xi * row[j]!
    }
  }
  const factor = samples === 0 ? 0 : 2 / samples
  for (let i = 0; i < K; i++) {
    for (let j = i; j < K; j++) {
      const value = hessian[i * K + j]! * factor
      hessian[i * K + j] = value
      hessian[j * K + i] = value
    }
  }
  return hessian
}

/** Lower Cholesky factor of a symmetric positive definite matrix, in place; false when it is not SPD. */
const choleskyLower = (a: Float64Array, n: number): boolean => {
  for (let j = 0; j < n; j++) {
    let diagonal = a[j * n + j]!
    for (let k = 0; k < j; k++) diagonal -= a[j * n + k]! ** 2
    if (!(diagonal > 0)) return false
    const root = Math.sqrt(diagonal)
    a[j * n + j] = root
    for (let i = j + 1; i < n; i++) {
      let sum = a[i * n + j]!
      for (let k = 0; k < j; k++) sum -= a[i * n + k]! * a[j * n + k]!
      a[i * n + j] = sum / root
    }
    for (let k = j + 1; k < n; k++) a[j * n + k] = 0
  }
  return true
}

/** A⁻¹ from its lower Cholesky factor L (A = L Lᵀ). */
const inverseFromCholesky = (lower: Float64Array, n: number): Float64Array => {
  // Invert L (lower triangular), then A⁻¹ = L⁻ᵀ L⁻¹.
  const inverse = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    inverse[i * n + i] = 1 / lower[i * n + i]!
    for (let j = 0; j < i; j++) {
      let sum = 0
      for (let k = j; k < i; k++) sum += lower[i * n + k]! * inverse[k * n + j]!
      inverse[i * n + j] = -sum / lower[i * n + i]!
    }
  }
  const result = new Float64Array(n * n)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = 0
      for (let k = i; k < n; k++) sum += inverse[k * n + i]! * inverse[k * n + j]!
      result[i * n + j] = sum
      result[j * n + i] = sum
    }
  }
  return result
}

export interface GptqOptions {
  /** Added to the diagonal as a fraction of its mean, for numerical stability (GPTQ's `percdamp`). */
  readonly dampening?: number
}

/**
 * Quantizes B [K, N] with GPTQ to 4-bit blocks of `blockSize` along K. Each block's scale and zero
 * point are chosen when quantization reaches it, from the weights as earlier errors have updated them.
 */
export const quantizeInt4Gptq = (
  weights: Float32Array,
  K: number,
  N: number,
  blockSize: number,
  hessian: Float64Array,
  options: GptqOptions = {}
): Int4Blocks => {
  const w = Float64Array.from(weights)
  const h = Float64Array.from(hessian)
  // Inputs that never fire carry no information: their weights do not matter, so make them zero.
  for (let k = 0; k < K; k++) {
    if (h[k * K + k] === 0) {
      h[k * K + k] = 1
      for (let n = 0; n < N; n++) w[k * N + n] = 0
    }
  }
  let meanDiagonal = 0
  for (let k = 0; k < K; k++) meanDiagonal += h[k * K + k]!
  meanDiagonal /= K
  let damp = (options.dampening ?? 0.01) * meanDiagonal
  let lower = Float64Array.from(h)
  for (let k = 0; k < K; k++) lower[k * K + k]! += damp
  // A singular Hessian (too few samples) gets more dampening until it factors.
  while (!choleskyLower(lower, K)) {
    damp = damp === 0 ? 1e-6 : damp * 10
    lower = Float64Array.from(h)
    for (let k = 0; k < K; k++) lower[k * K + k]! += damp
  }
  const hInverse = inverseFromCholesky(lower, K)
  // Upper factor U of H⁻¹ (H⁻¹ = Uᵀ U): row k holds the error propagation weights for step k.
  if (!choleskyLower(hInverse, K)) throw new Error("GPTQ: the inverse Hessian is not positive definite")
  const upper = (k: number, j: number) => hInverse[j * K + k]! // U = Lᵀ

  const target = emptyInt4Blocks(K, N, blockSize)
  const scales = new Float64Array(N)
  const zeroPoints = new Int32Array(N)
  const error = new Float64Array(N)
  for (let k = 0; k < K; k++) {
    const block = Math.floor(k / blockSize)
    if (k % blockSize === 0) {
      const end = Math.min(K, k + blockSize)
      for (let n = 0; n < N; n++) {
        let min = Infinity
        let max = -Infinity
        for (let row = k; row < end; row++) {
          const value = w[row * N + n]!
          if (value < min) min = value
          if (value > max) max = value
        }
        const range = int4Range(min, max)
        scales[n] = range.scale
        zeroPoints[n] = range.zeroPoint
        setBlockParameters(target, n, block, range.scale, range.zeroPoint)
      }
    }
    const pivot = upper(k, k)
    for (let n = 0; n < N; n++) {
      const value = w[k * N + n]!
      const q = quantizeValue(value, scales[n]!, zeroPoints[n]!)
      setQuantized(target, k, n, q)
      error[n] = (value - (q - zeroPoints[n]!) * scales[n]!) / pivot
    }
    for (let j = k + 1; j < K; j++) {
      const weight = upper(k, j)
      if (weight === 0) continue
      const row = j * N
      for (let n = 0; n < N; n++) w[row + n]! -= weight * error[n]!
    }
  }
  // Padding rows past K in the last block quantize to the zero point (0).
  const blocks = Math.ceil(K / blockSize)
  for (let k = K; k < blocks * blockSize; k++) {
    for (let n = 0; n < N; n++) setQuantized(target, k, n, zeroPoints[n]!)
  }
  return target
}
