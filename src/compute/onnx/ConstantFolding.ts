/**
 * Evaluating one ONNX node on constant inputs, for graph simplification: shape arithmetic (Shape,
 * Gather, Unsqueeze, Concat, Reshape, Slice, Range, ...), casts, comparisons and the four arithmetic
 * operators, on float, double, int64, int32 and bool tensors. Only operators whose result ONNX Runtime
 * computes bit for bit the same way are here (float +, -, *, / and sqrt are correctly rounded in both);
 * anything else is left to run, so a folded model gives exactly the outputs it gave before.
 */
import { findAttribute, isDefaultDomain } from "./Graph.js"
import { DataType, type OnnxAttribute, type OnnxNode } from "./OnnxModel.js"
import { elementCount } from "./Tensors.js"
import {
  allocate,
  broadcastDims,
  broadcastIndices,
  elementwise,
  isFloat,
  isInteger,
  maxFoldedElements,
  normalizeAxis,
  pick,
  stridesOf,
  type Value,
  valueOf,
  withDims
} from "./TensorValue.js"

// ---- reading operands ----

const ints = (value: Value | undefined): Array<number> | undefined =>
  value !== undefined && isInteger(value.dataType)
    ? Array.from(value.data as ArrayLike<number | bigint>, Number)
    : undefined

const attributeInt = (node: OnnxNode, name: string, fallback: number) => {
  const attribute = findAttribute(node, name)
  return attribute?.i === undefined ? fallback : Number(attribute.i)
}

const attributeInts = (node: OnnxNode, name: string): Array<number> | undefined =>
  findAttribute(node, name)?.ints?.map(Number)

const arithmetic = (op: string, a: Value, b: Value): Value | undefined => {
  if (a.dataType !== b.dataType) return undefined
  const type = a.dataType
  if (type === DataType.INT64) {
    return elementwise([a, b], type, ([x, y]) => {
      const [l, r] = [x as bigint, y as bigint]
      if (op === "Add") return BigInt.asIntN(64, l + r)
      if (op === "Sub") return BigInt.asIntN(64, l - r)
      if (op === "Mul") return BigInt.asIntN(64, l * r)
      return r === 0n ? undefined : BigInt.asIntN(64, l / r)
    })
  }
  if (type === DataType.INT32) {
    return elementwise([a, b], type, ([x, y]) => {
      const [l, r] = [x as number, y as number]
      if (op === "Add") return (l + r) | 0
      if (op === "Sub") return (l - r) | 0
      if (op === "Mul") return Math.imul(l, r)
      return r === 0 ? undefined : Math.trunc(l / r) | 0
    })
  }
  if (!isFloat(type)) return undefined
  // In double precision, then rounded once: the correctly rounded float32 result, as ONNX Runtime's.
  const round = type === DataType.FLOAT ? Math.fround : (x: number) => x
  return elementwise([a, b], type, ([x, y]) => {
    const [l, r] = [x as number, y as number]
    return round(op === "Add" ? l + r : op === "Sub" ? l - r : op === "Mul" ? l * r : l / r)
  })
}

const comparison = (op: string, a: Value, b: Value): Value | undefined => {
  if (a.dataType !== b.dataType || a.dataType === DataType.BOOL && op !== "Equal") return undefined
  return elementwise([a, b], DataType.BOOL, ([x, y]) => {
    const [l, r] = [x!, y!]
    const holds = op === "Equal"
      ? l === r
      : op === "Less"
      ? l < r
      : op === "Greater"
      ? l > r
      : op === "LessOrEqual"
      ? l <= r
      : l >= r
    return holds ? 1 : 0
  })
}

const logical = (op: string, a: Value, b: Value): Value | undefined =>
  a.dataType !== DataType.BOOL || b.dataType !== DataType.BOOL
    ? undefined
    : elementwise(
      [a, b],
      DataType.BOOL,
      ([x, y]) => (op === "And" ? (x && y ? 1 : 0) : op === "Or" ? (x || y ? 1 : 0) : x !== y ? 1 : 0)
    )

