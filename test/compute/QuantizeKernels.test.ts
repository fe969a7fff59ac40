import { describe, expect, it } from "@effect/vitest"
import { hessianOf, quantizeInt4Gptq } from "../../src/compute/quantize/Gptq.js"
import { blockParameters, dequantizeInt4, quantizeInt4Rtn } from "../../src/compute/quantize/Int4.js"
import { dequantizeInt8PerChannel, quantizeInt8PerChannel } from "../../src/compute/quantize/Int8.js"

/** Deterministic normal-ish values (sum of uniforms), seeded. */
const random = (seed: number) => {
  let state = seed >>> 0
  const uniform = () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
  return () => uniform() + uniform() + uniform() - 1.5
}

const matrix = (rows: number, cols: number, seed: number) => {
  const next = random(seed)
  return Float32Array.from({ length: rows * cols }, next)
}

/** ||X W - X Wq||² / ||X W||² over calibration rows X [samples, K]. */
const outputError = (x: Float32Array, samples: number, K: number, N: number, w: Float32Array, wq: Float32Array) => {
  let error = 0
  let total = 0
  for (let s = 0; s < samples; s++) {
    for (let n = 0; n < N; n++) {
      let exact = 0
      let approx = 0
      for (let k = 0; k < K; k++) {
        exact += x[s * K + k]! * w[k * N + n]!
        approx += x[s * K + k]! * wq[k * N + n]!
      }
      error += (exact - approx) ** 2
      total += exact ** 2
    }
  }
  return error / total
}

describe("quantization kernels", () => {
  it("INT8 per channel stays within half a step of every weight", () => {
    const w = matrix(64, 48, 1)
    const q = quantizeInt8PerChannel(w, 64, 48, 1)
    const back = dequantizeInt8PerChannel(q, 64, 48, 1)
    for (let i = 0; i < w.length; i++) {
      expect(Math.abs(back[i]! - w[i]!)).toBeLessThanOrEqual(q.scales[i % 48]! / 2 + 1e-7)
    }
  })

  it("INT4 blocks pack two values per byte, low nibble first, and dequantize within half a step", () => {
    const K = 100 // not a multiple of the block: the last block is padded
    const N = 6
    const w = matrix(K, N, 2)
    const q = quantizeInt4Rtn(w, K, N, 32)
    expect(q.packed.length).toBe(N * 4 * 16)
    expect(q.scales.length).toBe(N * 4)
    expect(q.zeroPoints.length).toBe(N * 2)
    const back = dequantizeInt4(q)
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) {
        const { scale } = blockParameters(q, n, Math.floor(k / 32))
        expect(Math.abs(back[k * N + n]! - w[k * N + n]!)).toBeLessThanOrEqual(scale / 2 + 1e-6)
      }
    }
    // First value of column 0's first block sits in the low nibble of byte 0.
    const { scale, zeroPoint } = blockParameters(q, 0, 0)
    expect(((q.packed[0]! & 0x0f) - zeroPoint) * scale).toBeCloseTo(back[0]!, 6)
  })

  it("GPTQ moves the layer's outputs on calibration data less than round-to-nearest", () => {
    const K = 128
    const N = 32
    const samples = 256
    // Correlated inputs, as real activations are: a few shared factors plus noise.
    const factors = matrix(samples, 8, 3)
    const mixing = matrix(8, K, 4)
    const noise = random(5)
    const x = new Float32Array(samples * K)
    for (let s = 0; s < samples; s++) {
      for (let k = 0; k < K; k++) {
        let value = 0.1 * noise()
        for (let f = 0; f < 8; f++) value += factors[s * 8 + f]! * mixing[f * K + k]!
        x[s * K + k] = value
      }
    }
    const w = matrix(K, N, 6)
    const rtn = outputError(x, samples, K, N, w, dequantizeInt4(quantizeInt4Rtn(w, K, N, 32)))
    const gptq = outputError(
      x,
      samples,
      K,
      N,
      w,
      dequantizeInt4(quantizeInt4Gptq(w, K, N, 32, hessianOf(x, samples, K)))
    )
    expect(gptq).toBeLessThan(0.8 * rtn)
  })
})

describe("AWQ and pruning", () => {
  it("AWQ finds input scales that beat plain round-to-nearest when a few channels carry large activations", async () => {
    const { quantizeInt4Awq } = await import("../../src/compute/quantize/Awq.js")
    const K = 64
    const N = 16
    const samples = 128
    const next = random(7)
    const x = new Float32Array(samples * K)
    // Channels 0..3 are "salient": activations 20x larger, as in the AWQ paper's observation.
    for (let s = 0; s < samples; s++) for (let k = 0; k < K; k++) x[s * K + k] = next() * (k < 4 ? 20 : 1)
    const w = matrix(K, N, 8)
    const result = quantizeInt4Awq(w, K, N, 32, x, samples)
    expect(result.alpha).toBeGreaterThan(0)
    expect(result.error).toBeLessThan(result.rtnError)
    expect(result.inputScales.length).toBe(K)
  })

  it("AWQ's clipping search alone (α fixed at 0) lowers the output error of heavy-tailed weights", async () => {
    const { quantizeInt4Awq } = await import("../../src/compute/quantize/Awq.js")
    const K = 64
    const N = 16
    const samples = 128
    const next = random(11)
    const x = Float32Array.from({ length: samples * K }, () => next())
    // Cubed uniforms: most weights small, a few large, so the block's full range wastes levels on the tails.
    const w = Float32Array.from({ length: K * N }, () => next() ** 3)
    const result = quantizeInt4Awq(w, K, N, 32, x, samples, 0)
    expect(result.alpha).toBe(0)
    // Without clipping the error would equal rtnError exactly (α = 0 is plain round-to-nearest).
    expect(result.error).toBeLessThan(0.97 * result.rtnError)
  })

  it("magnitude pruning hits the sparsity exactly and zeroes the smallest weights", async () => {
    const { pruneMagnitude, sparsityOf } = await import("../../src/compute/quantize/Prune.js")
    const w = matrix(32, 32, 9)
    const smallest = Float32Array.from(w, Math.abs).sort()[306]!
    expect(pruneMagnitude(w, 0.3)).toBe(307)
    expect(sparsityOf(w)).toBeCloseTo(307 / 1024, 10)
    for (const value of w) if (value !== 0) expect(Math.abs(value)).toBeGreaterThanOrEqual(smallest)
  })

  it("block pruning zeroes whole blocks of 4 along K", async () => {
    const { pruneBlocks, sparsityOf } = await import("../../src/compute/quantize/Prune.js")
    const K = 16
    const N = 8
    const w = matrix(K, N, 10)
    expect(pruneBlocks(w, K, N, 4, 0.5)).toBe(16)
    expect(sparsityOf(w)).toBeCloseTo(0.5, 10)
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < 4; b++) {
        const zeros = [0, 1, 2, 3].filter((i) => w[(b * 4 + i) * N + n] === 0).length
        expect([0, 4]).toContain(zeros)
      }
    }
  })
})
