/**
 * 4-bit block quantization in ONNX Runtime's MatMulNBits layout: a MatMul weight B [K, N] becomes,
 * per output column n, ceil(K / block) blocks of `block` values along K, each with an FP32 scale and a
 * 4-bit zero point; values are packed two per byte, low nibble first.
 */

export interface Int4Blocks {
  readonly K: number
  readonly N: number
  readonly blockSize: number
  /** [N, blocksPerColumn, blockSize / 2] */
  readonly packed: Uint8Array
  /** [N, blocksPerColumn] */
  readonly scales: Float32Array
  /** [N, ceil(blocksPerColumn / 2)], two 4-bit zero points per byte */
  readonly zeroPoints: Uint8Array
}

export const blocksPerColumn = (K: number, blockSize: number) => Math.ceil(K / blockSize)

/** Scale and zero point that map [min, max] (widened to include 0) onto 0..15. */
export const int4Range = (min: number, max: number): { scale: number; zeroPoint: number } => {
  const low = Math.min(0, min)
  const high = Math.max(0, max)
  if (high === low) return { scale: 1, zeroPoint: 8 }
  const scale = (high - low) / 15
  return { scale, zeroPoint: Math.max(0, Math.min(15, Math.round(-low / scale))) }
}

export const quantizeValue = (value: number, scale: number, zeroPoint: number) =>
  Math.max(0, Math.min(15, Math.round(value / scale) + zeroPoint))

/** An empty MatMulNBits weight for B [K, N], to be filled block by block. */
export const emptyInt4Blocks = (K: number, N: number, blockSize: number): Int4Blocks => {
  const blocks = blocksPerColumn(K, blockSize)
  return {
    K,
    N,
    blockSize,
    packed: new Uint8Array(N * blocks * (blockSize / 2)),
    scales: new Float32Array(N * blocks),
    zeroPoints: new Uint8Array(N * Math.ceil(blocks / 2))
  }
}

export const setBlockParameters = (target: Int4Blocks, n: number, block: number, scale: number, zeroPoint: number) => {
  const blocks = blocksPerColumn(target.K, target.blockSize)
  target.scales[n * blocks + block] = scale
  const index = n * Math.ceil(blocks / 2) + (block >> 1)
  target.zeroPoints[index] = block % 2 === 0
    ? (target.zeroPoints[index]! & 0xf0) | zeroPoint
    : (target.zeroPoints[index]! & 0x0f) | (zeroPoint << 4)
}

export const setQuantized = (target: Int4Blocks, k: number, n: number, q: number) => {
  const blocks = blocksPerColumn(target.K, target.blockSize)
  const block = Math.floor(k / target.blockSize)
  const within = k % target.blockSize
  const index = (n * blocks + block) * (target.blockSize / 2) + (within >> 1)
  target.packed[index] = within % 2 === 0
    ? (target.packed[index]! & 0xf0) | q
    : (target.packed[index]! & 0x0f) | (q << 4)
}

export const blockParameters = (source: Int4Blocks, n: number, block: number) => {
  const blocks = blocksPerColumn(source.K, source.blockSize)
  const zeroByte = source.zeroPoints[n * Math.ceil(blocks / 2) + (block >> 1)]!
  return { scale: source.scales[n * blocks + block]!, zeroPoint: block % 2 === 0 ? zeroByte & 0x0f : zeroByte >> 4 }
}

/** Round-to-nearest: each block's own min/max sets its scale and zero point. */
export const quantizeInt4Rtn = (weights: Float32Array, K: number, N: number, blockSize: number): Int4Blocks => {
  const target = emptyInt4Blocks(K, N, blockSize)
  const blocks = blocksPerColumn(K, blockSize)
  for (let n = 0; n < N; n++) {
    for (let block = 0; block < blocks; block++) {
      const start = block * blockSize
      const end = Math.min(K, start + blockSize)
      let min = Infinity
      let max = -Infinity
      for (let k = start; k < end; k++) {
        const value = weights[k * N + n]!
        if (value < min) min = value
        if (value > max) max = value
      }
      const { scale, zeroPoint } = int4Range(min, max)
      setBlockParameters(target, n, block, scale, zeroPoint)
      for (let k = start; k < start + blockSize; k++) {
        // Padding past K quantizes to the zero point, i.e. to 0.
        setQuantized(target, k, n, k < end ? quantizeValue(weights[k * N + n]!, scale, zeroPoint) : zeroPoint)
      }
    }
  }
  return target
}

/** Back to FP32 [K, N], exactly as MatMulNBits dequantizes. */
export const dequantizeInt4 = (source: Int4Blocks): Float32Array => {
  const { K, N, blockSize } = source
  const blocks = blocksPerColumn(K, blockSize)
  const out = new Float32Array(K * N)
  for (let n = 0; n < N; n++) {
    for (let block = 0; block < blocks; block++) {
      const { scale, zeroPoint } = blockParameters(source, n, block)
      const base = (n * blocks + block) * (blockSize / 2)
      for (let within = 0; within < blockSize; within++) {
        const k = block * blockSize + within
        if (k >= K) break
        const byte = source.packed[base + (within >> 1)]!
        const q = within % 2 === 0 ? byte & 0x0f : byte >> 4
        out[k * N + n] = (q - zeroPoint) * scale
      }
    }
  }
  return out
}