const unary = (op: string, a: Value): Value | undefined => {
  const type = a.dataType
  if (op === "Not") return type === DataType.BOOL ? elementwise([a], type, ([x]) => (x ? 0 : 1)) : undefined
  if (type === DataType.INT64) {
    if (op === "Neg") return elementwise([a], type, ([x]) => BigInt.asIntN(64, -(x as bigint)))
    if (op === "Abs") {
      return elementwise([a], type, ([x]) => BigInt.asIntN(64, (x as bigint) < 0n ? -(x as bigint) : (x as bigint)))
    }
    return undefined
  }
  if (type === DataType.INT32) {
    if (op === "Neg") return elementwise([a], type, ([x]) => -(x as number) | 0)
    if (op === "Abs") return elementwise([a], type, ([x]) => Math.abs(x as number) | 0)
    return undefined
  }
  if (!isFloat(type)) return undefined
  const round = type === DataType.FLOAT ? Math.fround : (x: number) => x
  const apply = { Neg: (x: number) => -x, Abs: Math.abs, Sqrt: Math.sqrt, Reciprocal: (x: number) => 1 / x }[op]
  return apply === undefined ? undefined : elementwise([a], type, ([x]) => round(apply(x as number)))
}

const cast = (value: Value, to: number): Value | undefined => {
  const from = value.dataType
  if (allocate(to, 0) === undefined) return undefined
  return elementwise([value], to, ([x]) => {
    // Beyond 2^53 an int64 would be rounded twice (to double, then to float): not folded.
    if (
      typeof x === "bigint" && (to === DataType.FLOAT || to === DataType.DOUBLE) && (x > 2n ** 53n || x < -(2n ** 53n))
    ) return undefined
    const number = typeof x === "bigint" ? Number(x) : x!
    switch (to) {
      case DataType.FLOAT:
        return Math.fround(number)
      case DataType.DOUBLE:
        return number
      case DataType.BOOL:
        return number !== 0 ? 1 : 0
      case DataType.INT64:
        if (typeof x === "bigint") return x
        // Out of range or not a number: C++'s conversion is undefined there, so it is not folded.
        return Number.isFinite(number) && Math.abs(number) < 2 ** 63 ? BigInt(Math.trunc(number)) : undefined
      case DataType.INT32:
        if (from === DataType.INT64) return Number(BigInt.asIntN(32, x as bigint))
        return Number.isFinite(number) && Math.abs(number) < 2 ** 31 ? Math.trunc(number) | 0 : undefined
      default:
        return undefined
    }
  })
}

// ---- shape operators ----

const unsqueeze = (value: Value, axes: ReadonlyArray<number>): Value | undefined => {
  const rank = value.dims.length + axes.length
  const normalized = axes.map((axis) => normalizeAxis(axis, rank))
  if (normalized.some((axis) => axis === undefined) || new Set(normalized).size !== axes.length) return undefined
  const dims: Array<number> = []
  let next = 0
  for (let axis = 0; axis < rank; axis++) dims.push(normalized.includes(axis) ? 1 : value.dims[next++]!)
  return withDims(value, dims)
}

const squeeze = (value: Value, axes: ReadonlyArray<number> | undefined): Value | undefined => {
  const rank = value.dims.length
  const removed = axes === undefined
    ? value.dims.flatMap((dim, axis) => (dim === 1 ? [axis] : []))
    : axes.map((axis) => normalizeAxis(axis, rank))
  if (removed.some((axis) => axis === undefined || value.dims[axis] !== 1)) return undefined
  return withDims(value, value.dims.filter((_, axis) => !removed.includes(axis)))
}

const reshape = (value: Value, shape: ReadonlyArray<number>, allowZero: boolean): Value | undefined => {
  const dims = shape.map((dim, axis) => (dim === 0 && !allowZero ? value.dims[axis] ?? -2 : dim))
  if (dims.some((dim) => dim < -1) || dims.filter((dim) => dim === -1).length > 1) return undefined
  const known = dims.filter((dim) => dim !== -1).reduce((product, dim) => product * dim, 1)
  const inferred = dims.map((dim) => (dim === -1 ? (known === 0 ? -1 : value.data.length / known) : dim))
  return inferred.every((dim) => Number.isInteger(dim) && dim >= 0) ? withDims(value, inferred) : undefined
}

