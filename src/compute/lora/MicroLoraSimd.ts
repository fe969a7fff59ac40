/**
 * The float MicroLoRA kernels in WebAssembly SIMD (MicroLora.wat), for widths that are whole vectors
 * of 8: rows, factors and gradients are copied into the module's memory, with B transposed so that both
 * factors are read along the width, and the results copied out. Each returns false, having done
 * nothing, where it cannot run; MicroLora.ts then runs its JavaScript loops.
 */
import type { MicroLora } from "./MicroLora.js"
import { microLoraWasm } from "./MicroLoraWasm.js"
import type { SimdModule } from "./train/SimdModule.js"
import { heapOf, instantiateSimd, simdEnabled } from "./train/SimdModule.js"

interface Kernel {
  readonly module: SimdModule
  readonly forward: (
    x: number,
    a: number,
    bt: number,
    y: number,
    hs: number,
    batch: number,
    d: number,
    rank: number,
    scale: number
  ) => void
  readonly backward: (
    x: number,
    dy: number,
    a: number,
    bt: number,
    ga: number,
    gbt: number,
    dx: number,
    hs: number,
    gs: number,
    batch: number,
    d: number,
    rank: number,
    scale: number
  ) => void
}

let kernel: Kernel | null | undefined

/** The SIMD kernels, when they can run this adapter (the runtime has them, they are on, the width is whole vectors of 8). */
const simdKernel = (width: number): Kernel | undefined => {
  if (!simdEnabled() || width % 8 !== 0) return undefined
  if (kernel === undefined) {
    const module = instantiateSimd(microLoraWasm)
    kernel = module === null ? null : {
      module,
      forward: module.exports["forward"] as Kernel["forward"],
      backward: module.exports["backward"] as Kernel["backward"]
    }
  }
  return kernel ?? undefined
}

/** Whether the float kernels run in WebAssembly SIMD for adapters of this width. */
export const microLoraSimd = (width: number): boolean => simdKernel(width) !== undefined

/**
 * The module's memory laid out for `batch` rows: A, Bᵀ, gradA, gradBᵀ ([paddedRank, d] each, padding
 * rows zero), two rank-long scratch rows, then `rows` row buffers of batch · d. Offsets in floats.
 */
const layout = (simd: Kernel, lora: MicroLora, batch: number, rows: number) => {
  const { inFeatures: d, rank } = lora
  const paddedRank = rank + (rank & 1)
  const plane = paddedRank * d
  const scratch = 4 * plane
  const first = scratch + 2 * paddedRank
  const heap = heapOf(simd.module, (first + rows * batch * d) * 4)
  heap.fill(0, 0, first)
  heap.set(lora.A.subarray(0, rank * d), 0)
  const B = lora.B
  for (let r = 0; r < rank; r++) for (let i = 0; i < d; i++) heap[plane + r * d + i] = B[i * rank + r]!
  return { heap, paddedRank, plane, scratch, first }
}

/** y = x + scale · (x Aᵀ) Bᵀ for `batch` rows in SIMD (y may be x); false when it cannot run here. */
export const simdForward = (lora: MicroLora, x: Float32Array, batch: number, y: Float32Array): boolean => {
  const simd = simdKernel(lora.inFeatures)
  if (simd === undefined || batch === 0) return false
  const d = lora.inFeatures
  const size = batch * d
  const { heap, paddedRank, plane, scratch, first } = layout(simd, lora, batch, 2)
  heap.set(x.subarray(0, size), first)
  simd.forward(first * 4, 0, plane * 4, (first + size) * 4, scratch * 4, batch, d, paddedRank, lora.scale)
  y.set(heap.subarray(first + size, first + 2 * size))
  return true
}

/** dx, and gradA and gradB added to, in SIMD (dx may be dy); false when it cannot run here. */
export const simdBackward = (
  lora: MicroLora,
  x: Float32Array,
  dy: Float32Array,
  batch: number,
  dx: Float32Array
): boolean => {
  const simd = simdKernel(lora.inFeatures)
  if (simd === undefined || batch === 0) return false
  const { inFeatures: d, rank, gradA, gradB } = lora
  const size = batch * d
  const { heap, paddedRank, plane, scratch, first } = layout(simd, lora, batch, 3)
  heap.set(gradA.subarray(0, rank * d), 2 * plane)
  for (let r = 0; r < rank; r++) for (let i = 0; i < d; i++) heap[3 * plane + r * d + i] = gradB[i * rank + r]!
  heap.set(x.subarray(0, size), first)
  heap.set(dy.subarray(0, size), first + size)
  const bytes = 4
  simd.backward(
    first * bytes,
    (first + size) * bytes,
    0,
    plane * bytes,
    2 * plane * bytes,
    3 * plane * bytes,
    (first + 2 * size) * bytes,
    scratch * bytes,
    (scratch + paddedRank) * bytes,
    batch,
    d,
    paddedRank,
    lora.scale
  )
  dx.set(heap.subarray(first + 2 * size, first + 3 * size))
  gradA.set(heap.subarray(2 * plane, 2 * plane + rank * d))
  for (let r = 0; r < rank; r++) for (let i = 0; i < d; i++) gradB[i * rank + r] = heap[3 * plane + r * d + i]!
  return true
}
