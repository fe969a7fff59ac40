/**
 * The training executor's operators that work along the last axis: MatMul (rows of A against columns
 * of B, on the SIMD dot products), Softmax and LayerNormalization, with their backward passes.
 */
import type { Operator } from "./Operator.js"
import { asFloat, fail, floatAttribute, intAttribute, normalizeAxis, required } from "./Operator.js"
import { simdLayerNorm, simdLayerNormGrad, simdSoftmaxRows } from "./RowKernels.js"
import { simdOuterProducts } from "./SimdDotProducts.js"
import type { FloatTensor } from "./Tensor.js"
import {
  cachedTranspose,
  dotProducts,
  floats,
  matMulPlan,
  transposeMatrix,
  unfilledFloats,
  unfilledFloatTensor
} from "./Tensor.js"

/** Up to this inner size, a weight gradient is summed row by row rather than multiplied in SIMD through transposes. */
const OUTER_PRODUCT_MAX = 16

/**
 * dB[k, n] += Aᵀ G for A [m, k] and G [m, n], one outer product of rows per i: for a LoRA factor (k or
 * n the rank) this reads A and G once, in order, where the matrix kernel would first transpose both.
 * In SIMD (SimdDotProducts.ts) where it runs; this loop, in float64, elsewhere and as its reference.
 */
export const outerProducts = (
  a: Float32Array,
  aOffset: number,
  g: Float32Array,
  gOffset: number,
  db: Float32Array,
  dbOffset: number,
  m: number,
  k: number,
  n: number
) => {
  const sums = new Float64Array(k * n)
  for (let i = 0; i < m; i++) {
    const aRow = aOffset + i * k
    const gRow = gOffset + i * n
    for (let p = 0; p < k; p++) {
      const ap = a[aRow + p]!
      if (ap === 0) continue
      const out = p * n
      for (let j = 0; j < n; j++) sums[out + j]! += ap * g[gRow + j]!
    }
  }
  for (let index = 0; index < k * n; index++) db[dbOffset + index]! += sums[index]!
}