const concat = (values: ReadonlyArray<Value>, axisAttribute: number): Value | undefined => {
  const first = values[0]
  if (
    first === undefined ||
    values.some((value) => value.dataType !== first.dataType || value.dims.length !== first.dims.length)
  ) return undefined
  const axis = normalizeAxis(axisAttribute, first.dims.length)
  if (axis === undefined) return undefined
  if (values.some((value) => value.dims.some((dim, i) => i !== axis && dim !== first.dims[i]))) return undefined
  const dims = first.dims.map((
    dim,
    i
  ) => (i === axis ? values.reduce((sum, value) => sum + value.dims[axis]!, 0) : dim))
  const outer = elementCount(first.dims.slice(0, axis))
  const data = allocate(first.dataType, elementCount(dims))
  if (data === undefined) return undefined
  let offset = 0
  for (let o = 0; o < outer; o++) {
    for (const value of values) {
      const chunk = value.data.length / Math.max(outer, 1)
      ;(data as Float32Array).set((value.data as Float32Array).subarray(o * chunk, (o + 1) * chunk), offset)
      offset += chunk
    }
  }
  return { dataType: first.dataType, dims, data }
}

const transpose = (value: Value, permAttribute: ReadonlyArray<number> | undefined): Value | undefined => {
  const rank = value.dims.length
  const perm = permAttribute ?? value.dims.map((_, axis) => rank - 1 - axis)
  if (perm.length !== rank || new Set(perm).size !== rank || perm.some((axis) => axis < 0 || axis >= rank)) {
    return undefined
  }
  const dims = perm.map((axis) => value.dims[axis]!)
  const strides = stridesOf(value.dims)
  // Each output position's source: the strides of the permuted input axes, walked in output order.
  const indices = new Int32Array(elementCount(dims))
  const outStrides = stridesOf(dims)
  for (let i = 0; i < indices.length; i++) {
    let rest = i
    let source = 0
    for (let axis = 0; axis < rank; axis++) {
      const coordinate = Math.floor(rest / outStrides[axis]!)
      rest -= coordinate * outStrides[axis]!
      source += coordinate * strides[perm[axis]!]!
    }
    indices[i] = source
  }
  return pick(value, dims, indices)
}

const gather = (value: Value, indicesValue: Value, axisAttribute: number): Value | undefined => {
  const axis = normalizeAxis(axisAttribute, value.dims.length)
  const indices = ints(indicesValue)
  if (axis === undefined || indices === undefined) return undefined
  const size = value.dims[axis]!
  if (indices.some((index) => index < -size || index >= size)) return undefined
  const outer = elementCount(value.dims.slice(0, axis))
  const inner = elementCount(value.dims.slice(axis + 1))
  const positions: Array<number> = []
  for (let o = 0; o < outer; o++) {
    for (const index of indices) {
      const row = (index < 0 ? index + size : index) + o * size
      for (let i = 0; i < inner; i++) positions.push(row * inner + i)
    }
  }
  return pick(value, [...value.dims.slice(0, axis), ...indicesValue.dims, ...value.dims.slice(axis + 1)], positions)
}

const slice = (
  value: Value,
  starts: ReadonlyArray<number>,
  ends: ReadonlyArray<number>,
  axesGiven: ReadonlyArray<number> | undefined,
  stepsGiven: ReadonlyArray<number> | undefined
): Value | undefined => {
  const rank = value.dims.length
  const axes = (axesGiven ?? starts.map((_, i) => i)).map((axis) => normalizeAxis(axis, rank))
  const steps = stepsGiven ?? starts.map(() => 1)
  if (
    ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length ||
    axes.some((axis) => axis === undefined) || steps.includes(0)
  ) return undefined
  const begin = value.dims.map(() => 0)
  const step = value.dims.map(() => 1)
  const dims = [...value.dims]
  for (const [k, axis] of (axes as Array<number>).entries()) {
    const size = value.dims[axis]!
    const s = steps[k]!
    const clamp = (index: number, low: number, high: number) =>
      Math.min(Math.max(index < 0 ? index + size : index, low), high)
    const start = s > 0 ? clamp(starts[k]!, 0, size) : clamp(starts[k]!, 0, size - 1)
    const end = s > 0 ? clamp(ends[k]!, 0, size) : clamp(ends[k]!, -1, size - 1)
    begin[axis] = start
    step[axis] = s
    dims[axis] = Math.max(0, Math.ceil((end - start) / s))
  }
  const strides = stridesOf(value.dims)
  const count = elementCount(dims)
  const positions = new Array<number>(count)
  const outStrides = stridesOf(dims)
  for (let i = 0; i < count; i++) {
    let rest = i
    let source = 0
    for (let axis = 0; axis < rank; axis++) {
      const coordinate = Math.floor(rest / outStrides[axis]!)
      rest -= coordinate * outStrides[axis]!
      source += (begin[axis]! + coordinate * step[axis]!) * strides[axis]!
    }
    positions[i] = source
  }
  return pick(value, dims, positions)
}

