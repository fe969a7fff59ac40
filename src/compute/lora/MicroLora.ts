/**
 * The seed's MicroLoRA: a rank 1-16 adapter on hidden vectors of width d, y = x + scale · (x Aᵀ) Bᵀ,
 * with batched forward and backward kernels over row-major Float32Array batches [batch, d].
 *
 * A is [rank, d] and B is [d, rank] as in `LoraModule` (so a MicroLora is one, square); B starts at
 * zero (the adapter starts as the identity, as LoRA does) and A uniform in ±1/√d (PEFT's Kaiming
 * init) from a `SeededRandom`. The quantization-aware kernels take int8 rows with per-row scales (or
 * one scale for the whole batch) and dequantize inside the loop. Outputs go to caller-owned arrays.
 *
 * The float kernels run in WebAssembly SIMD (MicroLoraSimd.ts) where the runtime has it and the width
 * is a multiple of 8. Elsewhere, and for int8 rows, JavaScript loops run, rank 1 and 2 (the seed's
 * sizes) with their own; they are also the reference the SIMD path is tested against.
 */
import { SeededRandom } from "./Adapter.js"
import type { LoraModule } from "./Adapter.js"
import { simdBackward, simdForward } from "./MicroLoraSimd.js"
import { adamWUpdate } from "./train/AdamW.js"

export { microLoraSimd } from "./MicroLoraSimd.js"

export const maxMicroLoraRank = 16

export interface MicroLora extends LoraModule {
  readonly rank: number
  readonly alpha: number
  /** alpha / rank. */
  readonly scale: number
  /** dL/dA, [rank, d]: summed by every backward call until `zeroGradients`. */
  readonly gradA: Float32Array
  /** dL/dB, [d, rank]. */
  readonly gradB: Float32Array
}

export interface MicroLoraOptions {
  readonly width: number
  /** 1 to 16; the seed uses 1 or 2. */
  readonly rank: number
  /** Defaults to rank (scale 1). */
  readonly alpha?: number
  /** Seed of A's initial draws; defaults to 0. */
  readonly seed?: number
}

/** An int8 batch: row b is `values[b·d .. (b+1)·d)` · `scales[b]`, or · `scales[0]` when there is one scale. */
export interface Int8Rows {
  readonly values: Int8Array
  readonly scales: Float32Array
}

export const makeMicroLora = (options: MicroLoraOptions): MicroLora => {
  const { width, rank, alpha = rank, seed = 0 } = options
  if (!Number.isInteger(width) || width < 1) {
    throw new RangeError(`MicroLoRA width must be a positive integer, not ${width}`)
  }
  if (!Number.isInteger(rank) || rank < 1 || rank > maxMicroLoraRank) {
    throw new RangeError(`MicroLoRA rank must be 1 to ${maxMicroLoraRank}, not ${rank}`)
  }
  const random = new SeededRandom(seed)
  const bound = 1 / Math.sqrt(width)
  const A = Float32Array.from({ length: rank * width }, () => (2 * random.uniform() - 1) * bound)
  return {
    inFeatures: width,
    outFeatures: width,
    rank,
    alpha,
    scale: alpha / rank,
    A,
    B: new Float32Array(width * rank),
    gradA: new Float32Array(rank * width),
    gradB: new Float32Array(width * rank)
  }
}

// Per-row low-rank activations of the generic-rank loops; kernels are synchronous, so one set serves all.
const hidden = new Float64Array(maxMicroLoraRank)
const hiddenGrad = new Float64Array(maxMicroLoraRank)

const checkRows = (lora: MicroLora, what: string, length: number, batch: number) => {
  if (!Number.isInteger(batch) || batch < 0 || length < batch * lora.inFeatures) {
    throw new RangeError(
      `MicroLoRA ${what} holds ${length} values, fewer than batch ${batch} × width ${lora.inFeatures}`
    )
  }
}

const checkScales = (rows: Int8Rows, batch: number) => {
  if (rows.scales.length !== 1 && rows.scales.length < batch) {
    throw new RangeError(
      `MicroLoRA int8 input has ${rows.scales.length} scales for ${batch} rows: give one per row, or one for all`
    )
  }
}

// The kernels below take rows of float32 or int8 input: row b starts at b·d and its values are
// multiplied by `rowScale` (1 for float input). Rank 2 runs two rows at a time, so each load of A and
// B and each update of gradA and gradB serves both; rank 1 has its own loop; any other rank, and the
// odd last row of rank 2, runs the general loop.

