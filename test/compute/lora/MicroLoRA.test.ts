/**
 * The vector MicroLoRA kernels against a naive float64 reference and finite differences, for the
 * rank-specialised loops (1, 2) and the general one; the int8 kernels against the float path; a new
 * adapter is the identity with seeded A; SGD and AdamW steps fit a low-rank map.
 */
import { describe, expect, it } from "@effect/vitest"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import type { MicroLora } from "../../../src/compute/lora/MicroLora.js"
import {
  adamWStep,
  backwardMicroLora,
  backwardMicroLoraInt8,
  forwardMicroLora,
  forwardMicroLoraInt8,
  makeAdamWState,
  makeMicroLora,
  microLoraSimd,
  quantizeRows,
  sgdStep,
  zeroGradients
} from "../../../src/compute/lora/MicroLora.js"
import { setSimdEnabled } from "../../../src/compute/lora/train/SimdModule.js"

const uniform = (seed: number, length: number, size = 1) => {
  const random = new SeededRandom(seed)
  return Float32Array.from({ length }, () => (random.uniform() * 2 - 1) * size)
}

/** An adapter with B filled too, so every term of the backward pass is non-zero. */
const trainedAdapter = (width: number, rank: number, alpha = 3) => {
  const lora = makeMicroLora({ width, rank, alpha, seed: rank })
  lora.B.set(uniform(100 + rank, width * rank, 0.5))
  return lora
}

/** y = x + scale · (x Aᵀ) Bᵀ, and the gradients of L = Σ dy ⊙ y, straight from the definitions in float64. */
const reference = (lora: MicroLora, x: ArrayLike<number>, dy: ArrayLike<number>, batch: number) => {
  const { inFeatures: d, rank, scale, A, B } = lora
  const y = new Float64Array(batch * d)
  const dx = new Float64Array(batch * d)
  const gradA = new Float64Array(rank * d)
  const gradB = new Float64Array(d * rank)
  for (let b = 0; b < batch; b++) {
    const h = Array.from(
      { length: rank },
      (_, r) => Array.from({ length: d }, (_, i) => x[b * d + i]! * A[r * d + i]!).reduce((s, v) => s + v, 0)
    )
    const gB = Array.from(
      { length: rank },
      (_, r) => Array.from({ length: d }, (_, o) => dy[b * d + o]! * B[o * rank + r]!).reduce((s, v) => s + v, 0)
    )
    for (let o = 0; o < d; o++) {
      y[b * d + o] = x[b * d + o]! + scale * h.reduce((s, hr, r) => s + hr * B[o * rank + r]!, 0)
    }
    for (let i = 0; i < d; i++) {
      dx[b * d + i] = dy[b * d + i]! + scale * gB.reduce((s, g, r) => s + g * A[r * d + i]!, 0)
    }
    for (let r = 0; r < rank; r++) {
      for (let i = 0; i < d; i++) gradA[r * d + i]! += scale * gB[r]! * x[b * d + i]!
      for (let o = 0; o < d; o++) gradB[o * rank + r]! += scale * dy[b * d + o]! * h[r]!
    }
  }
  return { y, dx, gradA, gradB }
}

const largestRelative = (ours: ArrayLike<number>, theirs: ArrayLike<number>) => {
  let worst = 0
  let size = 0
  for (let i = 0; i < theirs.length; i++) {
    worst = Math.max(worst, Math.abs(ours[i]! - theirs[i]!))
    size = Math.max(size, Math.abs(theirs[i]!))
  }
  return worst / size
}

