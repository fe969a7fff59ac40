/**
 * The training executor's dot-product kernel in WebAssembly SIMD (DotProducts.wat), for Node and
 * browsers alike: the operands (and Z) are copied into the module's memory with their rows padded to
 * whole vectors, multiplied there in 2 x 4 tiles of float32x4 sums added into Z, and Z copied back. Where the
 * runtime has no WebAssembly SIMD, `simdDotProducts` declines and the caller's JavaScript loop runs.
 */
import { dotProductsWasm } from "./DotProductsWasm.js"
import type { SimdModule } from "./SimdModule.js"
import { heapOf, instantiateSimd, simdEnabled } from "./SimdModule.js"

interface Kernel {
  readonly module: SimdModule
  readonly dots: (x: number, y: number, z: number, m: number, q: number, len: number, stride: number) => void
  readonly outer: (x: number, y: number, z: number, m: number, k: number, n: number) => void
}

let kernel: Kernel | null | undefined

const instantiate = (): Kernel | null => {
  const module = instantiateSimd(dotProductsWasm)
  return module === null ? null : {
    module,
    dots: module.exports["dots"] as Kernel["dots"],
    outer: module.exports["outer"] as Kernel["outer"]
  }
}

/** Whether the SIMD kernel runs here (the runtime supports it and it is not switched off). */
export const simdAvailable = (): boolean => {
  if (kernel === undefined) kernel = instantiate()
  return simdEnabled() && kernel !== null
}

export { setSimdEnabled } from "./SimdModule.js"

/** The floats of Y a column block of the matrix kernel holds (16 kB). */
const BLOCK_FLOATS = 4096

/** `rows` rows of `len` floats from `source` into `heap` at `at`, each padded with zeros to `width`. */
const pack = (
  source: Float32Array,
  offset: number,
  rows: number,
  len: number,
  heap: Float32Array,
  at: number,
  width: number
) => {
  if (width === len) {
    heap.set(source.subarray(offset, offset + rows * len), at)
    return
  }
  for (let r = 0; r < rows; r++) {
    heap.set(source.subarray(offset + r * len, offset + (r + 1) * len), at + r * width)
    heap.fill(0, at + r * width + len, at + (r + 1) * width)
  }
}

/**
 * Z[m, q] += X[m, len] · Y[q, len]ᵀ (row-major, at the given offsets) in WebAssembly; false, having
 * done nothing, when the kernel is unavailable. Sums are float32, as ONNX Runtime's are. With
 * `overwrite`, Z's contents are ignored (Z = X · Yᵀ), which spares copying Z in.
 */
export const simdDotProducts = (
  x: Float32Array,
  xOffset: number,
  y: Float32Array,
  yOffset: number,
  z: Float32Array,
  zOffset: number,
  m: number,
  q: number,
  len: number,
  overwrite = false
): boolean => {
  if (!simdAvailable()) return false
  const { module, dots } = kernel!
  const rows = m + (m & 1)
  const cols = (q + 3) & ~3
  const width = (len + 3) & ~3
  const xFloats = rows * width
  const yFloats = cols * width
  const heap = heapOf(module, (xFloats + yFloats + rows * cols) * 4)
  // Padding rows only make outputs that are never read; padding columns must be zero.
  pack(x, xOffset, m, len, heap, 0, width)
  pack(y, yOffset, q, len, heap, xFloats, width)
  // Z goes in and comes out by copies: the kernel adds to it.
  const results = xFloats + yFloats
  if (overwrite) heap.fill(0, results, results + m * cols)
  else if (cols === q) heap.set(z.subarray(zOffset, zOffset + m * q), results)
  else for (let i = 0; i < m; i++) heap.set(z.subarray(zOffset + i * q, zOffset + (i + 1) * q), results + i * cols)
  // Columns a block at a time, the block of Y (block · width floats) within about 16 kB: L1 holds it
  // while all of X streams past, where a whole wide Y (the LM head's 2.4 MB) would come from L3 per row pair.
  const block = Math.min(cols, Math.max(4, Math.floor(BLOCK_FLOATS / width) & ~3))
  for (let first = 0; first < cols; first += block) {
    const count = Math.min(block, cols - first)
    dots(0, (xFloats + first * width) * 4, (results + first) * 4, rows, count, width, cols)
  }
  if (cols === q) z.set(heap.subarray(results, results + m * q), zOffset)
  else for (let i = 0; i < m; i++) z.set(heap.subarray(results + i * cols, results + i * cols + q), zOffset + i * q)
  return true
}

