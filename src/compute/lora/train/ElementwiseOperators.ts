/**
 * The elementwise operators of the training executor, broadcasting as ONNX does: arithmetic, Erf,
 * comparisons and logic, Where, Cast and Dropout, each with its vector-Jacobian product where it has one.
 */
import type { OnnxNode } from "../../onnx/OnnxModel.js"
import type { Backward, Forward, Operator } from "./Operator.js"
import { asFloat, fail, floatAttribute, intAttribute, required, stringAttribute } from "./Operator.js"
import { simdErf, simdErfGrad, simdGelu, simdGeluGrad } from "./RowKernels.js"
import type { BoolTensor, FloatTensor, Tensor } from "./Tensor.js"
import {
  boolTensor,
  broadcastDims,
  broadcastIndex,
  describeDims,
  floats,
  floatTensor,
  intTensor,
  like,
  reduceToShape,
  unfilledFloats,
  unfilledFloatTensor
} from "./Tensor.js"

const elementwise = (
  node: OnnxNode,
  a: Tensor,
  b: Tensor,
  apply: (x: number, y: number) => number,
  resultKind?: "bool"
): Tensor => {
  const dims = broadcastDims(a.dims, b.dims) ??
    fail(node, `shapes ${describeDims(a.dims)} and ${describeDims(b.dims)} do not broadcast`)
  const out: Tensor = resultKind === "bool" ? boolTensor(dims) : like(a, dims)
  const aMap = broadcastIndex(dims, a.dims)
  const bMap = broadcastIndex(dims, b.dims)
  const x = a.data, y = b.data, z = out.data
  const size = z.length
  if (aMap === null && bMap === null) { for (let i = 0; i < size; i++) z[i] = apply(x[i]!, y[i]!) }
  else if (aMap === null) { for (let i = 0; i < size; i++) z[i] = apply(x[i]!, y[bMap![i]!]!) }
  else if (bMap === null) { for (let i = 0; i < size; i++) z[i] = apply(x[aMap[i]!]!, y[i]!) }
  else for (let i = 0; i < size; i++) z[i] = apply(x[aMap[i]!]!, y[bMap[i]!]!)
  return out
}

type Arithmetic = "+" | "-" | "*" | "/"

/**
 * When `dims` (leading 1s aside) are the last axes of `out`, the tensor repeats every `period`
 * elements of `out`: the length of those axes. Otherwise undefined.
 */
const trailingPeriod = (out: ReadonlyArray<number>, dims: ReadonlyArray<number>): number | undefined => {
  let first = 0
  while (first < dims.length && dims[first] === 1) first++
  const kept = dims.slice(first)
  if (kept.length > out.length) return undefined
  const offset = out.length - kept.length
  if (kept.some((dim, axis) => dim !== out[offset + axis])) return undefined
  return kept.reduce((product, dim) => product * dim, 1)
}

/**
 * z[zAt + j] = x[xAt + j·xStep] (op) y[yAt + j·yStep] for j < n: steps of 1 walk an operand, 0 repeat
 * one value. One loop per operation, since a callback per element is a call V8 cannot inline, and these
 * are most of a step's element work.
 */
const combine = (
  operation: Arithmetic,
  x: Float32Array,
  xAt: number,
  xStep: number,
  y: Float32Array,
  yAt: number,
  yStep: number,
  z: Float32Array,
  zAt: number,
  n: number
) => {
  switch (operation) {
    case "+":
      for (let j = 0; j < n; j++) z[zAt + j] = x[xAt + j * xStep]! + y[yAt + j * yStep]!
      break
    case "-":
      for (let j = 0; j < n; j++) z[zAt + j] = x[xAt + j * xStep]! - y[yAt + j * yStep]!
      break
    case "*":
      for (let j = 0; j < n; j++) z[zAt + j] = x[xAt + j * xStep]! * y[yAt + j * yStep]!
      break
    case "/":
      for (let j = 0; j < n; j++) z[zAt + j] = x[xAt + j * xStep]! / y[yAt + j * yStep]!
  }
}

/**
 * The four float operations, with the broadcasts a transformer makes as plain loops: equal shapes, a
 * single value (a scale), and a tensor repeating along the leading axes of the other (a bias); any
 * other broadcast goes through index maps.
 */
