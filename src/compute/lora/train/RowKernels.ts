/**
 * The executor's row kernels in WebAssembly SIMD (RowKernels.wat): erf, GELU and their derivatives,
 * row softmax under attention and the next-token loss, and layer normalization both ways. Operands are copied into the
 * module's memory (padded to whole vectors) and results copied out; each function returns false, having
 * done nothing, where the kernel cannot run, and its caller runs its JavaScript loop.
 */
import { rowKernelsWasm } from "./RowKernelsWasm.js"
import type { SimdModule } from "./SimdModule.js"
import { heapOf, instantiateSimd, simdEnabled } from "./SimdModule.js"

interface Kernel {
  readonly module: SimdModule
  readonly exp: (src: number, dst: number, n: number) => void
  readonly erf: (src: number, dst: number, n: number) => void
  readonly erfGrad: (x: number, g: number, dst: number, n: number) => void
  readonly gelu: (src: number, dst: number, n: number) => void
  readonly geluGrad: (x: number, g: number, dst: number, n: number) => void
  readonly softmax: (src: number, dst: number, stats: number, rows: number, width: number) => void
  readonly layerNorm: (
    src: number,
    gamma: number,
    beta: number,
    dst: number,
    rows: number,
    width: number,
    epsilon: number
  ) => void
  readonly layerNormGrad: (
    src: number,
    gamma: number,
    g: number,
    dst: number,
    rows: number,
    width: number,
    epsilon: number
  ) => void
}

let kernel: Kernel | null | undefined

const available = (): Kernel | undefined => {
  if (!simdEnabled()) return undefined
  if (kernel === undefined) {
    const module = instantiateSimd(rowKernelsWasm)
    kernel = module === null ? null : {
      module,
      exp: module.exports["exp"] as Kernel["exp"],
      erf: module.exports["erf"] as Kernel["erf"],
      erfGrad: module.exports["erfGrad"] as Kernel["erfGrad"],
      gelu: module.exports["gelu"] as Kernel["gelu"],
      geluGrad: module.exports["geluGrad"] as Kernel["geluGrad"],
      softmax: module.exports["softmax"] as Kernel["softmax"],
      layerNorm: module.exports["layerNorm"] as Kernel["layerNorm"],
      layerNormGrad: module.exports["layerNormGrad"] as Kernel["layerNormGrad"]
    }
  }
  return kernel ?? undefined
}

const padded = (n: number) => (n + 3) & ~3

/** One operand's n floats into the heap at `at`, zero-padded to whole vectors. */
const put = (heap: Float32Array, at: number, source: Float32Array, n: number) => {
  heap.set(source.subarray(0, n), at)
  heap.fill(0, at + n, at + padded(n))
}

/** out = f(x) for the first n values, by one of the kernel's one-input functions. */
const unary = (pick: (kernel: Kernel) => Kernel["erf"], x: Float32Array, out: Float32Array, n: number): boolean => {
  const simd = available()
  if (simd === undefined) return false
  const size = padded(n)
  const heap = heapOf(simd.module, 2 * size * 4)
  put(heap, 0, x, n)
  pick(simd)(0, size * 4, size)
  out.set(heap.subarray(size, size + n))
  return true
}

/** out = g · f'(x) for the first n values, by one of the kernel's vector-Jacobian products. */
const product = (
  pick: (kernel: Kernel) => Kernel["erfGrad"],
  x: Float32Array,
  g: Float32Array,
  out: Float32Array,
  n: number
): boolean => {
  const simd = available()
  if (simd === undefined) return false
  const size = padded(n)
  const heap = heapOf(simd.module, 3 * size * 4)
  put(heap, 0, x, n)
  put(heap, size, g, n)
  pick(simd)(0, size * 4, 2 * size * 4, size)
  out.set(heap.subarray(2 * size, 2 * size + n))
  return true
}

/** out[i] = e^x[i] for the first n values. */
export const simdExp = (x: Float32Array, out: Float32Array, n = x.length): boolean =>
  unary((kernel) => kernel.exp, x, out, n)