/**
 * dB[k, n] += A[m, k]ᵀ · G[m, n] (row-major, at the given offsets) as outer products of rows in
 * WebAssembly, vectorized along the longer of k and n (the other is a LoRA rank); false, having done
 * nothing, when the kernel is unavailable. Sums are float32.
 */
export const simdOuterProducts = (
  a: Float32Array,
  aOffset: number,
  g: Float32Array,
  gOffset: number,
  db: Float32Array,
  dbOffset: number,
  m: number,
  k: number,
  n: number
): boolean => {
  if (!simdAvailable()) return false
  const { module, outer } = kernel!
  // Along n: Z = dB [k, n]; along k: Z = dBᵀ [n, k] from the operands swapped.
  const alongN = n >= k
  const [x, xOffset, rows, y, yOffset, cols] = alongN ? [a, aOffset, k, g, gOffset, n] : [g, gOffset, n, a, aOffset, k]
  const width = (cols + 3) & ~3
  const xFloats = m * rows
  const yFloats = m * width
  const heap = heapOf(module, (xFloats + yFloats + rows * width) * 4)
  heap.set(x.subarray(xOffset, xOffset + xFloats), 0)
  pack(y, yOffset, m, cols, heap, xFloats, width)
  const results = xFloats + yFloats
  heap.fill(0, results, results + rows * width)
  outer(0, xFloats * 4, results * 4, m, rows, width)
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      db[dbOffset + (alongN ? r * n + c : c * n + r)]! += heap[results + r * width + c]!
    }
  }
  return true
}

/** One product of `simdLinear`: X [m, len] (at offset 0) times Yᵀ, Y given as its rows [q, len]. */
export interface LinearTerm {
  readonly x: Float32Array
  readonly y: Float32Array
  readonly len: number
}

/**
 * Z[m, q] = bias + Σ_terms X · Yᵀ (bias [q] on every row, or none) in WebAssembly, with Z kept in the
 * module's memory between the terms and copied out once; false, having done nothing, when the kernel is
 * unavailable. A layer with a LoRA branch is two terms: x · W and (x Aᵀ) · B.
 */
export const simdLinear = (
  terms: ReadonlyArray<LinearTerm>,
  bias: Float32Array | undefined,
  z: Float32Array,
  m: number,
  q: number
): boolean => {
  if (!simdAvailable()) return false
  const { module, dots } = kernel!
  const rows = m + (m & 1)
  const cols = (q + 3) & ~3
  let operands = 0
  for (const term of terms) operands = Math.max(operands, (rows + cols) * ((term.len + 3) & ~3))
  const results = 0
  const heap = heapOf(module, (rows * cols + operands) * 4)
  if (bias === undefined) heap.fill(0, results, results + m * cols)
  else {
    for (let i = 0; i < m; i++) {
      heap.set(bias.subarray(0, q), results + i * cols)
      heap.fill(0, results + i * cols + q, results + (i + 1) * cols)
    }
  }
  const at = rows * cols
  for (const { x, y, len } of terms) {
    const width = (len + 3) & ~3
    const xFloats = rows * width
    pack(x, 0, m, len, heap, at, width)
    pack(y, 0, q, len, heap, at + xFloats, width)
    const block = Math.min(cols, Math.max(4, Math.floor(BLOCK_FLOATS / width) & ~3))
    for (let first = 0; first < cols; first += block) {
      const count = Math.min(block, cols - first)
      dots(at * 4, (at + xFloats + first * width) * 4, (results + first) * 4, rows, count, width, cols)
    }
  }
  if (cols === q) z.set(heap.subarray(results, results + m * q))
  else for (let i = 0; i < m; i++) z.set(heap.subarray(results + i * cols, results + i * cols + q), i * q)
  return true
}
