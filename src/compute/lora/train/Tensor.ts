/**
 * The dense tensors of the training executor and the kernels its operators share: numpy broadcasting
 * (forward index maps, and the reverse sum that brings a gradient back to an input's shape) and the
 * batched matrix product with its two adjoints.
 *
 * Element types are kept to what the reference graphs compute with: float32 activations, integers
 * (ONNX int64 / int32, held exactly in a Float64Array up to 2^53) for shapes and token ids, and bool.
 */
import { simdDotProducts } from "./SimdDotProducts.js"

export type ElementKind = "float" | "int" | "bool"

export interface FloatTensor {
  readonly kind: "float"
  readonly dims: ReadonlyArray<number>
  readonly data: Float32Array
}

export interface IntTensor {
  readonly kind: "int"
  readonly dims: ReadonlyArray<number>
  readonly data: Float64Array
}

export interface BoolTensor {
  readonly kind: "bool"
  readonly dims: ReadonlyArray<number>
  readonly data: Uint8Array
}

export type Tensor = FloatTensor | IntTensor | BoolTensor

export const sizeOf = (dims: ReadonlyArray<number>): number => {
  let size = 1
  for (const dim of dims) size *= dim
  return size
}

/**
 * Float arrays kept from one training step for the next: a step allocates hundreds of megabytes of
 * activations and gradients, and a fresh large typed array costs ten times the writes into a reused
 * one (the allocator maps new pages, the kernel zeroes them, the collector unmaps them). A trainer runs
 * each pass inside its program's pool (`withBufferPool`), where every array the operators make is lent
 * from it, and reclaims them all once it has read what it needs.
 */
export class BufferPool {
  readonly #free = new Map<number, Array<Float32Array>>()
  readonly #lent = new Set<Float32Array>()

  /**
   * An array of `length` floats, a reclaimed one when there is one, lent until `reclaim`: zero-filled,
   * or with `unfilled` holding whatever it held (for a caller that writes every element).
   */
  take(length: number, unfilled = false): Float32Array {
    const reused = this.#free.get(length)?.pop()
    const array = reused === undefined ? new Float32Array(length) : unfilled ? reused : reused.fill(0)
    this.#lent.add(array)
    return array
  }