/** out[i] = erf(x[i]) for the first n values. */
export const simdErf = (x: Float32Array, out: Float32Array, n = x.length): boolean =>
  unary((kernel) => kernel.erf, x, out, n)

/** out[i] = g[i] · d erf(x)/dx at x[i] = g[i] · 2/√π · e^(-x[i]²). */
export const simdErfGrad = (x: Float32Array, g: Float32Array, out: Float32Array, n = x.length): boolean =>
  product((kernel) => kernel.erfGrad, x, g, out, n)

/** out[i] = GELU(x[i]) = ½ x (1 + erf(x / √2)) for the first n values. */
export const simdGelu = (x: Float32Array, out: Float32Array, n = x.length): boolean =>
  unary((kernel) => kernel.gelu, x, out, n)

/** out[i] = g[i] · GELU'(x[i]) = g (½ (1 + erf(x / √2)) + x e^(-x²/2) / √(2π)). */
export const simdGeluGrad = (x: Float32Array, g: Float32Array, out: Float32Array, n = x.length): boolean =>
  product((kernel) => kernel.geluGrad, x, g, out, n)

/**
 * Softmax of `rows` rows of `width` values of x from `offset` into `out` at the same offset, and, when
 * `logSumExp` is given, each row's log Σ e^x into it. Only for widths that are whole vectors of 4.
 */
export const simdSoftmaxRows = (
  x: Float32Array,
  offset: number,
  rows: number,
  width: number,
  out: Float32Array,
  logSumExp?: Float64Array
): boolean => {
  if (width % 4 !== 0) return false
  const simd = available()
  if (simd === undefined) return false
  const size = rows * width
  const heap = heapOf(simd.module, (size + 2 * rows) * 4)
  heap.set(x.subarray(offset, offset + size), 0)
  simd.softmax(0, 0, size * 4, rows, width)
  out.set(heap.subarray(0, size), offset)
  if (logSumExp !== undefined) {
    for (let row = 0; row < rows; row++) logSumExp[row] = heap[size + 2 * row]! + Math.log(heap[size + 2 * row + 1]!)
  }
  return true
}

/**
 * Layer normalization over the last axis, `width` wide (a multiple of 4): y = (x - mean) / √(var + ε)
 * · γ + β, β zero when absent. Sums are float32 in four lanes.
 */
export const simdLayerNorm = (
  x: Float32Array,
  gamma: Float32Array,
  beta: Float32Array | undefined,
  width: number,
  epsilon: number,
  out: Float32Array
): boolean => {
  if (width % 4 !== 0) return false
  const simd = available()
  if (simd === undefined) return false
  const size = x.length
  const heap = heapOf(simd.module, (2 * size + 2 * width) * 4)
  heap.set(x, 0)
  heap.set(gamma.subarray(0, width), size)
  if (beta === undefined) heap.fill(0, size + width, size + 2 * width)
  else heap.set(beta.subarray(0, width), size + width)
  const dst = size + 2 * width
  simd.layerNorm(0, size * 4, (size + width) * 4, dst * 4, size / width, width, epsilon)
  out.set(heap.subarray(dst, dst + size))
  return true
}

/** dL/dx of `simdLayerNorm` from x, γ and dL/dy (γ and β frozen: no gradients for them). */
export const simdLayerNormGrad = (
  x: Float32Array,
  gamma: Float32Array,
  g: Float32Array,
  width: number,
  epsilon: number,
  out: Float32Array
): boolean => {
  if (width % 4 !== 0) return false
  const simd = available()
  if (simd === undefined) return false
  const size = x.length
  const heap = heapOf(simd.module, (3 * size + width) * 4)
  heap.set(x, 0)
  heap.set(gamma.subarray(0, width), size)
  heap.set(g, size + width)
  const dst = 2 * size + width
  simd.layerNormGrad(0, size * 4, (size + width) * 4, dst * 4, size / width, width, epsilon)
  out.set(heap.subarray(dst, dst + size))
  return true
}