const rowScaleOf = (
  scales: Float32Array | undefined,
  b: number
) => (scales === undefined ? 1 : scales[scales.length === 1 ? 0 : b]!)

/** y = x + scale · (x Aᵀ) Bᵀ for one row starting at `row`. */
const forwardRow = (lora: MicroLora, x: Float32Array | Int8Array, row: number, rowScale: number, y: Float32Array) => {
  const { inFeatures: d, rank, scale, A, B } = lora
  if (rank === 1) {
    let h0 = 0
    for (let i = 0; i < d; i++) h0 += x[row + i]! * A[i]!
    h0 *= scale * rowScale
    for (let i = 0; i < d; i++) y[row + i] = x[row + i]! * rowScale + h0 * B[i]!
    return
  }
  for (let r = 0; r < rank; r++) {
    let h = 0
    for (let i = 0; i < d; i++) h += x[row + i]! * A[r * d + i]!
    hidden[r] = h * scale * rowScale
  }
  for (let i = 0; i < d; i++) {
    let value = x[row + i]! * rowScale
    for (let r = 0; r < rank; r++) value += hidden[r]! * B[i * rank + r]!
    y[row + i] = value
  }
}

/** `forwardRow` at rank 2 for the rows starting at `row` and `row + d`. */
const forwardRank2Pair = (
  lora: MicroLora,
  x: Float32Array | Int8Array,
  row: number,
  scale0: number,
  scale1: number,
  y: Float32Array
) => {
  const { inFeatures: d, scale, A, B } = lora
  const next = row + d
  let h00 = 0
  let h01 = 0
  let h10 = 0
  let h11 = 0
  for (let i = 0; i < d; i++) {
    const a0 = A[i]!
    const a1 = A[d + i]!
    const x0 = x[row + i]!
    const x1 = x[next + i]!
    h00 += x0 * a0
    h01 += x0 * a1
    h10 += x1 * a0
    h11 += x1 * a1
  }
  h00 *= scale * scale0
  h01 *= scale * scale0
  h10 *= scale * scale1
  h11 *= scale * scale1
  for (let i = 0; i < d; i++) {
    const b0 = B[2 * i]!
    const b1 = B[2 * i + 1]!
    y[row + i] = x[row + i]! * scale0 + h00 * b0 + h01 * b1
    y[next + i] = x[next + i]! * scale1 + h10 * b0 + h11 * b1
  }
}

/**
 * With h = x Aᵀ and g = dL/dy for one row: dL/dx = g + scale · (g B) A, dL/dA += scale · (g B)ᵀ x,
 * dL/dB += scale · gᵀ h. h is recomputed from x rather than kept from the forward pass, so backward
 * needs nothing but its arguments. dx may be dy itself.
 */
const backwardRow = (
  lora: MicroLora,
  x: Float32Array | Int8Array,
  row: number,
  rowScale: number,
  dy: Float32Array,
  dx: Float32Array
) => {
  const { inFeatures: d, rank, scale, A, B, gradA, gradB } = lora
  if (rank === 1) {
    let h0 = 0
    let g0 = 0
    for (let i = 0; i < d; i++) {
      h0 += x[row + i]! * A[i]!
      g0 += dy[row + i]! * B[i]!
    }
    h0 *= scale * rowScale
    g0 *= scale
    const gx0 = g0 * rowScale
    for (let i = 0; i < d; i++) {
      const gi = dy[row + i]!
      gradA[i]! += gx0 * x[row + i]!
      gradB[i]! += gi * h0
      dx[row + i] = gi + g0 * A[i]!
    }
    return
  }
  for (let r = 0; r < rank; r++) {
    let h = 0
    let g = 0
    for (let i = 0; i < d; i++) {
      h += x[row + i]! * A[r * d + i]!
      g += dy[row + i]! * B[i * rank + r]!
    }
    hidden[r] = h * scale * rowScale
    hiddenGrad[r] = g * scale
  }
  for (let i = 0; i < d; i++) {
    const xi = x[row + i]! * rowScale
    const gi = dy[row + i]!
    let value = gi
    for (let r = 0; r < rank; r++) {
      const g = hiddenGrad[r]!
      value += g * A[r * d + i]!
      gradA[r * d + i]! += g * xi
      gradB[i * rank + r]! += gi * hidden[r]!
    }
    dx[row + i] = value
  }
}

