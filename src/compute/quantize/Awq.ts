/**
 * AWQ (Lin et al., 2023) for a MatMul weight B [K, N]: input channels that carry large activations
 * matter most, so rows of B are scaled up by s_k = mean|x_k|^α before 4-bit quantization and the
 * input is divided by s_k at run time; α is searched on calibration data to minimize the output error.
 * Then, as AWQ's clipping search does, each block's range is shrunk by the ratio (1.0 down to 0.5)
 * that minimizes that block's output error, measured with the block's part of XᵀX over every
 * calibration row.
 */
import type { Int4Blocks } from "./Int4.js"
import {
  blockParameters,
  blocksPerColumn,
  dequantizeInt4,
  int4Range,
  quantizeInt4Rtn,
  quantizeValue,
  setBlockParameters,
  setQuantized
} from "./Int4.js"

export interface AwqResult {
  readonly blocks: Int4Blocks
  /** Multiply the MatMul's input by these (1 / s_k) before the quantized weight. */
  readonly inputScales: Float32Array
  readonly alpha: number
  /** Relative output error on the calibration rows at the chosen α (after clipping), and at α = 0 without clipping (plain RTN). */
  readonly error: number
  readonly rtnError: number
}

/** ‖X D‖² over the rows of X [samples, K], for D [K, N]. */
const outputEnergy = (x: Float32Array, samples: number, K: number, N: number, d: Float32Array) => {
  let energy = 0
  const row = new Float64Array(N)
  for (let s = 0; s < samples; s++) {
    row.fill(0)
    for (let k = 0; k < K; k++) {
      const xk = x[s * K + k]!
      if (xk === 0) continue
      const base = k * N
      for (let n = 0; n < N; n++) row[n]! += xk * d[base + n]!
    }
    for (let n = 0; n < N; n++) energy += row[n]! ** 2
  }
  return energy
}

/** ‖X (W - Ŵ)‖² / ‖X W‖², given ‖X W‖². */
const relativeOutputError = (
  x: Float32Array,
  samples: number,
  K: number,
  N: number,
  exact: Float32Array,
  approx: Float32Array,
  exactEnergy: number
) => {
  if (exactEnergy === 0) return 0
  const difference = new Float32Array(K * N)
  for (let i = 0; i < difference.length; i++) difference[i] = exact[i]! - approx[i]!
  return outputEnergy(x, samples, K, N, difference) / exactEnergy
}

/** At most this many calibration rows score each α: the search runs 21 full quantizations per layer. */
const SEARCH_ROWS = 256
const CLIP_RATIOS = [1, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5]

const evenlySpacedRows = (activations: Float32Array, samples: number, K: number, rows: number) => {
  if (samples <= rows) return { data: activations, samples }
  const data = new Float32Array(rows * K)
  for (let r = 0; r < rows; r++) {
    data.set(
      activations.subarray(Math.floor((r * samples) / rows) * K, Math.floor((r * samples) / rows) * K + K),
      r * K
    )
  }
  return { data, samples: rows }
}

/** The diagonal blocks of XᵀX: for block b, the [blockSize, blockSize] products of its input channels. */
const blockGrams = (activations: Float32Array, samples: number, K: number, blockSize: number) => {
  const blocks = blocksPerColumn(K, blockSize)
  const grams = new Float64Array(blocks * blockSize * blockSize)
  for (let s = 0; s < samples; s++) {
    const row = activations.subarray(s * K, (s + 1) * K)
    for (let k = 0; k < K; k++) {
      const xk = row[k]!
      if (xk === 0) continue
      const block = Math.floor(k / blockSize)
      const i = k - block * blockSize
      const base = (block * blockSize + i) * blockSize
      const end = Math.min(K, (block + 1) * blockSize)
      for (let j = block * blockSize; j < end; j++) grams[base + j - block * blockSize]! += xk * row[j]!
    }
  }
  return grams
}

/**
 * Re-quantizes each block of `scaled` (weights already multiplied by s_k) with the range shrunk by the
 * clip ratio whose output error, Σ eᵢ eⱼ (XᵀX)ᵢⱼ over the block with e = (w - ŵ) / s, is lowest.
 */