const arithmetic = (node: OnnxNode, operation: Arithmetic, a: FloatTensor, b: FloatTensor): FloatTensor => {
  const dims = broadcastDims(a.dims, b.dims) ??
    fail(node, `shapes ${describeDims(a.dims)} and ${describeDims(b.dims)} do not broadcast`)
  const out = unfilledFloatTensor(dims)
  const x = a.data, y = b.data, z = out.data
  const size = z.length
  if (size === 0) return out
  const aFull = x.length === size, bFull = y.length === size
  if (aFull && bFull) {
    combine(operation, x, 0, 1, y, 0, 1, z, 0, size)
    return out
  }
  if (aFull && y.length === 1) {
    combine(operation, x, 0, 1, y, 0, 0, z, 0, size)
    return out
  }
  if (bFull && x.length === 1) {
    combine(operation, x, 0, 0, y, 0, 1, z, 0, size)
    return out
  }
  const period = aFull ? trailingPeriod(dims, b.dims) : bFull ? trailingPeriod(dims, a.dims) : undefined
  if (period !== undefined && period > 0) {
    for (let row = 0; row < size; row += period) {
      if (aFull) combine(operation, x, row, 1, y, 0, 1, z, row, period)
      else combine(operation, x, 0, 1, y, row, 1, z, row, period)
    }
    return out
  }
  const aMap = broadcastIndex(dims, a.dims)
  const bMap = broadcastIndex(dims, b.dims)
  switch (operation) {
    case "+":
      for (let i = 0; i < size; i++) z[i] = x[aMap === null ? i : aMap[i]!]! + y[bMap === null ? i : bMap[i]!]!
      break
    case "-":
      for (let i = 0; i < size; i++) z[i] = x[aMap === null ? i : aMap[i]!]! - y[bMap === null ? i : bMap[i]!]!
      break
    case "*":
      for (let i = 0; i < size; i++) z[i] = x[aMap === null ? i : aMap[i]!]! * y[bMap === null ? i : bMap[i]!]!
      break
    case "/":
      for (let i = 0; i < size; i++) z[i] = x[aMap === null ? i : aMap[i]!]! / y[bMap === null ? i : bMap[i]!]!
  }
  return out
}

const binary = (
  operation: Arithmetic,
  apply: (x: number, y: number) => number,
  integer?: (x: number, y: number) => number
): Forward =>
(inputs, { node }) => {
  const a = required(node, inputs, 0)
  const b = required(node, inputs, 1)
  if (a.kind !== b.kind) fail(node, `mixes ${a.kind} and ${b.kind} inputs`)
  if (a.kind === "float") return [arithmetic(node, operation, a, b as FloatTensor)]
  return [elementwise(node, a, b, a.kind === "int" && integer !== undefined ? integer : apply)]
}

const compare = (apply: (x: number, y: number) => boolean): Forward => (inputs, { node }) => [
  elementwise(node, required(node, inputs, 0), required(node, inputs, 1), (x, y) => (apply(x, y) ? 1 : 0), "bool")
]

/** Σ of a gradient, for an input that was a single value broadcast over the output. */
const total = (values: Float32Array) => {
  let sum = 0
  for (let i = 0; i < values.length; i++) sum += values[i]!
  return Float32Array.of(sum)
}

/** full[i] = g[i] · other[i broadcast], summed back onto `self`'s shape. */
const productSide = (g: Float32Array, dims: ReadonlyArray<number>, other: FloatTensor, self: FloatTensor) => {
  const y = other.data
  const full = unfilledFloats(g.length)
  if (y.length === g.length) combine("*", g, 0, 1, y, 0, 1, full, 0, g.length)
  else if (y.length === 1) combine("*", g, 0, 1, y, 0, 0, full, 0, g.length)
  else {
    const map = broadcastIndex(dims, other.dims)!
    for (let i = 0; i < g.length; i++) full[i] = g[i]! * y[map[i]!]!
  }
  return self.data.length === 1 && g.length > 1 ? total(full) : reduceToShape(full, dims, self.dims)
}

/** The product rule's two sides for Mul, with the broadcast summed back. */
/** The backward of an element-wise f of one input: dx = g · f'(x), in SIMD when `simd` runs, else per element. */
const pointwiseBackward = (
  simd: (x: Float32Array, g: Float32Array, dx: Float32Array) => boolean,
  derivative: (x: number) => number
): Backward =>
(inputs, _outputs, [grad], wants) => {
  if (!wants[0]) return [undefined]
  const x = (inputs[0] as FloatTensor).data
  const g = grad!
  const dx = unfilledFloats(g.length)
  if (!simd(x, g, dx)) { for (let i = 0; i < g.length; i++) dx[i] = g[i]! * derivative(x[i]!) }
  return [dx]
}

const mulBackward: Backward = (inputs, outputs, [grad], wants) => {
  const a = inputs[0] as FloatTensor
  const b = inputs[1] as FloatTensor
  const dims = outputs[0]!.dims
  return [
    wants[0] ? productSide(grad!, dims, b, a) : undefined,
    wants[1] ? productSide(grad!, dims, a, b) : undefined
  ]
}