export const rowOperators: Record<string, Operator> = {
  MatMul: {
    forward: (inputs, { node }) => {
      const a = asFloat(node, required(node, inputs, 0))
      const b = asFloat(node, required(node, inputs, 1))
      const plan = matMulPlan(a.dims, b.dims)
      if (typeof plan === "string") return fail(node, plan)
      const { m, k, n } = plan
      const out = unfilledFloatTensor(plan.outDims)
      for (let batch = 0; batch < plan.aBatch.length; batch++) {
        const bT = cachedTranspose(b.data, plan.bBatch[batch]! * k * n, k, n)
        dotProducts(a.data, plan.aBatch[batch]! * m * k, bT, 0, out.data, batch * m * n, m, n, k, true)
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants) => {
      const a = inputs[0] as FloatTensor
      const b = inputs[1] as FloatTensor
      const plan = matMulPlan(a.dims, b.dims) as Exclude<ReturnType<typeof matMulPlan>, string>
      const { m, k, n } = plan
      // Unless A was broadcast over the batch, each of its matrices gets one product: written, not added to.
      const aWhole = a.data.length === plan.aBatch.length * m * k
      const da = wants[0] ? (aWhole ? unfilledFloats(a.data.length) : floats(a.data.length)) : undefined
      const db = wants[1] ? floats(b.data.length) : undefined
      for (let batch = 0; batch < plan.aBatch.length; batch++) {
        const aOffset = plan.aBatch[batch]! * m * k
        const bOffset = plan.bBatch[batch]! * k * n
        // dA = dC · Bᵀ, rows of dC against rows of B; dB = Aᵀ · dC, rows of Aᵀ against rows of dCᵀ.
        if (da !== undefined) dotProducts(grad!, batch * m * n, b.data, bOffset, da, aOffset, m, k, n, aWhole)
        if (db !== undefined && Math.min(k, n) <= OUTER_PRODUCT_MAX) {
          if (!simdOuterProducts(a.data, aOffset, grad!, batch * m * n, db, bOffset, m, k, n)) {
            outerProducts(a.data, aOffset, grad!, batch * m * n, db, bOffset, m, k, n)
          }
        } else if (db !== undefined) {
          const aT = transposeMatrix(a.data, aOffset, m, k)
          const gT = transposeMatrix(grad!, batch * m * n, m, n)
          const dbT = floats(n * k)
          dotProducts(gT, 0, aT, 0, dbT, 0, n, k, m)
          for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) db[bOffset + p * n + j]! += dbT[j * k + p]!
        }
      }
      return [da, db]
    }
  },

  Softmax: {
    forward: (inputs, { node }) => {
      const input = asFloat(node, required(node, inputs, 0))
      const axis = normalizeAxis(node, intAttribute(node, "axis", -1), input.dims.length)
      if (axis !== input.dims.length - 1) fail(node, "only the last axis is supported")
      const width = input.dims[axis]!
      const out = unfilledFloatTensor(input.dims)
      const x = input.data, y = out.data
      if (simdSoftmaxRows(x, 0, x.length / width, width, y)) return [out]
      for (let start = 0; start < x.length; start += width) {
        let max = -Infinity
        for (let j = 0; j < width; j++) max = Math.max(max, x[start + j]!)
        let sum = 0
        for (let j = 0; j < width; j++) {
          const e = Math.exp(x[start + j]! - max)
          y[start + j] = e
          sum += e
        }
        const inverse = 1 / sum
        for (let j = 0; j < width; j++) y[start + j]! *= inverse
      }
      return [out]
    },
    backward: (_inputs, outputs, [grad], wants) => {
      if (!wants[0]) return [undefined]
      const out = outputs[0] as FloatTensor
      const width = out.dims[out.dims.length - 1]!
      const y = out.data, g = grad!
      const dx = unfilledFloats(g.length)
      for (let start = 0; start < g.length; start += width) {
        let dot = 0
        for (let j = 0; j < width; j++) dot += g[start + j]! * y[start + j]!
        for (let j = 0; j < width; j++) dx[start + j] = y[start + j]! * (g[start + j]! - dot)
      }
      return [dx]
    }
  },

  LayerNormalization: {
    forward: (inputs, { node }) => {
      const input = asFloat(node, required(node, inputs, 0))
      const scale = asFloat(node, required(node, inputs, 1))
      const bias = inputs[2] === undefined ? undefined : asFloat(node, inputs[2])
      const axis = normalizeAxis(node, intAttribute(node, "axis", -1), input.dims.length)
      if (axis !== input.dims.length - 1) fail(node, "only normalization over the last axis is supported")
      const epsilon = floatAttribute(node, "epsilon", 1e-5)
      const width = input.dims[axis]!
      const out = unfilledFloatTensor(input.dims)
      const x = input.data, y = out.data, gamma = scale.data, beta = bias?.data
      if (simdLayerNorm(x, gamma, beta, width, epsilon, y)) return [out]
      for (let start = 0; start < x.length; start += width) {
        let mean = 0
        for (let j = 0; j < width; j++) mean += x[start + j]!
        mean /= width
        let variance = 0
        for (let j = 0; j < width; j++) {
          const d = x[start + j]! - mean
          variance += d * d
        }
        const inverse = 1 / Math.sqrt(variance / width + epsilon)
        for (let j = 0; j < width; j++) {
          y[start + j] = (x[start + j]! - mean) * inverse * gamma[j]! + (beta === undefined ? 0 : beta[j]!)
        }
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants, { node }) => {
      if (!wants[0]) return [undefined]
      if (wants[1] || wants[2]) {
        fail(node, "gradients for the scale and bias are not supported (the base model is frozen)")
      }
      const input = inputs[0] as FloatTensor
      const gamma = (inputs[1] as FloatTensor).data
      const epsilon = floatAttribute(node, "epsilon", 1e-5)
      const width = input.dims[input.dims.length - 1]!
      const x = input.data, g = grad!
      const dx = unfilledFloats(x.length)
      if (simdLayerNormGrad(x, gamma, g, width, epsilon, dx)) return [dx]
      const xhat = new Float32Array(width)
      for (let start = 0; start < x.length; start += width) {
        let mean = 0
        for (let j = 0; j < width; j++) mean += x[start + j]!
        mean /= width
        let variance = 0
        for (let j = 0; j < width; j++) variance += (x[start + j]! - mean) ** 2
        const inverse = 1 / Math.sqrt(variance / width + epsilon)
        let meanG = 0
        let meanGX = 0
        for (let j = 0; j < width; j++) {
          xhat[j] = (x[start + j]! - mean) * inverse
          const gs = g[start + j]! * gamma[j]!
          meanG += gs
          meanGX += gs * xhat[j]!
        }
        meanG /= width
        meanGX /= width
        for (let j = 0; j < width; j++) {
          dx[start + j] = inverse * (g[start + j]! * gamma[j]! - meanG - xhat[j]! * meanGX)
        }
      }
      return [dx]
    }
  }
}