const int64Value = (dims: ReadonlyArray<number>, values: ReadonlyArray<number>): Value => ({
  dataType: DataType.INT64,
  dims,
  data: BigInt64Array.from(values, (x) => BigInt(x))
})

const range = (start: Value, limit: Value, delta: Value): Value | undefined => {
  // Integers only: a float range accumulates rounding the way the runtime's loop does, not ours.
  const [a, b, d] = [ints(start), ints(limit), ints(delta)]
  if (
    a?.length !== 1 || b?.length !== 1 || d?.length !== 1 || d[0] === 0 || start.dataType !== limit.dataType ||
    start.dataType !== delta.dataType
  ) return undefined
  const count = Math.max(Math.ceil((b[0]! - a[0]!) / d[0]!), 0)
  if (count > maxFoldedElements) return undefined
  const values = Array.from({ length: count }, (_, i) => a[0]! + i * d[0]!)
  return start.dataType === DataType.INT64
    ? int64Value([count], values)
    : { dataType: DataType.INT32, dims: [count], data: Int32Array.from(values) }
}

const constantOfShape = (shapeValue: Value, attribute: OnnxAttribute | undefined): Value | undefined => {
  const dims = ints(shapeValue)
  if (dims === undefined || dims.some((dim) => dim < 0) || elementCount(dims) > maxFoldedElements) return undefined
  const fill = attribute?.t === undefined
    ? { dataType: DataType.FLOAT, dims: [1], data: new Float32Array(1) }
    : valueOf(attribute.t)
  if (fill === undefined || fill.data.length !== 1) return undefined
  const data = allocate(fill.dataType, elementCount(dims))
  if (data === undefined) return undefined
  ;(data as Float32Array).fill((fill.data as Float32Array)[0]!)
  return { dataType: fill.dataType, dims, data }
}

const expand = (value: Value, shapeValue: Value): Value | undefined => {
  const shape = ints(shapeValue)
  const dims = shape === undefined ? undefined : broadcastDims([value.dims, shape])
  if (dims === undefined || elementCount(dims) > maxFoldedElements) return undefined
  return pick(value, dims, broadcastIndices([value.dims], dims)[0]!)
}

const shapeOf = (dims: ReadonlyArray<number>, node: OnnxNode): Value => {
  const rank = dims.length
  const bound = (index: number) => Math.min(Math.max(index < 0 ? index + rank : index, 0), rank)
  const start = bound(attributeInt(node, "start", 0))
  const end = bound(attributeInt(node, "end", rank))
  const kept = dims.slice(start, Math.max(start, end))
  return int64Value([kept.length], kept)
}

/** Operators `evaluate` can fold. */
export const foldableOperators: ReadonlySet<string> = new Set([
  "Identity",
  "Cast",
  "Unsqueeze",
  "Squeeze",
  "Reshape",
  "Flatten",
  "Concat",
  "Transpose",
  "Gather",
  "Slice",
  "Shape",
  "Size",
  "Range",
  "ConstantOfShape",
  "Expand",
  "Add",
  "Sub",
  "Mul",
  "Div",
  "Equal",
  "Less",
  "Greater",
  "LessOrEqual",
  "GreaterOrEqual",
  "And",
  "Or",
  "Xor",
  "Not",
  "Neg",
  "Abs",
  "Sqrt",
  "Reciprocal",
  "Where"
])