const divBackward: Backward = (inputs, outputs, [grad], wants) => {
  const a = inputs[0] as FloatTensor
  const b = inputs[1] as FloatTensor
  const dims = outputs[0]!.dims
  const g = grad!
  let da: Float32Array | undefined
  let db: Float32Array | undefined
  if (wants[0]) {
    const full = unfilledFloats(g.length)
    if (b.data.length === g.length) combine("/", g, 0, 1, b.data, 0, 1, full, 0, g.length)
    else if (b.data.length === 1) combine("*", g, 0, 1, Float32Array.of(1 / b.data[0]!), 0, 0, full, 0, g.length)
    else {
      const bMap = broadcastIndex(dims, b.dims)!
      for (let i = 0; i < g.length; i++) full[i] = g[i]! / b.data[bMap[i]!]!
    }
    da = a.data.length === 1 && g.length > 1 ? total(full) : reduceToShape(full, dims, a.dims)
  }
  if (wants[1]) {
    const quotient = (outputs[0] as FloatTensor).data
    const bMap = broadcastIndex(dims, b.dims)
    const full = unfilledFloats(g.length)
    for (let i = 0; i < g.length; i++) full[i] = (-g[i]! * quotient[i]!) / b.data[bMap === null ? i : bMap[i]!]!
    db = b.data.length === 1 && g.length > 1 ? total(full) : reduceToShape(full, dims, b.dims)
  }
  return [da, db]
}