/** `backwardRow` at rank 2 for the rows starting at `row` and `row + d`. */
const backwardRank2Pair = (
  lora: MicroLora,
  x: Float32Array | Int8Array,
  row: number,
  scale0: number,
  scale1: number,
  dy: Float32Array,
  dx: Float32Array
) => {
  const { inFeatures: d, scale, A, B, gradA, gradB } = lora
  const next = row + d
  let h00 = 0
  let h01 = 0
  let h10 = 0
  let h11 = 0
  let g00 = 0
  let g01 = 0
  let g10 = 0
  let g11 = 0
  for (let i = 0; i < d; i++) {
    const a0 = A[i]!
    const a1 = A[d + i]!
    const b0 = B[2 * i]!
    const b1 = B[2 * i + 1]!
    const x0 = x[row + i]!
    const x1 = x[next + i]!
    const e0 = dy[row + i]!
    const e1 = dy[next + i]!
    h00 += x0 * a0
    h01 += x0 * a1
    h10 += x1 * a0
    h11 += x1 * a1
    g00 += e0 * b0
    g01 += e0 * b1
    g10 += e1 * b0
    g11 += e1 * b1
  }
  h00 *= scale * scale0
  h01 *= scale * scale0
  h10 *= scale * scale1
  h11 *= scale * scale1
  g00 *= scale
  g01 *= scale
  g10 *= scale
  g11 *= scale
  // dL/dA takes the dequantized x: fold each row's scale into its coefficient once.
  const ga00 = g00 * scale0
  const ga01 = g01 * scale0
  const ga10 = g10 * scale1
  const ga11 = g11 * scale1
  for (let i = 0; i < d; i++) {
    const a0 = A[i]!
    const a1 = A[d + i]!
    const x0 = x[row + i]!
    const x1 = x[next + i]!
    const e0 = dy[row + i]!
    const e1 = dy[next + i]!
    gradA[i]! += ga00 * x0 + ga10 * x1
    gradA[d + i]! += ga01 * x0 + ga11 * x1
    gradB[2 * i]! += e0 * h00 + e1 * h10
    gradB[2 * i + 1]! += e0 * h01 + e1 * h11
    dx[row + i] = e0 + g00 * a0 + g01 * a1
    dx[next + i] = e1 + g10 * a0 + g11 * a1
  }
}

const forwardRows = (
  lora: MicroLora,
  x: Float32Array | Int8Array,
  scales: Float32Array | undefined,
  batch: number,
  y: Float32Array
) => {
  const d = lora.inFeatures
  let b = 0
  if (lora.rank === 2) {
    for (; b + 1 < batch; b += 2) {
      forwardRank2Pair(lora, x, b * d, rowScaleOf(scales, b), rowScaleOf(scales, b + 1), y)
    }
  }
  for (; b < batch; b++) forwardRow(lora, x, b * d, rowScaleOf(scales, b), y)
}

const backwardRows = (
  lora: MicroLora,
  x: Float32Array | Int8Array,
  scales: Float32Array | undefined,
  dy: Float32Array,
  batch: number,
  dx: Float32Array
) => {
  const d = lora.inFeatures
  let b = 0
  if (lora.rank === 2) {
    for (; b + 1 < batch; b += 2) {
      backwardRank2Pair(lora, x, b * d, rowScaleOf(scales, b), rowScaleOf(scales, b + 1), dy, dx)
    }
  }
  for (; b < batch; b++) backwardRow(lora, x, b * d, rowScaleOf(scales, b), dy, dx)
}

/** y = x + scale · (x Aᵀ) Bᵀ for `batch` rows of x; y may be x itself. */
export const forwardMicroLora = (lora: MicroLora, x: Float32Array, batch: number, y: Float32Array): void => {
  checkRows(lora, "input", x.length, batch)
  checkRows(lora, "output", y.length, batch)
  if (!simdForward(lora, x, batch, y)) forwardRows(lora, x, undefined, batch, y)
}

