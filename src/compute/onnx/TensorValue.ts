/**
 * A tensor's elements as a typed array of its own type (float, double, int64, int32, bool), and the
 * indexing and numpy-style broadcasting constant folding computes with (ConstantFolding.ts).
 */
import { DataType, type OnnxTensor } from "./OnnxModel.js"
import { elementCount, isExternal } from "./Tensors.js"

export type Elements = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array

/** A tensor's elements in a typed array of its own type. */
export interface Value {
  readonly dataType: number
  readonly dims: ReadonlyArray<number>
  readonly data: Elements
}

/** A folded result larger than this many elements stays a node: it would only make the file bigger. */
export const maxFoldedElements = 1 << 22

export const isFloat = (dataType: number) => dataType === DataType.FLOAT || dataType === DataType.DOUBLE
export const isInteger = (dataType: number) => dataType === DataType.INT64 || dataType === DataType.INT32

/** A fresh array of `count` elements of `dataType`; undefined for types this module does not fold. */
export const allocate = (dataType: number, count: number): Elements | undefined => {
  switch (dataType) {
    case DataType.FLOAT:
      return new Float32Array(count)
    case DataType.DOUBLE:
      return new Float64Array(count)
    case DataType.INT64:
      return new BigInt64Array(count)
    case DataType.INT32:
      return new Int32Array(count)
    case DataType.BOOL:
      return new Uint8Array(count)
    default:
      return undefined
  }
}

/** Copies `raw` (little-endian, maybe unaligned) into a fresh array of the tensor's type. */
const fromRaw = (dataType: number, raw: Uint8Array): Elements | undefined => {
  const copy = new Uint8Array(raw)
  switch (dataType) {
    case DataType.FLOAT:
      return copy.length % 4 === 0 ? new Float32Array(copy.buffer) : undefined
    case DataType.DOUBLE:
      return copy.length % 8 === 0 ? new Float64Array(copy.buffer) : undefined
    case DataType.INT64:
      return copy.length % 8 === 0 ? new BigInt64Array(copy.buffer) : undefined
    case DataType.INT32:
      return copy.length % 4 === 0 ? new Int32Array(copy.buffer) : undefined
    case DataType.BOOL:
      return copy
    default:
      return undefined
  }
}

/** The tensor's elements, or undefined for a type, layout or size this module does not fold. */
export const valueOf = (tensor: OnnxTensor): Value | undefined => {
  if (isExternal(tensor) || tensor.segment !== undefined) return undefined
  const count = elementCount(tensor.dims)
  if (count > maxFoldedElements) return undefined
  let data: Elements | undefined
  if (tensor.rawData !== undefined) data = fromRaw(tensor.dataType, tensor.rawData)
  else if (tensor.dataType === DataType.FLOAT) data = Float32Array.from(tensor.floatData ?? [])
  else if (tensor.dataType === DataType.DOUBLE) data = Float64Array.from(tensor.doubleData ?? [])
  else if (tensor.dataType === DataType.INT64) data = BigInt64Array.from(tensor.int64Data ?? [])
  else if (tensor.dataType === DataType.INT32) data = Int32Array.from(tensor.int32Data ?? [])
  else if (tensor.dataType === DataType.BOOL) data = Uint8Array.from(tensor.int32Data ?? [])
  return data !== undefined && data.length === count
    ? { dataType: tensor.dataType, dims: tensor.dims, data }
    : undefined
}

/** The value as an initializer named `name` (raw little-endian data). */
export const tensorOf = (name: string, value: Value): OnnxTensor => ({
  name,
  dataType: value.dataType,
  dims: [...value.dims],
  rawData: new Uint8Array(value.data.buffer.slice(value.data.byteOffset, value.data.byteOffset + value.data.byteLength))
})

export const normalizeAxis = (axis: number, rank: number): number | undefined => {
  const normalized = axis < 0 ? axis + rank : axis
  return normalized >= 0 && normalized < rank ? normalized : undefined
}

export const stridesOf = (dims: ReadonlyArray<number>) => {
  const strides = new Array<number>(dims.length).fill(1)
  for (let axis = dims.length - 2; axis >= 0; axis--) strides[axis] = strides[axis + 1]! * dims[axis + 1]!
  return strides
}

export const withDims = (value: Value, dims: ReadonlyArray<number>): Value | undefined =>
  elementCount(dims) === value.data.length ? { dataType: value.dataType, dims, data: value.data } : undefined

/** Picks `indices` (flat positions in `value`) into a new value of `dims`. */
export const pick = (value: Value, dims: ReadonlyArray<number>, indices: ArrayLike<number>): Value | undefined => {
  const data = allocate(value.dataType, indices.length)
  if (data === undefined) return undefined
  const source = value.data as { readonly [index: number]: number | bigint }
  const target = data as { [index: number]: number | bigint }
  for (let i = 0; i < indices.length; i++) target[i] = source[indices[i]!]!
  return { dataType: value.dataType, dims, data }
}

// ---- broadcasting ----

export const broadcastDims = (shapes: ReadonlyArray<ReadonlyArray<number>>): Array<number> | undefined => {
  const rank = Math.max(...shapes.map((dims) => dims.length))
  const out: Array<number> = []
  for (let axis = 0; axis < rank; axis++) {
    let size = 1
    for (const dims of shapes) {
      const dim = dims[axis - (rank - dims.length)] ?? 1
      if (dim === 1) continue
      if (size !== 1 && size !== dim) return undefined
      size = dim
    }
    out.push(size)
  }
  return out
}

/** For each operand, the flat index of its element at each output position (numpy broadcasting). */
export const broadcastIndices = (
  shapes: ReadonlyArray<ReadonlyArray<number>>,
  out: ReadonlyArray<number>
): Array<Int32Array> => {
  const count = elementCount(out)
  return shapes.map((dims) => {
    const offset = out.length - dims.length
    const own = stridesOf(dims)
    const strides = out.map((_, axis) => (axis < offset || dims[axis - offset] === 1 ? 0 : own[axis - offset]!))
    const indices = new Int32Array(count)
    const position = new Array<number>(out.length).fill(0)
    let flat = 0
    for (let i = 0; i < count; i++) {
      indices[i] = flat
      for (let axis = out.length - 1; axis >= 0; axis--) {
        position[axis]!++
        flat += strides[axis]!
        if (position[axis]! < out[axis]!) break
        flat -= strides[axis]! * position[axis]!
        position[axis] = 0
      }
    }
    return indices
  })
}

export type Scalar = number | bigint

/** `combine` over broadcast operands; it returns undefined to refuse (division by zero). */
export const elementwise = (
  operands: ReadonlyArray<Value>,
  outType: number,
  combine: (values: ReadonlyArray<Scalar>) => Scalar | undefined
): Value | undefined => {
  const dims = broadcastDims(operands.map((operand) => operand.dims))
  if (dims === undefined || elementCount(dims) > maxFoldedElements) return undefined
  const data = allocate(outType, elementCount(dims))
  if (data === undefined) return undefined
  const indices = broadcastIndices(operands.map((operand) => operand.dims), dims)
  const sources = operands.map((operand) => operand.data as { readonly [index: number]: Scalar })
  const target = data as { [index: number]: Scalar }
  const values = new Array<Scalar>(operands.length)
  for (let i = 0; i < data.length; i++) {
    for (let k = 0; k < operands.length; k++) values[k] = sources[k]![indices[k]![i]!]!
    const result = combine(values)
    if (result === undefined) return undefined
    target[i] = result
  }
  return { dataType: outType, dims, data }
}