/**
 * The node's outputs computed from its inputs (undefined for an omitted optional input), or undefined
 * when it cannot be folded here. `opset` is the model's default-domain version (Unsqueeze, Squeeze and
 * Slice read their axes from attributes before 13, 13 and 10).
 */
export const evaluate = (
  node: OnnxNode,
  inputs: ReadonlyArray<Value | undefined>,
  opset: number
): Array<Value> | undefined => {
  if (!isDefaultDomain(node.domain) || !foldableOperators.has(node.opType)) return undefined
  const [a, b, c] = inputs
  const one = (value: Value | undefined) => (value === undefined ? undefined : [value])
  switch (node.opType) {
    case "Identity":
      return one(a)
    case "Cast":
      return a && one(cast(a, attributeInt(node, "to", -1)))
    case "Unsqueeze": {
      const axes = opset >= 13 ? ints(b) : attributeInts(node, "axes")
      return a && axes && one(unsqueeze(a, axes))
    }
    case "Squeeze": {
      const axes = opset >= 13 ? (b === undefined ? undefined : ints(b)) : attributeInts(node, "axes")
      if (opset >= 13 && b !== undefined && axes === undefined) return undefined
      return a && one(squeeze(a, axes))
    }
    case "Reshape": {
      const shape = ints(b)
      return a && shape && one(reshape(a, shape, attributeInt(node, "allowzero", 0) === 1))
    }
    case "Flatten": {
      const axis = a === undefined ? undefined : attributeInt(node, "axis", 1)
      const at = a === undefined || axis === undefined ? undefined : axis < 0 ? axis + a.dims.length : axis
      return a && at !== undefined && at >= 0 && at <= a.dims.length
        ? one(withDims(a, [elementCount(a.dims.slice(0, at)), elementCount(a.dims.slice(at))]))
        : undefined
    }
    case "Concat":
      return inputs.every((value) => value !== undefined)
        ? one(concat(inputs as Array<Value>, attributeInt(node, "axis", 0)))
        : undefined
    case "Transpose":
      return a && one(transpose(a, attributeInts(node, "perm")))
    case "Gather":
      return a && b && one(gather(a, b, attributeInt(node, "axis", 0)))
    case "Slice": {
      if (opset < 10 || a === undefined) return undefined
      const [starts, ends] = [ints(b), ints(c)]
      const axes = inputs[3] === undefined ? undefined : ints(inputs[3])
      const steps = inputs[4] === undefined ? undefined : ints(inputs[4])
      if (
        starts === undefined || ends === undefined || (inputs[3] !== undefined && axes === undefined) ||
        (inputs[4] !== undefined && steps === undefined)
      ) return undefined
      return one(slice(a, starts, ends, axes, steps))
    }
    case "Shape":
      return a && [shapeOf(a.dims, node)]
    case "Size":
      return a && [int64Value([], [a.data.length])]
    case "Range":
      return a && b && c && one(range(a, b, c))
    case "ConstantOfShape":
      return a && one(constantOfShape(a, findAttribute(node, "value")))
    case "Expand":
      return a && b && one(expand(a, b))
    case "Add":
    case "Sub":
    case "Mul":
    case "Div":
      return a && b && one(arithmetic(node.opType, a, b))
    case "Equal":
    case "Less":
    case "Greater":
    case "LessOrEqual":
    case "GreaterOrEqual":
      return a && b && one(comparison(node.opType, a, b))
    case "And":
    case "Or":
    case "Xor":
      return a && b && one(logical(node.opType, a, b))
    case "Where":
      return a && b && c && a.dataType === DataType.BOOL && b.dataType === c.dataType
        ? one(elementwise([a, b, c], b.dataType, ([condition, x, y]) => (condition ? x : y)))
        : undefined
    default:
      return a && one(unary(node.opType, a))
  }
}

/** Shape of a value known only by its type: folded when every dimension is a fixed size. */
export const staticShapeValue = (dims: ReadonlyArray<number>, node: OnnxNode): Value => shapeOf(dims, node)
