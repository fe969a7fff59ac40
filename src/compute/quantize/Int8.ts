/**
 * 8-bit weight quantization kernels: symmetric per-channel INT8 for a MatMul / Gemm weight (the QDQ
 * form ONNX Runtime's quantizer writes), and the round trip back to FP32 to measure the error.
 */

export interface Int8Weights {
  readonly values: Int8Array
  /** One scale per output channel; the zero point is 0 (symmetric). */
  readonly scales: Float32Array
}

/**
 * Quantizes `weights` laid out [rows, cols] per channel along `axis` (1: one scale per column, as a
 * MatMul B [K, N] wants per output N; 0: one per row, as Conv / Gemm-transposed weights want).
 * Range [-127, 127] so negation never overflows, as ORT's symmetric weight quantization does.
 */
export const quantizeInt8PerChannel = (weights: Float32Array, rows: number, cols: number, axis: 0 | 1): Int8Weights => {
  const channels = axis === 1 ? cols : rows
  const maxAbs = new Float32Array(channels)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const value = Math.abs(weights[r * cols + c]!)
      const channel = axis === 1 ? c : r
      if (value > maxAbs[channel]!) maxAbs[channel] = value
    }
  }
  const scales = new Float32Array(channels)
  for (let channel = 0; channel < channels; channel++) {
    scales[channel] = maxAbs[channel]! === 0
      ? 1
      : maxAbs[channel]! / 127
  }
  const values = new Int8Array(rows * cols)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const scale = scales[axis === 1 ? c : r]!
      values[r * cols + c] = Math.max(-127, Math.min(127, Math.round(weights[r * cols + c]! / scale)))
    }
  }
  return { values, scales }
}

export const dequantizeInt8PerChannel = (
  quantized: Int8Weights,
  rows: number,
  cols: number,
  axis: 0 | 1
): Float32Array => {
  const out = new Float32Array(rows * cols)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      out[r * cols + c] = quantized.values[r * cols + c]! * quantized.scales[axis === 1 ? c : r]!
    }
  }
  return out
}

/** Per-tensor INT8 over any shape (for weights with no channel axis worth the scales). */
export const quantizeInt8PerTensor = (weights: Float32Array): Int8Weights => {
  let maxAbs = 0
  for (const value of weights) maxAbs = Math.max(maxAbs, Math.abs(value))
  const scale = maxAbs === 0 ? 1 : maxAbs / 127
  const values = new Int8Array(weights.length)
  for (let i = 0; i < weights.length; i++) values[i] = Math.max(-127, Math.min(127, Math.round(weights[i]! / scale)))
  return { values, scales: Float32Array.of(scale) }
}
