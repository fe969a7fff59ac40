/**
 * Operators of the "edge-net" domain, which only GraphFusion.ts writes: a layer with its LoRA branch
 * and bias as one node, LowRankLinear(x, W, down, B, bias) = x W + down B + bias with down = x' Aᵀ
 * computed by its own MatMul. The sums stay in the matrix kernel's memory (SimdDotProducts.ts's
 * `simdLinear`) instead of going through two more arrays and two Add passes.
 */
import type { Operator } from "./Operator.js"
import { asFloat, fail, required } from "./Operator.js"
import { outerProducts } from "./RowOperators.js"
import { simdLinear, simdOuterProducts } from "./SimdDotProducts.js"
import type { FloatTensor } from "./Tensor.js"
import {
  cachedTranspose,
  describeDims,
  dotProducts,
  scalarDotProducts,
  transposeMatrix,
  unfilledFloats,
  unfilledFloatTensor
} from "./Tensor.js"

/** The shapes of a LowRankLinear node's operands: rows of x, its width k, the rank r and the output width n. */
const shapesOf = (
  node: Parameters<typeof fail>[0],
  x: FloatTensor,
  w: FloatTensor,
  down: FloatTensor,
  b: FloatTensor,
  bias: FloatTensor | undefined
) => {
  const [k, n] = w.dims as [number, number]
  const [r] = b.dims as [number, number]
  const rows = x.data.length / k
  const valid = w.dims.length === 2 && b.dims.length === 2 && b.dims[1] === n && x.dims.at(-1) === k &&
    down.dims.at(-1) === r && down.data.length === rows * r && (bias === undefined || bias.data.length === n)
  if (!valid) {
    fail(
      node,
      `shapes ${describeDims(x.dims)} ${describeDims(w.dims)} ${describeDims(down.dims)} ${
        describeDims(b.dims)
      } do not chain`
    )
  }
  return { rows, k, r, n }
}

export const fusedOperators: Record<string, Operator> = {
  LowRankLinear: {
    forward: (inputs, { node }) => {
      const x = asFloat(node, required(node, inputs, 0))
      const w = asFloat(node, required(node, inputs, 1))
      const down = asFloat(node, required(node, inputs, 2))
      const b = asFloat(node, required(node, inputs, 3))
      const bias = inputs[4] === undefined ? undefined : asFloat(node, inputs[4])
      const { rows, k, r, n } = shapesOf(node, x, w, down, b, bias)
      const out = unfilledFloatTensor([...x.dims.slice(0, -1), n])
      const wT = cachedTranspose(w.data, 0, k, n)
      const bT = transposeMatrix(b.data, 0, r, n)
      const terms = [{ x: x.data, y: wT, len: k }, { x: down.data, y: bT, len: r }]
      if (!simdLinear(terms, bias?.data, out.data, rows, n)) {
        const z = out.data
        for (let i = 0; i < rows; i++) for (let j = 0; j < n; j++) z[i * n + j] = bias === undefined ? 0 : bias.data[j]!
        for (const term of terms) scalarDotProducts(term.x, 0, term.y, 0, z, 0, rows, n, term.len)
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants, { node }) => {
      if (wants[1] || wants[4]) fail(node, "the base weight and bias are frozen: no gradients")
      const x = inputs[0] as FloatTensor
      const w = inputs[1] as FloatTensor
      const down = inputs[2] as FloatTensor
      const b = inputs[3] as FloatTensor
      const { rows, k, r, n } = shapesOf(node, x, w, down, b, inputs[4] as FloatTensor | undefined)
      const g = grad!
      // dx = g Wᵀ and d(down) = g Bᵀ: rows of g against rows of W [k, n] and B [r, n]; dB = downᵀ g.
      let dx: Float32Array | undefined
      let dDown: Float32Array | undefined
      let dB: Float32Array | undefined
      if (wants[0]) {
        dx = unfilledFloats(x.data.length)
        dotProducts(g, 0, w.data, 0, dx, 0, rows, k, n, true)
      }
      if (wants[2]) {
        dDown = unfilledFloats(down.data.length)
        dotProducts(g, 0, b.data, 0, dDown, 0, rows, r, n, true)
      }
      if (wants[3]) {
        dB = new Float32Array(r * n)
        if (!simdOuterProducts(down.data, 0, g, 0, dB, 0, rows, r, n)) {
          outerProducts(down.data, 0, g, 0, dB, 0, rows, r, n)
        }
      }
      return [dx, undefined, dDown, dB, undefined]
    }
  }
}