export const elementwiseOperators: Record<string, Operator> = {
  Add: {
    forward: binary("+", (x, y) => x + y),
    backward: (inputs, outputs, [grad], wants) => [
      wants[0] ? reduceToShape(grad!, outputs[0]!.dims, inputs[0]!.dims) : undefined,
      wants[1] ? reduceToShape(grad!, outputs[0]!.dims, inputs[1]!.dims) : undefined
    ]
  },
  Sub: {
    forward: binary("-", (x, y) => x - y),
    backward: (inputs, outputs, [grad], wants) => [
      wants[0] ? reduceToShape(grad!, outputs[0]!.dims, inputs[0]!.dims) : undefined,
      wants[1] ? reduceToShape(grad!.map((value) => -value), outputs[0]!.dims, inputs[1]!.dims) : undefined
    ]
  },
  Mul: { forward: binary("*", (x, y) => x * y), backward: mulBackward },
  Div: { forward: binary("/", (x, y) => x / y, (x, y) => Math.trunc(x / y)), backward: divBackward },

  Erf: {
    forward: (inputs, { node }) => {
      const input = asFloat(node, required(node, inputs, 0))
      const out = unfilledFloatTensor(input.dims)
      if (!simdErf(input.data, out.data)) {
        for (let i = 0; i < out.data.length; i++) {
          out.data[i] = erf(input.data[i]!)
        }
      }
      return [out]
    },
    backward: pointwiseBackward(simdErfGrad, (x) => TWO_OVER_SQRT_PI * Math.exp(-x * x))
  },

  // ONNX's Gelu (opset 20, approximate "none"), which GraphFusion.ts also makes of GPT-2's erf chain.
  Gelu: {
    forward: (inputs, { node }) => {
      const input = asFloat(node, required(node, inputs, 0))
      if (stringAttribute(node, "approximate") === "tanh") fail(node, "the tanh approximation is not supported")
      const out = unfilledFloatTensor(input.dims)
      const x = input.data, y = out.data
      if (!simdGelu(x, y)) { for (let i = 0; i < y.length; i++) y[i] = 0.5 * x[i]! * (1 + erf(x[i]! * SQRT_HALF)) }
      return [out]
    },
    backward: pointwiseBackward(
      simdGeluGrad,
      (x) => 0.5 * (1 + erf(x * SQRT_HALF)) + x * INVERSE_SQRT_TWO_PI * Math.exp(-0.5 * x * x)
    )
  },

  Where: {
    forward: (inputs, { node }) => {
      const condition = required<BoolTensor>(node, inputs, 0)
      const x = required(node, inputs, 1)
      const y = required(node, inputs, 2)
      const inner = broadcastDims(x.dims, y.dims)
      const dims = inner === undefined ? undefined : broadcastDims(condition.dims, inner)
      if (dims === undefined) {
        return fail(
          node,
          `shapes ${describeDims(condition.dims)}, ${describeDims(x.dims)}, ${describeDims(y.dims)} do not broadcast`
        )
      }
      const out = like(x, dims)
      const cMap = broadcastIndex(dims, condition.dims),
        xMap = broadcastIndex(dims, x.dims),
        yMap = broadcastIndex(dims, y.dims)
      const c = condition.data, z = out.data, xs = x.data, ys = y.data
      for (let i = 0; i < z.length; i++) {
        z[i] = c[cMap === null ? i : cMap[i]!] ? xs[xMap === null ? i : xMap[i]!]! : ys[yMap === null ? i : yMap[i]!]!
      }
      return [out]
    },
    backward: (inputs, outputs, [grad], wants) => {
      const condition = inputs[0] as BoolTensor
      const dims = outputs[0]!.dims
      const cMap = broadcastIndex(dims, condition.dims)
      const c = condition.data, g = grad!
      const side = (index: 1 | 2) => {
        const full = floats(g.length)
        const taken = index === 1 ? 1 : 0
        for (let i = 0; i < full.length; i++) if ((c[cMap === null ? i : cMap[i]!] ? 1 : 0) === taken) full[i] = g[i]!
        return reduceToShape(full, dims, inputs[index]!.dims)
      }
      return [undefined, wants[1] ? side(1) : undefined, wants[2] ? side(2) : undefined]
    }
  },

  Cast: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      const to = intAttribute(node, "to")
      const out: Tensor = to === 1
        ? floatTensor(input.dims)
        : to === 9
        ? boolTensor(input.dims)
        : [6, 7, 2, 3, 4, 5, 12, 13].includes(to)
        ? intTensor(input.dims)
        : fail(node, `casting to ONNX type ${to} is not supported`)
      if (out.kind === "bool") { for (let i = 0; i < out.data.length; i++) out.data[i] = input.data[i] ? 1 : 0 }
      else if (out.kind === "int" && input.kind === "float") {
        for (let i = 0; i < out.data.length; i++) out.data[i] = Math.trunc(input.data[i]!)
      } else out.data.set(input.data)
      return [out]
    },
    backward: (
      inputs,
      outputs,
      [grad],
      wants
    ) => [wants[0] && inputs[0]!.kind === "float" && outputs[0]!.kind === "float" ? grad : undefined]
  },

  Dropout: {
    forward: (inputs, { node, training, random }) => {
      const input = asFloat(node, required(node, inputs, 0))
      const ratio = inputs[1] === undefined ? floatAttribute(node, "ratio", 0.5) : inputs[1].data[0]!
      const on = training && (inputs[2] === undefined ? true : inputs[2].data[0] !== 0)
      const mask = boolTensor(input.dims)
      if (!on || ratio === 0) {
        mask.data.fill(1)
        return [input, mask]
      }
      const out = floatTensor(input.dims)
      const keep = 1 / (1 - ratio)
      for (let i = 0; i < out.data.length; i++) {
        if (random() >= ratio) {
          mask.data[i] = 1
          out.data[i] = input.data[i]! * keep
        }
      }
      return [out, mask]
    },
    backward: (inputs, outputs, [grad], wants) => {
      if (!wants[0]) return [undefined]
      const input = inputs[0] as FloatTensor
      const out = outputs[0] as FloatTensor
      if (out === input) return [grad]
      const mask = (outputs[1] as BoolTensor).data
      const ratio = inputs[1] === undefined ? 0.5 : inputs[1].data[0]!
      const keep = 1 / (1 - ratio)
      const dx = floats(grad!.length)
      for (let i = 0; i < dx.length; i++) if (mask[i]) dx[i] = grad![i]! * keep
      return [dx]
    }
  },

  Greater: { forward: compare((x, y) => x > y) },
  Less: { forward: compare((x, y) => x < y) },
  LessOrEqual: { forward: compare((x, y) => x <= y) },
  GreaterOrEqual: { forward: compare((x, y) => x >= y) },
  Equal: { forward: compare((x, y) => x === y) },
  And: { forward: compare((x, y) => x !== 0 && y !== 0) },
  Or: { forward: compare((x, y) => x !== 0 || y !== 0) },
  Not: {
    forward: (inputs, { node }) => {
      const input = required<BoolTensor>(node, inputs, 0)
      const out = boolTensor(input.dims)
      for (let i = 0; i < out.data.length; i++) out.data[i] = input.data[i] ? 0 : 1
      return [out]
    }
  }
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI)
const SQRT_HALF = Math.SQRT1_2
const INVERSE_SQRT_TWO_PI = 1 / Math.sqrt(2 * Math.PI)

/** erf from the Chebyshev fit of erfc in Numerical Recipes (fractional error below 1.2e-7 everywhere). */
const erf = (x: number): number => {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const r = t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    )
  return x >= 0 ? 1 - r : r - 1
}