  /** Takes one lent array back before the reclaim (nothing reads it any more); others are ignored. */
  giveBack(array: Float32Array): void {
    if (this.#lent.delete(array)) this.#freeList(array.length).push(array)
  }

  /** Takes back every array lent since the last reclaim: nothing may read them after this. */
  reclaim(): void {
    for (const array of this.#lent) this.#freeList(array.length).push(array)
    this.#lent.clear()
  }

  #freeList(length: number): Array<Float32Array> {
    let free = this.#free.get(length)
    if (free === undefined) {
      free = []
      this.#free.set(length, free)
    }
    return free
  }
}

/** Below this many floats, allocation is cheap and a pool would only hold memory. */
const MIN_POOLED = 4096

let activePool: BufferPool | undefined

/** Runs `work` with `floats` (and `floatTensor` without data) lent from `pool`; outside, they are fresh. */
export const withBufferPool = <T>(pool: BufferPool, work: () => T): T => {
  const outer = activePool
  activePool = pool
  try {
    return work()
  } finally {
    activePool = outer
  }
}

/** Gives an array of the running pool back early, when nothing will read it again (a spent gradient). */
export const giveBackFloats = (array: Float32Array): void => activePool?.giveBack(array)

/** A zero-filled array of `length` floats, from the running executor's pool when there is one. */
export const floats = (length: number): Float32Array =>
  activePool === undefined || length < MIN_POOLED ? new Float32Array(length) : activePool.take(length)

/** `floats` for a caller that writes every element: a pooled array is not zeroed first. */
export const unfilledFloats = (length: number): Float32Array =>
  activePool === undefined || length < MIN_POOLED ? new Float32Array(length) : activePool.take(length, true)

/** A float tensor for an operator that writes every element of it (see `unfilledFloats`). */
export const unfilledFloatTensor = (dims: ReadonlyArray<number>): FloatTensor => ({
  kind: "float",
  dims,
  data: unfilledFloats(sizeOf(dims))
})

export const floatTensor = (
  dims: ReadonlyArray<number>,
  data: Float32Array = floats(sizeOf(dims))
): FloatTensor => ({ kind: "float", dims, data })
export const intTensor = (
  dims: ReadonlyArray<number>,
  data: Float64Array = new Float64Array(sizeOf(dims))
): IntTensor => ({ kind: "int", dims, data })
export const boolTensor = (
  dims: ReadonlyArray<number>,
  data: Uint8Array = new Uint8Array(sizeOf(dims))
): BoolTensor => ({ kind: "bool", dims, data })

/** A tensor of the same kind with new data (and dims), for an operator that writes every element. */
export const like = (tensor: Tensor, dims: ReadonlyArray<number>): Tensor =>
  tensor.kind === "float" ? unfilledFloatTensor(dims) : tensor.kind === "int" ? intTensor(dims) : boolTensor(dims)

export const stridesOf = (dims: ReadonlyArray<number>): Array<number> => {
  const strides = new Array<number>(dims.length)
  let stride = 1
  for (let axis = dims.length - 1; axis >= 0; axis--) {
    strides[axis] = stride
    stride *= dims[axis]!
  }
  return strides
}

export const describeDims = (dims: ReadonlyArray<number>): string => `[${dims.join(", ")}]`

/** numpy's broadcast of two shapes, or undefined when they do not broadcast. */
export const broadcastDims = (left: ReadonlyArray<number>, right: ReadonlyArray<number>): Array<number> | undefined => {
  const rank = Math.max(left.length, right.length)
  const dims = new Array<number>(rank)
  for (let axis = 0; axis < rank; axis++) {
    const a = left[left.length - rank + axis] ?? 1
    const b = right[right.length - rank + axis] ?? 1
    if (a !== b && a !== 1 && b !== 1) return undefined
    dims[axis] = a === 1 ? b : a
  }
  return dims
}

const indexMaps = new Map<string, Int32Array | null>()

/**
 * For each element of a tensor of shape `out`, the offset of the element of a tensor of shape `from`
 * broadcast onto it; null when the shapes are equal (the identity). Cached by shape pair: a training
 * run sees a handful of shapes many times.
 */
export const broadcastIndex = (out: ReadonlyArray<number>, from: ReadonlyArray<number>): Int32Array | null => {
  const key = `${out.join(",")}|${from.join(",")}`
  const cached = indexMaps.get(key)
  if (cached !== undefined) return cached
  let map: Int32Array | null = null
  if (out.length !== from.length || out.some((dim, axis) => dim !== from[axis])) {
    const size = sizeOf(out)
    map = new Int32Array(size)
    const rank = out.length
    const fromStrides = stridesOf(from)
    const strides = new Array<number>(rank).fill(0)
    for (let axis = 0; axis < rank; axis++) {
      const fromAxis = axis - (rank - from.length)
      strides[axis] = fromAxis >= 0 && from[fromAxis] !== 1 ? fromStrides[fromAxis]! : 0
    }
    const counter = new Array<number>(rank).fill(0)
    let offset = 0
    for (let index = 0; index < size; index++) {
      map[index] = offset
      for (let axis = rank - 1; axis >= 0; axis--) {
        counter[axis]!++
        offset += strides[axis]!
        if (counter[axis]! < out[axis]!) break
        offset -= strides[axis]! * out[axis]!
        counter[axis] = 0
      }
    }
  }
  if (indexMaps.size > 512) indexMaps.clear()
  indexMaps.set(key, map)
  return map
}

/** The gradient of a broadcast input: `grad` (shape `out`) summed back onto shape `to`. */
export const reduceToShape = (
  grad: Float32Array,
  out: ReadonlyArray<number>,
  to: ReadonlyArray<number>
): Float32Array => {
  const map = broadcastIndex(out, to)
  if (map === null) return grad
  const reduced = floats(sizeOf(to))
  for (let index = 0; index < grad.length; index++) reduced[map[index]!]! += grad[index]!
  return reduced
}

/** Below this many multiply-adds, copying operands into WebAssembly memory costs more than it saves. */
const SIMD_MIN_WORK = 8_192

/**
 * Z[m, q] += X[m, len] · Y[q, len]ᵀ, row-major at the given offsets: every element a dot product of
 * two contiguous rows. In WebAssembly SIMD when the runtime has it (SimdDotProducts.ts), else in
 * JavaScript. With `overwrite`, Z's contents are ignored: Z = X · Yᵀ (a fresh output, not copied in).
 */
export const dotProducts = (
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
): void => {
  if (m * q * len >= SIMD_MIN_WORK && simdDotProducts(x, xOffset, y, yOffset, z, zOffset, m, q, len, overwrite)) return
  if (overwrite) z.fill(0, zOffset, zOffset + m * q)
  scalarDotProducts(x, xOffset, y, yOffset, z, zOffset, m, q, len)
}

/**
 * `dotProducts` in plain JavaScript: 4 x 4 tiles (16 running sums from 8 loads per step), which is
 * what makes it reach about 1 GMAC/s; the sums are doubles.
 */
export const scalarDotProducts = (
  x: Float32Array,
  xOffset: number,
  y: Float32Array,
  yOffset: number,
  z: Float32Array,
  zOffset: number,
  m: number,
  q: number,
  len: number
): void => {
  const fullRows = m - (m % 4)
  const fullCols = q - (q % 4)
  for (let i = 0; i < fullRows; i += 4) {
    const x0 = xOffset + i * len, x1 = x0 + len, x2 = x1 + len, x3 = x2 + len
    for (let j = 0; j < fullCols; j += 4) {
      const y0 = yOffset + j * len, y1 = y0 + len, y2 = y1 + len, y3 = y2 + len
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0
      for (let p = 0; p < len; p++) {
        const a0 = x[x0 + p]!, a1 = x[x1 + p]!, a2 = x[x2 + p]!, a3 = x[x3 + p]!
        const b0 = y[y0 + p]!, b1 = y[y1 + p]!, b2 = y[y2 + p]!, b3 = y[y3 + p]!
        c00 += a0 * b0
        c01 += a0 * b1
        c02 += a0 * b2
        c03 += a0 * b3
        c10 += a1 * b0
        c11 += a1 * b1
        c12 += a1 * b2
        c13 += a1 * b3
        c20 += a2 * b0
        c21 += a2 * b1
        c22 += a2 * b2
        c23 += a2 * b3
        c30 += a3 * b0
        c31 += a3 * b1
        c32 += a3 * b2
        c33 += a3 * b3
      }
      const z0 = zOffset + i * q + j, z1 = z0 + q, z2 = z1 + q, z3 = z2 + q
      z[z0]! += c00
      z[z0 + 1]! += c01
      z[z0 + 2]! += c02
      z[z0 + 3]! += c03
      z[z1]! += c10
      z[z1 + 1]! += c11
      z[z1 + 2]! += c12
      z[z1 + 3]! += c13
      z[z2]! += c20
      z[z2 + 1]! += c21
      z[z2 + 2]! += c22
      z[z2 + 3]! += c23
      z[z3]! += c30
      z[z3 + 1]! += c31
      z[z3 + 2]! += c32
      z[z3 + 3]! += c33
    }
  }
  // The edges: rows past the last full tile, and columns past it in the tiled rows.
  const single = (i: number, j: number) => {
    const xRow = xOffset + i * len, yRow = yOffset + j * len
    let sum = 0
    for (let p = 0; p < len; p++) sum += x[xRow + p]! * y[yRow + p]!
    z[zOffset + i * q + j]! += sum
  }
  for (let i = 0; i < fullRows; i++) for (let j = fullCols; j < q; j++) single(i, j)
  for (let i = fullRows; i < m; i++) for (let j = 0; j < q; j++) single(i, j)
}

/** The transpose of a row-major [rows, cols] matrix at `offset` (`kept`: never from a pool, for caches). */
export const transposeMatrix = (
  source: Float32Array,
  offset: number,
  rows: number,
  cols: number,
  kept = false
): Float32Array => {
  const out = kept ? new Float32Array(rows * cols) : unfilledFloats(rows * cols)
  for (let r = 0; r < rows; r++) {
    const from = offset + r * cols
    for (let c = 0; c < cols; c++) out[c * rows + r] = source[from + c]!
  }
  return out
}

const transposedCache = new WeakMap<Float32Array, Map<number, Float32Array>>()
const constants = new WeakSet<Float32Array>()

/** Marks a program's constant (a weight): never written, never returned to a pool. */
export const markConstant = (data: Float32Array): void => {
  constants.add(data)
}

/**
 * The transpose of the [rows, cols] matrix at `offset` of `source`, computed once per constant: a
 * weight's transpose serves every step of a run. Other arrays (activations, which a pool reuses) are
 * transposed afresh.
 */
export const cachedTranspose = (source: Float32Array, offset: number, rows: number, cols: number): Float32Array => {
  if (!constants.has(source)) return transposeMatrix(source, offset, rows, cols)
  let byOffset = transposedCache.get(source)
  if (byOffset === undefined) {
    byOffset = new Map()
    transposedCache.set(source, byOffset)
  }
  let transposed = byOffset.get(offset)
  if (transposed === undefined || transposed.length !== rows * cols) {
    transposed = transposeMatrix(source, offset, rows, cols, true)
    byOffset.set(offset, transposed)
  }
  return transposed
}

/** The batch layout of numpy's matmul of [..., m, k] by [..., k, n] (both at least 2-D). */
export interface MatMulPlan {
  readonly m: number
  readonly k: number
  readonly n: number
  readonly outDims: ReadonlyArray<number>
  /** Per output matrix, the matrix index into A and into B. */
  readonly aBatch: Int32Array
  readonly bBatch: Int32Array
}

export const matMulPlan = (aDims: ReadonlyArray<number>, bDims: ReadonlyArray<number>): MatMulPlan | string => {
  if (aDims.length < 2 || bDims.length < 2) {
    return `MatMul of 1-D operands is not supported (${describeDims(aDims)} x ${describeDims(bDims)})`
  }
  const m = aDims[aDims.length - 2]!
  const k = aDims[aDims.length - 1]!
  const n = bDims[bDims.length - 1]!
  if (bDims[bDims.length - 2] !== k) return `MatMul shapes ${describeDims(aDims)} x ${describeDims(bDims)} do not chain`
  const aBatchDims = aDims.slice(0, -2)
  const bBatchDims = bDims.slice(0, -2)
  const batchDims = broadcastDims(aBatchDims, bBatchDims)
  if (batchDims === undefined) {
    return `MatMul batch shapes ${describeDims(aDims)} x ${describeDims(bDims)} do not broadcast`
  }
  const batches = sizeOf(batchDims)
  const aMap = broadcastIndex(batchDims, aBatchDims)
  const bMap = broadcastIndex(batchDims, bBatchDims)
  const aBatch = new Int32Array(batches)
  const bBatch = new Int32Array(batches)
  for (let index = 0; index < batches; index++) {
    aBatch[index] = aBatchDims.length === 0 ? 0 : aMap === null ? index : aMap[index]!
    bBatch[index] = bBatchDims.length === 0 ? 0 : bMap === null ? index : bMap[index]!
  }
  return { m, k, n, outDims: [...batchDims, m, n], aBatch, bBatch }
}