describe("MicroLoRA", () => {
  for (const rank of [1, 2, 3, 16]) {
    it(`rank ${rank}: forward and backward match the float64 reference, gradients summed over calls`, () => {
      const [width, batch] = [24, 5]
      const lora = trainedAdapter(width, rank)
      const x = uniform(1, batch * width)
      const dy = uniform(2, batch * width)
      const expected = reference(lora, x, dy, batch)
      const y = new Float32Array(batch * width)
      const dx = new Float32Array(batch * width)
      forwardMicroLora(lora, x, batch, y)
      backwardMicroLora(lora, x, dy, batch, dx)
      expect(largestRelative(y, expected.y)).toBeLessThan(1e-6)
      expect(largestRelative(dx, expected.dx)).toBeLessThan(1e-6)
      expect(largestRelative(lora.gradA, expected.gradA)).toBeLessThan(1e-6)
      expect(largestRelative(lora.gradB, expected.gradB)).toBeLessThan(1e-6)
      backwardMicroLora(lora, x, dy, batch, dx)
      expect(largestRelative(lora.gradA, expected.gradA.map((g) => 2 * g))).toBeLessThan(1e-6)
      zeroGradients(lora)
      expect(lora.gradA.every((g) => g === 0) && lora.gradB.every((g) => g === 0)).toBe(true)
    })
  }

  it("the WebAssembly SIMD kernels equal the JavaScript loops: every rank, odd batches, in place, gradients summed", () => {
    expect(microLoraSimd(256)).toBe(true)
    expect(microLoraSimd(6)).toBe(false)
    for (const rank of [1, 2, 3, 4, 16]) {
      for (const [width, batch] of [[8, 1], [16, 7], [256, 32]] as const) {
        const run = (simd: boolean) => {
          setSimdEnabled(simd)
          try {
            const lora = trainedAdapter(width, rank)
            const x = uniform(5, batch * width)
            const dy = uniform(6, batch * width)
            const y = new Float32Array(batch * width)
            const dx = new Float32Array(batch * width)
            forwardMicroLora(lora, x, batch, y)
            backwardMicroLora(lora, x, dy, batch, dx)
            backwardMicroLora(lora, x, dy, batch, dy)
            const inPlace = x.slice()
            forwardMicroLora(lora, inPlace, batch, inPlace)
            return { y, dx, dxInPlace: dy, inPlace, gradA: lora.gradA, gradB: lora.gradB }
          } finally {
            setSimdEnabled(true)
          }
        }
        const simd = run(true)
        const scalar = run(false)
        for (const key of ["y", "dx", "dxInPlace", "inPlace", "gradA", "gradB"] as const) {
          expect(largestRelative(simd[key], scalar[key]), `rank ${rank}, width ${width}, ${key}`).toBeLessThan(1e-6)
        }
      }
    }
  })

  for (const rank of [2, 5]) {
    it(`rank ${rank}: gradients of L = ½‖y‖² match central finite differences`, () => {
      const [width, batch] = [6, 3]
      const lora = trainedAdapter(width, rank)
      const x = uniform(3, batch * width)
      const y = new Float32Array(batch * width)
      const loss = (input: Float32Array) => {
        forwardMicroLora(lora, input, batch, y)
        return y.reduce((sum, value) => sum + 0.5 * value * value, 0)
      }
      loss(x)
      const dy = Float32Array.from(y)
      const dx = new Float32Array(batch * width)
      backwardMicroLora(lora, x, dy, batch, dx)
      const step = 1e-2
      const centralDifference = (values: Float32Array, index: number) => {
        const saved = values[index]!
        values[index] = saved + step
        const up = loss(x)
        values[index] = saved - step
        const down = loss(x)
        values[index] = saved
        return (up - down) / (2 * step)
      }
      for (const [values, gradient] of [[x, dx], [lora.A, lora.gradA], [lora.B, lora.gradB]] as const) {
        for (let index = 0; index < values.length; index++) {
          expect(Math.abs(centralDifference(values, index) - gradient[index]!)).toBeLessThan(2e-3)
        }
      }
    })
  }

  for (const perTensor of [false, true]) {
    it(`int8 input with ${perTensor ? "one scale" : "per-row scales"}: the float path's results on the dequantized rows, and close to the original rows`, () => {
      const [width, batch, rank] = [32, 5, 2]
      const lora = trainedAdapter(width, rank)
      const x = Float32Array.from(uniform(4, batch * width), (value, i) => value * (1 + Math.floor(i / width)))
      const quantized = quantizeRows(x, batch, width, perTensor)
      expect(quantized.scales.length).toBe(perTensor ? 1 : batch)
      const dequantized = Float32Array.from(
        quantized.values,
        (value, i) => value * quantized.scales[perTensor ? 0 : Math.floor(i / width)]!
      )
      const dy = uniform(5, batch * width)
      const run = (forward: (y: Float32Array) => void, backward: (dx: Float32Array) => void) => {
        zeroGradients(lora)
        const y = new Float32Array(batch * width)
        const dx = new Float32Array(batch * width)
        forward(y)
        backward(dx)
        return { y, dx, gradA: Float32Array.from(lora.gradA), gradB: Float32Array.from(lora.gradB) }
      }
      const int8 = run(
        (y) => forwardMicroLoraInt8(lora, quantized, batch, y),
        (dx) => backwardMicroLoraInt8(lora, quantized, dy, batch, dx)
      )
      const onDequantized = run(
        (y) => forwardMicroLora(lora, dequantized, batch, y),
        (dx) => backwardMicroLora(lora, dequantized, dy, batch, dx)
      )
      const onOriginal = run(
        (y) => forwardMicroLora(lora, x, batch, y),
        (dx) => backwardMicroLora(lora, x, dy, batch, dx)
      )
      for (const key of ["y", "dx", "gradA", "gradB"] as const) {
        expect(largestRelative(int8[key], onDequantized[key])).toBeLessThan(1e-6)
      }
      // Rounding to 255 levels moves each input by at most half a step: about 0.4% of the row's range.
      const bound = perTensor ? 0.02 : 0.01
      expect(largestRelative(int8.y, onOriginal.y)).toBeLessThan(bound)
      expect(largestRelative(int8.gradA, onOriginal.gradA)).toBeLessThan(bound)
      expect(largestRelative(int8.gradB, onOriginal.gradB)).toBeLessThan(bound)
    })
  }

  it("a new adapter is the identity, its A drawn from the seed within ±1/√width", () => {
    const lora = makeMicroLora({ width: 64, rank: 2, seed: 7 })
    expect([lora.scale, lora.A.length, lora.B.length]).toEqual([1, 128, 128])
    expect(lora.B.every((value) => value === 0)).toBe(true)
    expect(lora.A.every((value) => Math.abs(value) <= 1 / 8) && new Set(lora.A).size === 128).toBe(true)
    expect(makeMicroLora({ width: 64, rank: 2, seed: 7 }).A).toEqual(lora.A)
    expect(makeMicroLora({ width: 64, rank: 2, seed: 8 }).A).not.toEqual(lora.A)
    const x = uniform(6, 3 * 64)
    const y = new Float32Array(3 * 64)
    forwardMicroLora(lora, x, 3, y)
    expect(y).toEqual(x)
  })

  it("refuses ranks past 16 and buffers shorter than the batch", () => {
    expect(() => makeMicroLora({ width: 8, rank: 17 })).toThrow("MicroLoRA rank must be 1 to 16, not 17")
    const lora = makeMicroLora({ width: 8, rank: 1 })
    expect(() => forwardMicroLora(lora, new Float32Array(16), 3, new Float32Array(24))).toThrow(
      "fewer than batch 3 × width 8"
    )
    expect(() =>
      forwardMicroLoraInt8(lora, { values: new Int8Array(24), scales: new Float32Array(2) }, 3, new Float32Array(24))
    ).toThrow("2 scales for 3 rows")
  })

  for (const optimizer of ["SGD", "AdamW"] as const) {
    it(`${optimizer} steps fit a rank-2 map y = x + x Mᵀ`, () => {
      const [width, batch, rank] = [16, 32, 2]
      const target = trainedAdapter(width, rank, 2)
      const lora = makeMicroLora({ width, rank, seed: 9 })
      const state = makeAdamWState(lora)
      const y = new Float32Array(batch * width)
      const wanted = new Float32Array(batch * width)
      const dy = new Float32Array(batch * width)
      const dx = new Float32Array(batch * width)
      const meanSquaredError = (step: number) => {
        const x = uniform(1000 + step, batch * width)
        forwardMicroLora(lora, x, batch, y)
        forwardMicroLora(target, x, batch, wanted)
        let loss = 0
        for (let i = 0; i < y.length; i++) {
          dy[i] = (2 * (y[i]! - wanted[i]!)) / y.length
          loss += (y[i]! - wanted[i]!) ** 2 / y.length
        }
        return { x, loss }
      }
      const before = meanSquaredError(0).loss
      for (let step = 1; step <= 300; step++) {
        const { x } = meanSquaredError(step)
        zeroGradients(lora)
        backwardMicroLora(lora, x, dy, batch, dx)
        if (optimizer === "SGD") sgdStep(lora, 2)
        else adamWStep(lora, state, { learningRate: 0.02, weightDecay: 0 })
      }
      expect(meanSquaredError(301).loss).toBeLessThan(before / 20)
    })
  }
})
