/**
 * AWQ (Lin et al., 2023) for a MatMul weight B [K, N]: input channels that carry large activations
 * matter most, so rows of B are scaled up by s_k = mean|x_k|^α before 4-bit quantization and the
 * input is divided by s_k at run time; α is searched on calibration data to minimize the output error.
 */
import type { Int4Blocks } from "./Int4.js"
import { dequantizeInt4, quantizeInt4Rtn } from "./Int4.js"

export interface AwqResult {
  readonly blocks: Int4Blocks
  /** Multiply the MatMul's input by these (1 / s_k) before the quantized weight. */
  readonly inputScales: Float32Array
  readonly alpha: number
  /** Relative output error on the calibration rows at the chosen α, and at α = 0 (plain RTN). */
  readonly error: number
  readonly rtnError: number
}

const relativeOutputError = (x: Float32Array, samples: number, K: number, N: number, exact: Float32Array, approx: Float32Array) => {
  let error = 0
  let total = 0
  const row = new Float64Array(N)
  const rowApprox = new Float64Array(N)
  for (let s = 0; s < samples; s++) {
    row.fill(0)
    rowApprox.fill(0)
    for (let k = 0; k < K; k++) {
      const xk = x[s * K + k]!
      if (xk === 0) continue
      for (let n = 0; n < N; n++) {
        row[n]! += xk * exact[k * N + n]!
        rowApprox[n]! += xk * approx[k * N + n]!
      }
    }
    for (let n = 0; n < N; n++) {
      error += (row[n]! - rowApprox[n]!) ** 2
      total += row[n]! ** 2
    }
  }
  return total === 0 ? 0 : error / total
}

/** At most this many calibration rows score each α: the search runs 21 full quantizations per layer. */
const SEARCH_ROWS = 256

const evenlySpacedRows = (activations: Float32Array, samples: number, K: number, rows: number) => {
  if (samples <= rows) return { data: activations, samples }
  const data = new Float32Array(rows * K)
  for (let r = 0; r < rows; r++) data.set(activations.subarray(Math.floor((r * samples) / rows) * K, Math.floor((r * samples) / rows) * K + K), r * K)
  return { data, samples: rows }
}

export const quantizeInt4Awq = (
  weights: Float32Array,
  K: number,
  N: number,
  blockSize: number,
  activations: Float32Array,
  samples: number,
  grid = 20
): AwqResult => {
  const search = evenlySpacedRows(activations, samples, K, SEARCH_ROWS)
  const meanAbs = new Float64Array(K)
  for (let s = 0; s < samples; s++) for (let k = 0; k < K; k++) meanAbs[k]! += Math.abs(activations[s * K + k]!)
  for (let k = 0; k < K; k++) meanAbs[k] = Math.max(meanAbs[k]! / Math.max(1, samples), 1e-8)
  let best: AwqResult | undefined
  let rtnError = 0
  for (let step = 0; step <= grid; step++) {
    const alpha = step / grid
    const scales = new Float64Array(K)
    let min = Infinity
    let max = 0
    for (let k = 0; k < K; k++) {
      scales[k] = meanAbs[k]! ** alpha
      min = Math.min(min, scales[k]!)
      max = Math.max(max, scales[k]!)
    }
    // Centre the scales around 1 so weights and activations keep their magnitudes overall.
    const centre = Math.sqrt(max * min)
    const scaled = new Float32Array(K * N)
    for (let k = 0; k < K; k++) {
      scales[k] = scales[k]! / centre
      for (let n = 0; n < N; n++) scaled[k * N + n] = weights[k * N + n]! * scales[k]!
    }
    const blocks = quantizeInt4Rtn(scaled, K, N, blockSize)
    const effective = dequantizeInt4(blocks)
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) effective[k * N + n] = effective[k * N + n]! / scales[k]!
    const error = relativeOutputError(search.data, search.samples, K, N, weights, effective)
    if (step === 0) rtnError = error
    if (best === undefined || error < best.error) {
      best = { blocks, inputScales: Float32Array.from(scales, (s) => 1 / s), alpha, error, rtnError }
    }
  }
  return { ...best!, rtnError }
}
