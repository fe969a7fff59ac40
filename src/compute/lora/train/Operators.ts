/**
 * The ONNX operators of the training executor: each one's forward, and for the differentiable ones
 * the vector-Jacobian product that carries an output gradient back to its float inputs. The set is
 * what the reference GPT-2 and BERT exports use (plus Dropout, which training inserts before each
 * adapter branch, and a few elementwise neighbours); anything else is refused by name at compile time.
 */
import type { OnnxNode } from "../../onnx/OnnxModel.js"
import type { BoolTensor, FloatTensor, Tensor } from "./Tensor.js"
import {
  boolTensor,
  broadcastDims,
  broadcastIndex,
  describeDims,
  cachedTranspose,
  dotProducts,
  floatTensor,
  intTensor,
  like,
  matMulPlan,
  reduceToShape,
  sizeOf,
  stridesOf,
  transposeMatrix
} from "./Tensor.js"

export class ExecutorError extends Error {
  override readonly name = "ExecutorError"
}

const fail = (node: OnnxNode, reason: string): never => {
  throw new ExecutorError(`${node.opType} ${node.name ?? node.outputs[0] ?? ""}: ${reason}`)
}

/** What an operator sees of the run: its node's attributes, and the run's dropout draws. */
export interface OpContext {
  readonly node: OnnxNode
  readonly training: boolean
  readonly random: () => number
}

export type Forward = (inputs: ReadonlyArray<Tensor | undefined>, context: OpContext) => Array<Tensor>

/**
 * Gradients for the inputs whose `wants` flag is set, from the gradients of the outputs (undefined for
 * an output nothing downstream differentiates). `outputs` are the forward results.
 */
export type Backward = (
  inputs: ReadonlyArray<Tensor | undefined>,
  outputs: ReadonlyArray<Tensor>,
  outputGrads: ReadonlyArray<Float32Array | undefined>,
  wants: ReadonlyArray<boolean>,
  context: OpContext
) => Array<Float32Array | undefined>

export interface Operator {
  readonly forward: Forward
  readonly backward?: Backward
}

// ---- attributes and inputs ----

const intAttribute = (node: OnnxNode, name: string, fallback?: number): number => {
  const attribute = node.attributes.find((candidate) => candidate.name === name)
  if (attribute?.i !== undefined) return Number(attribute.i)
  if (fallback === undefined) return fail(node, `needs the ${name} attribute`)
  return fallback
}

const floatAttribute = (node: OnnxNode, name: string, fallback: number): number =>
  node.attributes.find((candidate) => candidate.name === name)?.f ?? fallback

const intsAttribute = (node: OnnxNode, name: string): Array<number> | undefined =>
  node.attributes.find((candidate) => candidate.name === name)?.ints?.map(Number)

const required = <T extends Tensor>(node: OnnxNode, inputs: ReadonlyArray<Tensor | undefined>, index: number): T => {
  const tensor = inputs[index]
  if (tensor === undefined) return fail(node, `input ${index} is missing`)
  return tensor as T
}

const asFloat = (node: OnnxNode, tensor: Tensor): FloatTensor => (tensor.kind === "float" ? tensor : fail(node, `expects float input, got ${tensor.kind}`))

const intValues = (tensor: Tensor): Array<number> => Array.from(tensor.data as ArrayLike<number>)

const normalizeAxis = (node: OnnxNode, axis: number, rank: number): number => {
  const normalized = axis < 0 ? axis + rank : axis
  if (normalized < 0 || normalized >= rank) fail(node, `axis ${axis} is out of range for rank ${rank}`)
  return normalized
}

// ---- elementwise with broadcasting ----