/** Given dL/dy for the rows x went forward with: writes dL/dx into dx (which may be dy) and adds to gradA, gradB. */
export const backwardMicroLora = (
  lora: MicroLora,
  x: Float32Array,
  dy: Float32Array,
  batch: number,
  dx: Float32Array
): void => {
  checkRows(lora, "input", x.length, batch)
  checkRows(lora, "output gradient", dy.length, batch)
  checkRows(lora, "input gradient", dx.length, batch)
  if (!simdBackward(lora, x, dy, batch, dx)) backwardRows(lora, x, undefined, dy, batch, dx)
}

/** `forwardMicroLora` on int8 rows, dequantized inside the kernel: the float path's result for values · scale. */
export const forwardMicroLoraInt8 = (lora: MicroLora, x: Int8Rows, batch: number, y: Float32Array): void => {
  checkRows(lora, "input", x.values.length, batch)
  checkRows(lora, "output", y.length, batch)
  checkScales(x, batch)
  forwardRows(lora, x.values, x.scales, batch, y)
}

/** `backwardMicroLora` for int8 rows that went forward, dequantized inside the kernel. */
export const backwardMicroLoraInt8 = (
  lora: MicroLora,
  x: Int8Rows,
  dy: Float32Array,
  batch: number,
  dx: Float32Array
): void => {
  checkRows(lora, "input", x.values.length, batch)
  checkRows(lora, "output gradient", dy.length, batch)
  checkRows(lora, "input gradient", dx.length, batch)
  checkScales(x, batch)
  backwardRows(lora, x.values, x.scales, dy, batch, dx)
}

/**
 * Symmetric int8 quantization of `batch` rows of width d: one scale per row (max |x| / 127), or one for
 * the whole batch when `perTensor`. A zero row gets scale 1.
 */
export const quantizeRows = (x: Float32Array, batch: number, width: number, perTensor = false): Int8Rows => {
  const values = new Int8Array(batch * width)
  const scales = new Float32Array(perTensor ? 1 : batch)
  const maxAbs = (from: number, to: number) => {
    let max = 0
    for (let i = from; i < to; i++) max = Math.max(max, Math.abs(x[i]!))
    return max
  }
  const tensorMax = perTensor ? maxAbs(0, batch * width) : 0
  for (let b = 0; b < batch; b++) {
    const max = perTensor ? tensorMax : maxAbs(b * width, (b + 1) * width)
    const rowScale = max > 0 ? max / 127 : 1
    scales[perTensor ? 0 : b] = rowScale
    for (let i = b * width; i < (b + 1) * width; i++) values[i] = Math.round(x[i]! / rowScale)
  }
  return { values, scales }
}

export const zeroGradients = (lora: MicroLora): void => {
  lora.gradA.fill(0)
  lora.gradB.fill(0)
}

/** θ -= learningRate · dL/dθ for A and B. */
export const sgdStep = (lora: MicroLora, learningRate: number): void => {
  for (let i = 0; i < lora.A.length; i++) lora.A[i]! -= learningRate * lora.gradA[i]!
  for (let i = 0; i < lora.B.length; i++) lora.B[i]! -= learningRate * lora.gradB[i]!
}

export interface AdamWState {
  step: number
  readonly momentA: Float32Array
  readonly momentB: Float32Array
  readonly varianceA: Float32Array
  readonly varianceB: Float32Array
}

export interface AdamWOptions {
  readonly learningRate: number
  readonly beta1?: number
  readonly beta2?: number
  readonly epsilon?: number
  /** Decoupled: θ -= learningRate · weightDecay · θ. Defaults to 0.01 as torch.optim.AdamW's. */
  readonly weightDecay?: number
}

export const makeAdamWState = (lora: MicroLora): AdamWState => ({
  step: 0,
  momentA: new Float32Array(lora.A.length),
  momentB: new Float32Array(lora.B.length),
  varianceA: new Float32Array(lora.A.length),
  varianceB: new Float32Array(lora.B.length)
})

/** One AdamW step (Loshchilov & Hutter, as torch.optim.AdamW) on A and B from gradA and gradB. */
export const adamWStep = (lora: MicroLora, state: AdamWState, options: AdamWOptions): void => {
  const { learningRate, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8, weightDecay = 0.01 } = options
  state.step++
  const settings = { betas: [beta1, beta2] as const, epsilon, weightDecay }
  adamWUpdate(lora.A, lora.gradA, state.momentA, state.varianceA, state.step, learningRate, settings)
  adamWUpdate(lora.B, lora.gradB, state.momentB, state.varianceB, state.step, learningRate, settings)
}