const clipBlocks = (target: Int4Blocks, scaled: Float32Array, scales: Float64Array, grams: Float64Array) => {
  const { K, N, blockSize } = target
  const blocks = blocksPerColumn(K, blockSize)
  const error = new Float64Array(blockSize)
  for (let n = 0; n < N; n++) {
    for (let block = 0; block < blocks; block++) {
      const start = block * blockSize
      const end = Math.min(K, start + blockSize)
      let min = Infinity
      let max = -Infinity
      for (let k = start; k < end; k++) {
        min = Math.min(min, scaled[k * N + n]!)
        max = Math.max(max, scaled[k * N + n]!)
      }
      let best = { cost: Infinity, scale: 1, zeroPoint: 8 }
      for (const ratio of CLIP_RATIOS) {
        const { scale, zeroPoint } = int4Range(min * ratio, max * ratio)
        for (let k = start; k < end; k++) {
          const value = scaled[k * N + n]!
          error[k - start] = (value - (quantizeValue(value, scale, zeroPoint) - zeroPoint) * scale) / scales[k]!
        }
        let cost = 0
        const gram = block * blockSize * blockSize
        for (let i = 0; i < end - start; i++) {
          if (error[i] === 0) continue
          let dot = 0
          for (let j = 0; j < end - start; j++) dot += grams[gram + i * blockSize + j]! * error[j]!
          cost += error[i]! * dot
        }
        if (cost < best.cost) best = { cost, scale, zeroPoint }
      }
      const current = blockParameters(target, n, block)
      if (best.scale === current.scale && best.zeroPoint === current.zeroPoint) continue
      setBlockParameters(target, n, block, best.scale, best.zeroPoint)
      for (let k = start; k < end; k++) {
        setQuantized(target, k, n, quantizeValue(scaled[k * N + n]!, best.scale, best.zeroPoint))
      }
    }
  }
}

/** The scaled weights W s_k and their plain 4-bit blocks for one α. */
const scaleAndQuantize = (
  weights: Float32Array,
  K: number,
  N: number,
  blockSize: number,
  meanAbs: Float64Array,
  alpha: number
) => {
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
  return { scales, scaled, blocks: quantizeInt4Rtn(scaled, K, N, blockSize) }
}

/** The effective FP32 weight the quantized blocks and input scales compute with. */
const effectiveWeights = (blocks: Int4Blocks, scales: Float64Array) => {
  const { K, N } = blocks
  const effective = dequantizeInt4(blocks)
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) effective[k * N + n] = effective[k * N + n]! / scales[k]!
  return effective
}

export const quantizeInt4Awq = (
  weights: Float32Array,
  K: number,
  N: number,
  blockSize: number,
  activations: Float32Array,
  samples: number,
  /** α takes the values 0, 1/grid, ..., 1; 0 keeps plain scales and searches the clipping only. */
  grid = 20
): AwqResult => {
  const search = evenlySpacedRows(activations, samples, K, SEARCH_ROWS)
  const meanAbs = new Float64Array(K)
  for (let s = 0; s < samples; s++) for (let k = 0; k < K; k++) meanAbs[k]! += Math.abs(activations[s * K + k]!)
  for (let k = 0; k < K; k++) meanAbs[k] = Math.max(meanAbs[k]! / Math.max(1, samples), 1e-8)
  const exactEnergy = outputEnergy(search.data, search.samples, K, N, weights)
  let alpha = 0
  let bestError = Infinity
  let rtnError = 0
  for (let step = 0; step <= grid; step++) {
    const candidate = scaleAndQuantize(weights, K, N, blockSize, meanAbs, grid === 0 ? 0 : step / grid)
    const error = relativeOutputError(
      search.data,
      search.samples,
      K,
      N,
      weights,
      effectiveWeights(candidate.blocks, candidate.scales),
      exactEnergy
    )
    if (step === 0) rtnError = error
    if (error < bestError) {
      bestError = error
      alpha = grid === 0 ? 0 : step / grid
    }
  }
  const chosen = scaleAndQuantize(weights, K, N, blockSize, meanAbs, alpha)
  clipBlocks(chosen.blocks, chosen.scaled, chosen.scales, blockGrams(activations, samples, K, blockSize))
  const error = relativeOutputError(
    search.data,
    search.samples,
    K,
    N,
    weights,
    effectiveWeights(chosen.blocks, chosen.scales),
    exactEnergy
  )
  return { blocks: chosen.blocks, inputScales: Float32Array.from(chosen.scales, (s) => 1 / s), alpha, error, rtnError }
}