const elementwise = (
  node: OnnxNode,
  a: Tensor,
  b: Tensor,
  apply: (x: number, y: number) => number,
  resultKind?: "bool"
): Tensor => {
  const dims = broadcastDims(a.dims, b.dims) ?? fail(node, `shapes ${describeDims(a.dims)} and ${describeDims(b.dims)} do not broadcast`)
  const out: Tensor = resultKind === "bool" ? boolTensor(dims) : like(a, dims)
  const aMap = broadcastIndex(dims, a.dims)
  const bMap = broadcastIndex(dims, b.dims)
  const x = a.data, y = b.data, z = out.data
  const size = z.length
  if (aMap === null && bMap === null) for (let i = 0; i < size; i++) z[i] = apply(x[i]!, y[i]!)
  else if (aMap === null) for (let i = 0; i < size; i++) z[i] = apply(x[i]!, y[bMap![i]!]!)
  else if (bMap === null) for (let i = 0; i < size; i++) z[i] = apply(x[aMap[i]!]!, y[i]!)
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
 * The four float operations with a loop each: through the shared `elementwise`, one callback per
 * element for every operator is a call V8 cannot inline, and these are most of a step's element work.
 */
const arithmetic = (node: OnnxNode, operation: Arithmetic, a: FloatTensor, b: FloatTensor): FloatTensor => {
  const dims = broadcastDims(a.dims, b.dims) ?? fail(node, `shapes ${describeDims(a.dims)} and ${describeDims(b.dims)} do not broadcast`)
  const out = floatTensor(dims)
  const aMap = broadcastIndex(dims, a.dims)
  const bMap = broadcastIndex(dims, b.dims)
  const x = a.data, y = b.data, z = out.data
  const size = z.length
  // The common broadcast, B repeating along the leading axes of A (a bias, a scale), as plain rows.
  const period = aMap === null && bMap !== null ? trailingPeriod(dims, b.dims) : undefined
  if (period !== undefined && period >= 16) {
    for (let row = 0; row < size; row += period) {
      switch (operation) {
        case "+":
          for (let j = 0; j < period; j++) z[row + j] = x[row + j]! + y[j]!
          break
        case "-":
          for (let j = 0; j < period; j++) z[row + j] = x[row + j]! - y[j]!
          break
        case "*":
          for (let j = 0; j < period; j++) z[row + j] = x[row + j]! * y[j]!
          break
        case "/":
          for (let j = 0; j < period; j++) z[row + j] = x[row + j]! / y[j]!
      }
    }
    return out
  }
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

const binary = (operation: Arithmetic, apply: (x: number, y: number) => number, integer?: (x: number, y: number) => number): Forward => (inputs, { node }) => {
  const a = required(node, inputs, 0)
  const b = required(node, inputs, 1)
  if (a.kind !== b.kind) fail(node, `mixes ${a.kind} and ${b.kind} inputs`)
  if (a.kind === "float") return [arithmetic(node, operation, a, b as FloatTensor)]
  return [elementwise(node, a, b, a.kind === "int" && integer !== undefined ? integer : apply)]
}

const compare = (apply: (x: number, y: number) => boolean): Forward => (inputs, { node }) => [
  elementwise(node, required(node, inputs, 0), required(node, inputs, 1), (x, y) => (apply(x, y) ? 1 : 0), "bool")
]

/** The product rule's two sides for Mul, with the broadcast summed back. */
const mulBackward: Backward = (inputs, outputs, [grad], wants) => {
  const a = inputs[0] as FloatTensor
  const b = inputs[1] as FloatTensor
  const dims = outputs[0]!.dims
  const g = grad!
  const side = (other: FloatTensor, self: FloatTensor) => {
    const map = broadcastIndex(dims, other.dims)
    const full = new Float32Array(g.length)
    const y = other.data
    if (map === null) for (let i = 0; i < g.length; i++) full[i] = g[i]! * y[i]!
    else for (let i = 0; i < g.length; i++) full[i] = g[i]! * y[map[i]!]!
    return reduceToShape(full, dims, self.dims)
  }
  return [wants[0] ? side(b, a) : undefined, wants[1] ? side(a, b) : undefined]
}

const divBackward: Backward = (inputs, outputs, [grad], wants) => {
  const a = inputs[0] as FloatTensor
  const b = inputs[1] as FloatTensor
  const dims = outputs[0]!.dims
  const g = grad!
  const bMap = broadcastIndex(dims, b.dims)
  const denominator = (i: number) => b.data[bMap === null ? i : bMap[i]!]!
  let da: Float32Array | undefined
  let db: Float32Array | undefined
  if (wants[0]) {
    const full = new Float32Array(g.length)
    for (let i = 0; i < g.length; i++) full[i] = g[i]! / denominator(i)
    da = reduceToShape(full, dims, a.dims)
  }
  if (wants[1]) {
    const quotient = (outputs[0] as FloatTensor).data
    const full = new Float32Array(g.length)
    for (let i = 0; i < g.length; i++) full[i] = (-g[i]! * quotient[i]!) / denominator(i)
    db = reduceToShape(full, dims, b.dims)
  }
  return [da, db]
}

// ---- shapes ----

const reshaped = (tensor: Tensor, dims: ReadonlyArray<number>): Tensor => ({ ...tensor, dims }) as Tensor

const shapeBackward: Backward = (_inputs, _outputs, [grad], wants) => [wants[0] ? grad : undefined]

const reshapeTarget = (node: OnnxNode, input: Tensor, shape: ReadonlyArray<number>): Array<number> => {
  const allowZero = intAttribute(node, "allowzero", 0) === 1
  const dims = shape.map((dim, axis) => (dim === 0 && !allowZero ? (input.dims[axis] ?? fail(node, `shape copies axis ${axis}, which the input lacks`)) : dim))
  const inferred = dims.indexOf(-1)
  const known = dims.reduce((product, dim) => (dim === -1 ? product : product * dim), 1)
  const total = sizeOf(input.dims)
  if (inferred >= 0) {
    if (known === 0 || total % known !== 0) fail(node, `cannot reshape ${describeDims(input.dims)} to ${describeDims(shape)}`)
    dims[inferred] = total / known
  }
  if (sizeOf(dims) !== total) fail(node, `cannot reshape ${describeDims(input.dims)} to ${describeDims(shape)}`)
  return dims
}

const transposeOf = (tensor: Tensor, perm: ReadonlyArray<number>): Tensor => {
  const dims = perm.map((axis) => tensor.dims[axis]!)
  const out = like(tensor, dims)
  const inStrides = stridesOf(tensor.dims)
  const rank = dims.length
  const strides = perm.map((axis) => inStrides[axis]!)
  const counter = new Array<number>(rank).fill(0)
  const source = tensor.data, target = out.data
  let offset = 0
  // The innermost output axis runs with a fixed source stride: copy it as one strided run.
  const innerDim = dims[rank - 1] ?? 1
  const innerStride = strides[rank - 1] ?? 1
  const rows = target.length / Math.max(innerDim, 1)
  let index = 0
  for (let row = 0; row < rows; row++) {
    for (let j = 0; j < innerDim; j++) target[index++] = source[offset + j * innerStride]!
    for (let axis = rank - 2; axis >= 0; axis--) {
      counter[axis]!++
      offset += strides[axis]!
      if (counter[axis]! < dims[axis]!) break
      offset -= strides[axis]! * dims[axis]!
      counter[axis] = 0
    }
  }
  return out
}

const permutationOf = (node: OnnxNode, rank: number): Array<number> =>
  intsAttribute(node, "perm") ?? Array.from({ length: rank }, (_, axis) => rank - 1 - axis)

const inversePermutation = (perm: ReadonlyArray<number>): Array<number> => {
  const inverse = new Array<number>(perm.length)
  perm.forEach((axis, index) => (inverse[axis] = index))
  return inverse
}

/** Splits along `axis` into contiguous blocks: (outer, axis size, inner) strides. */
const axisLayout = (dims: ReadonlyArray<number>, axis: number) => ({
  outer: sizeOf(dims.slice(0, axis)),
  inner: sizeOf(dims.slice(axis + 1))
})

const concatOf = (tensors: ReadonlyArray<Tensor>, axis: number, template: Tensor): Tensor => {
  const dims = [...template.dims]
  dims[axis] = tensors.reduce((total, tensor) => total + tensor.dims[axis]!, 0)
  const out = like(template, dims)
  const { outer, inner } = axisLayout(dims, axis)
  const rowLength = dims[axis]! * inner
  let start = 0
  for (const tensor of tensors) {
    const chunk = tensor.dims[axis]! * inner
    for (let o = 0; o < outer; o++) {
      const source = tensor.data.subarray(o * chunk, (o + 1) * chunk)
      ;(out.data as Float32Array).set(source as Float32Array, o * rowLength + start)
    }
    start += chunk
  }
  return out
}

/** The slices of `grad` (laid out as `dims`) along `axis`, of the given sizes. */
const splitGrad = (grad: Float32Array, dims: ReadonlyArray<number>, axis: number, sizes: ReadonlyArray<number>): Array<Float32Array> => {
  const { outer, inner } = axisLayout(dims, axis)
  const rowLength = dims[axis]! * inner
  let start = 0
  return sizes.map((size) => {
    const chunk = size * inner
    const part = new Float32Array(outer * chunk)
    for (let o = 0; o < outer; o++) part.set(grad.subarray(o * rowLength + start, o * rowLength + start + chunk), o * chunk)
    start += chunk
    return part
  })
}

const splitSizes = (node: OnnxNode, inputs: ReadonlyArray<Tensor | undefined>, input: Tensor, axis: number): Array<number> => {
  const given = inputs[1]
  if (given !== undefined) return intValues(given)
  const attribute = intsAttribute(node, "split")
  if (attribute !== undefined) return attribute
  const parts = node.outputs.length
  const length = input.dims[axis]!
  const size = Math.ceil(length / parts)
  return Array.from({ length: parts }, (_, index) => Math.max(0, Math.min(size, length - index * size)))
}

// ---- the operators ----

const operators: Record<string, Operator> = {
  Identity: { forward: (inputs, { node }) => [required(node, inputs, 0)], backward: shapeBackward },

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
      const out = floatTensor(input.dims)
      for (let i = 0; i < out.data.length; i++) out.data[i] = erf(input.data[i]!)
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants) => {
      if (!wants[0]) return [undefined]
      const x = (inputs[0] as FloatTensor).data
      const g = grad!
      const dx = new Float32Array(g.length)
      for (let i = 0; i < g.length; i++) dx[i] = g[i]! * TWO_OVER_SQRT_PI * Math.exp(-x[i]! * x[i]!)
      return [dx]
    }
  },

  Softmax: {
    forward: (inputs, { node }) => {
      const input = asFloat(node, required(node, inputs, 0))
      const axis = normalizeAxis(node, intAttribute(node, "axis", -1), input.dims.length)
      if (axis !== input.dims.length - 1) fail(node, "only the last axis is supported")
      const width = input.dims[axis]!
      const out = floatTensor(input.dims)
      const x = input.data, y = out.data
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
      const dx = new Float32Array(g.length)
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
      const out = floatTensor(input.dims)
      const x = input.data, y = out.data, gamma = scale.data, beta = bias?.data
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
        for (let j = 0; j < width; j++) y[start + j] = (x[start + j]! - mean) * inverse * gamma[j]! + (beta === undefined ? 0 : beta[j]!)
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants, { node }) => {
      if (!wants[0]) return [undefined]
      if (wants[1] || wants[2]) fail(node, "gradients for the scale and bias are not supported (the base model is frozen)")
      const input = inputs[0] as FloatTensor
      const gamma = (inputs[1] as FloatTensor).data
      const epsilon = floatAttribute(node, "epsilon", 1e-5)
      const width = input.dims[input.dims.length - 1]!
      const x = input.data, g = grad!
      const dx = new Float32Array(x.length)
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
        for (let j = 0; j < width; j++) dx[start + j] = inverse * (g[start + j]! * gamma[j]! - meanG - xhat[j]! * meanGX)
      }
      return [dx]
    }
  },

  MatMul: {
    forward: (inputs, { node }) => {
      const a = asFloat(node, required(node, inputs, 0))
      const b = asFloat(node, required(node, inputs, 1))
      const plan = matMulPlan(a.dims, b.dims)
      if (typeof plan === "string") return fail(node, plan)
      const { m, k, n } = plan
      const out = floatTensor(plan.outDims)
      for (let batch = 0; batch < plan.aBatch.length; batch++) {
        const bT = cachedTranspose(b.data, plan.bBatch[batch]! * k * n, k, n)
        dotProducts(a.data, plan.aBatch[batch]! * m * k, bT, 0, out.data, batch * m * n, m, n, k)
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants) => {
      const a = inputs[0] as FloatTensor
      const b = inputs[1] as FloatTensor
      const plan = matMulPlan(a.dims, b.dims) as Exclude<ReturnType<typeof matMulPlan>, string>
      const { m, k, n } = plan
      const da = wants[0] ? new Float32Array(a.data.length) : undefined
      const db = wants[1] ? new Float32Array(b.data.length) : undefined
      for (let batch = 0; batch < plan.aBatch.length; batch++) {
        const aOffset = plan.aBatch[batch]! * m * k
        const bOffset = plan.bBatch[batch]! * k * n
        // dA = dC · Bᵀ, rows of dC against rows of B; dB = Aᵀ · dC, rows of Aᵀ against rows of dCᵀ.
        if (da !== undefined) dotProducts(grad!, batch * m * n, b.data, bOffset, da, aOffset, m, k, n)
        if (db !== undefined) {
          const aT = transposeMatrix(a.data, aOffset, m, k)
          const gT = transposeMatrix(grad!, batch * m * n, m, n)
          const dbT = new Float32Array(n * k)
          dotProducts(gT, 0, aT, 0, dbT, 0, n, k, m)
          for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) db[bOffset + p * n + j]! += dbT[j * k + p]!
        }
      }
      return [da, db]
    }
  },

  Transpose: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      return [transposeOf(input, permutationOf(node, input.dims.length))]
    },
    backward: (_inputs, outputs, [grad], wants, { node }) => {
      if (!wants[0]) return [undefined]
      const out = outputs[0]!
      const inverse = inversePermutation(permutationOf(node, out.dims.length))
      return [transposeOf(floatTensor(out.dims, grad!), inverse).data as Float32Array]
    }
  },

  Reshape: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      return [reshaped(input, reshapeTarget(node, input, intValues(required(node, inputs, 1))))]
    },
    backward: shapeBackward
  },

  Unsqueeze: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      const axes = inputs[1] === undefined ? (intsAttribute(node, "axes") ?? fail(node, "needs axes")) : intValues(inputs[1])
      const rank = input.dims.length + axes.length
      const sorted = axes.map((axis) => normalizeAxis(node, axis, rank)).sort((x, y) => x - y)
      const dims = [...input.dims]
      for (const axis of sorted) dims.splice(axis, 0, 1)
      return [reshaped(input, dims)]
    },
    backward: shapeBackward
  },

  Concat: {
    forward: (inputs, { node }) => {
      const tensors = inputs.filter((tensor): tensor is Tensor => tensor !== undefined)
      if (tensors.length === 0) fail(node, "has no inputs")
      const template = tensors.find((tensor) => sizeOf(tensor.dims) > 0) ?? tensors[0]!
      const axis = normalizeAxis(node, intAttribute(node, "axis"), template.dims.length)
      const parts = tensors.filter((tensor) => tensor.dims.length === template.dims.length)
      for (const part of parts) {
        if (part.kind !== template.kind) fail(node, `mixes ${part.kind} and ${template.kind} inputs`)
        if (part.dims.some((dim, index) => index !== axis && dim !== template.dims[index])) fail(node, `shapes ${describeDims(part.dims)} and ${describeDims(template.dims)} differ off axis ${axis}`)
      }
      return [concatOf(parts, axis, template)]
    },
    backward: (inputs, outputs, [grad], wants, { node }) => {
      const out = outputs[0]!
      const axis = normalizeAxis(node, intAttribute(node, "axis"), out.dims.length)
      const sizes = inputs.map((tensor) => (tensor === undefined || tensor.dims.length !== out.dims.length ? 0 : tensor.dims[axis]!))
      const parts = splitGrad(grad!, out.dims, axis, sizes)
      return parts.map((part, index) => (wants[index] ? part : undefined))
    }
  },

  Split: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), input.dims.length)
      const sizes = splitSizes(node, inputs, input, axis)
      if (sizes.reduce((total, size) => total + size, 0) !== input.dims[axis]) fail(node, `split sizes ${sizes.join(", ")} do not add up to ${input.dims[axis]}`)
      const { outer, inner } = axisLayout(input.dims, axis)
      const rowLength = input.dims[axis]! * inner
      let start = 0
      return sizes.map((size) => {
        const dims = [...input.dims]
        dims[axis] = size
        const out = like(input, dims)
        const chunk = size * inner
        for (let o = 0; o < outer; o++) (out.data as Float32Array).set(input.data.subarray(o * rowLength + start, o * rowLength + start + chunk) as Float32Array, o * chunk)
        start += chunk
        return out
      })
    },
    backward: (inputs, outputs, grads, wants, { node }) => {
      if (!wants[0]) return [undefined]
      const input = inputs[0]!
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), input.dims.length)
      const filled = outputs.map((output, index) => floatTensor(output.dims, grads[index] ?? new Float32Array(sizeOf(output.dims))))
      return [concatOf(filled, axis, floatTensor(input.dims)).data as Float32Array]
    }
  },

  Where: {
    forward: (inputs, { node }) => {
      const condition = required<BoolTensor>(node, inputs, 0)
      const x = required(node, inputs, 1)
      const y = required(node, inputs, 2)
      const inner = broadcastDims(x.dims, y.dims)
      const dims = inner === undefined ? undefined : broadcastDims(condition.dims, inner)
      if (dims === undefined) return fail(node, `shapes ${describeDims(condition.dims)}, ${describeDims(x.dims)}, ${describeDims(y.dims)} do not broadcast`)
      const out = like(x, dims)
      const cMap = broadcastIndex(dims, condition.dims), xMap = broadcastIndex(dims, x.dims), yMap = broadcastIndex(dims, y.dims)
      for (let i = 0; i < out.data.length; i++) {
        out.data[i] = condition.data[cMap === null ? i : cMap[i]!] ? x.data[xMap === null ? i : xMap[i]!]! : y.data[yMap === null ? i : yMap[i]!]!
      }
      return [out]
    },
    backward: (inputs, outputs, [grad], wants) => {
      const condition = inputs[0] as BoolTensor
      const dims = outputs[0]!.dims
      const cMap = broadcastIndex(dims, condition.dims)
      const side = (index: 1 | 2) => {
        const full = new Float32Array(grad!.length)
        for (let i = 0; i < full.length; i++) {
          const chosen = condition.data[cMap === null ? i : cMap[i]!] ? 1 : 2
          if (chosen === index) full[i] = grad![i]!
        }
        return reduceToShape(full, dims, inputs[index]!.dims)
      }
      return [undefined, wants[1] ? side(1) : undefined, wants[2] ? side(2) : undefined]
    }
  },

  Gather: {
    forward: (inputs, { node }) => {
      const data = required(node, inputs, 0)
      const indices = required(node, inputs, 1)
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), data.dims.length)
      const axisSize = data.dims[axis]!
      const { outer, inner } = axisLayout(data.dims, axis)
      const dims = [...data.dims.slice(0, axis), ...indices.dims, ...data.dims.slice(axis + 1)]
      const out = like(data, dims)
      const count = indices.data.length
      for (let o = 0; o < outer; o++) {
        for (let index = 0; index < count; index++) {
          let at = indices.data[index]!
          if (at < 0) at += axisSize
          if (at < 0 || at >= axisSize) fail(node, `index ${indices.data[index]} is out of range for axis size ${axisSize}`)
          const from = (o * axisSize + at) * inner
          ;(out.data as Float32Array).set(data.data.subarray(from, from + inner) as Float32Array, (o * count + index) * inner)
        }
      }
      return [out]
    },
    backward: (inputs, _outputs, [grad], wants, { node }) => {
      if (!wants[0]) return [undefined]
      const data = inputs[0]!
      const indices = inputs[1]!
      const axis = normalizeAxis(node, intAttribute(node, "axis", 0), data.dims.length)
      const axisSize = data.dims[axis]!
      const { outer, inner } = axisLayout(data.dims, axis)
      const dx = new Float32Array(data.data.length)
      const count = indices.data.length
      for (let o = 0; o < outer; o++) {
        for (let index = 0; index < count; index++) {
          let at = indices.data[index]!
          if (at < 0) at += axisSize
          const to = (o * axisSize + at) * inner
          const from = (o * count + index) * inner
          for (let j = 0; j < inner; j++) dx[to + j]! += grad![from + j]!
        }
      }
      return [dx, undefined]
    }
  },

  Cast: {
    forward: (inputs, { node }) => {
      const input = required(node, inputs, 0)
      const to = intAttribute(node, "to")
      const out: Tensor = to === 1 ? floatTensor(input.dims) : to === 9 ? boolTensor(input.dims) : [6, 7, 2, 3, 4, 5, 12, 13].includes(to) ? intTensor(input.dims) : fail(node, `casting to ONNX type ${to} is not supported`)
      if (out.kind === "bool") for (let i = 0; i < out.data.length; i++) out.data[i] = input.data[i] ? 1 : 0
      else if (out.kind === "int" && input.kind === "float") for (let i = 0; i < out.data.length; i++) out.data[i] = Math.trunc(input.data[i]!)
      else out.data.set(input.data)
      return [out]
    },
    backward: (inputs, outputs, [grad], wants) => [wants[0] && inputs[0]!.kind === "float" && outputs[0]!.kind === "float" ? grad : undefined]
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
      const dx = new Float32Array(grad!.length)
      for (let i = 0; i < dx.length; i++) if (mask[i]) dx[i] = grad![i]! * keep
      return [dx]
    }
  },

  Shape: {
    forward: (inputs, { node }) => {
      const dims = required(node, inputs, 0).dims
      const rank = dims.length
      const clamp = (value: number) => Math.min(rank, Math.max(0, value < 0 ? value + rank : value))
      const start = clamp(intAttribute(node, "start", 0))
      const end = clamp(intAttribute(node, "end", rank))
      const values = dims.slice(start, end)
      return [intTensor([values.length], Float64Array.from(values))]
    }
  },

  Range: {
    forward: (inputs, { node }) => {
      const start = required(node, inputs, 0), limit = required(node, inputs, 1), delta = required(node, inputs, 2)
      const [from, to, step] = [start.data[0]!, limit.data[0]!, delta.data[0]!]
      if (step === 0) fail(node, "delta is 0")
      const count = Math.max(0, Math.ceil((to - from) / step))
      const out = start.kind === "float" ? floatTensor([count]) : intTensor([count])
      for (let i = 0; i < count; i++) out.data[i] = from + i * step
      return [out]
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

export const operatorFor = (opType: string): Operator | undefined => (Object.hasOwn(operators, opType) ? operators[opType] : undefined)

export const supportedOperators = (): Array<string> => Object.keys(operators).sort()

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI)

/** erf from the Chebyshev fit of erfc in Numerical Recipes (fractional error below 1.2e-7 everywhere). */
const erf = (x: number): number => {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    )
  return x >= 0 ? 1 - r : r - 1
}

