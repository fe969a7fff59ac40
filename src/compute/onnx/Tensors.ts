/**
 * Tensor values: element counts and sizes per data type, reading any numeric tensor as float32,
 * constructors for the types the quantizer emits, and float16 <-> float32 conversion.
 */
import { DataLocation, DataType, OnnxError, type OnnxTensor } from "./OnnxModel.js"

const dataTypeNames: Record<number, string> = Object.fromEntries(
  Object.entries(DataType).map(([name, code]) => [code, name.toLowerCase()])
)

/** "float", "float16", "int8", ... (ONNX's names, lower case); `type<N>` for codes this module does not know. */
export const dataTypeName = (dataType: number): string => dataTypeNames[dataType] ?? `type${dataType}`

const bits: Record<number, number> = {
  [DataType.FLOAT]: 32,
  [DataType.UINT8]: 8,
  [DataType.INT8]: 8,
  [DataType.UINT16]: 16,
  [DataType.INT16]: 16,
  [DataType.INT32]: 32,
  [DataType.INT64]: 64,
  [DataType.BOOL]: 8,
  [DataType.FLOAT16]: 16,
  [DataType.DOUBLE]: 64,
  [DataType.UINT32]: 32,
  [DataType.UINT64]: 64,
  [DataType.COMPLEX64]: 64,
  [DataType.COMPLEX128]: 128,
  [DataType.BFLOAT16]: 16,
  [DataType.FLOAT8E4M3FN]: 8,
  [DataType.FLOAT8E4M3FNUZ]: 8,
  [DataType.FLOAT8E5M2]: 8,
  [DataType.FLOAT8E5M2FNUZ]: 8,
  [DataType.UINT4]: 4,
  [DataType.INT4]: 4,
  [DataType.FLOAT4E2M1]: 4,
  [DataType.FLOAT8E8M0]: 8,
  [DataType.UINT2]: 2,
  [DataType.INT2]: 2
}

/** Bits per element; undefined for strings (variable) and unknown types. */
export const bitsPerElement = (dataType: number): number | undefined => bits[dataType]

/** Number of elements of a tensor of these dims (1 for a scalar). */
export const elementCount = (dims: ReadonlyArray<number>): number => {
  let count = 1
  for (const dim of dims) count *= dim
  return count
}

/** Bytes `count` elements of `dataType` take in raw_data (sub-byte types packed, rounded up); undefined for strings. */
export const dataTypeByteSize = (dataType: number, count: number): number | undefined => {
  const width = bits[dataType]
  return width === undefined ? undefined : Math.ceil((count * width) / 8)
}

/** Size of a tensor's values in bytes as raw data would hold them (strings: their UTF-8 bytes). */
export const tensorByteSize = (tensor: OnnxTensor): number => {
  if (tensor.dataType === DataType.STRING) return (tensor.stringData ?? []).reduce((sum, s) => sum + s.length, 0)
  return dataTypeByteSize(tensor.dataType, elementCount(tensor.dims)) ?? 0
}

export const isExternal = (tensor: OnnxTensor): boolean => tensor.dataLocation === DataLocation.EXTERNAL

// ---- float16 ----

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** The float16 bit pattern nearest to `value` (ties to even); overflow gives infinity, NaN stays NaN. */
export const float32ToFloat16Bits = (value: number): number => {
  f32[0] = value
  const x = u32[0]!
  const sign = (x >>> 16) & 0x8000
  const exponent = (x >>> 23) & 0xff
  const mantissa = x & 0x7fffff
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13)
  const halfExponent = exponent - 112
  if (halfExponent >= 0x1f) return sign | 0x7c00
  if (halfExponent <= 0) {
    // Subnormal half (or zero): the 24-bit significand shifted into the 10-bit field, rounded.
    if (halfExponent < -10) return sign
    const significand = mantissa | 0x800000
    const shift = 14 - halfExponent
    let half = significand >>> shift
    const rest = significand & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++
    return sign | half
  }
  let half = (halfExponent << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  // A carry out of the mantissa bumps the exponent, up to infinity: exactly the right rounding.
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++
  return sign | half
}

/** The float32 value of a float16 bit pattern (exact: every half is a float). */
export const float16BitsToFloat32 = (bits16: number): number => {
  const sign = (bits16 & 0x8000) << 16
  const exponent = (bits16 >>> 10) & 0x1f
  const mantissa = bits16 & 0x3ff
  if (exponent === 0) return (sign ? -1 : 1) * mantissa * 2 ** -24
  u32[0] = exponent === 0x1f ? sign | 0x7f800000 | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13)
  return f32[0]!
}

let halfTable: Float32Array | undefined
const float16Table = (): Float32Array => {
  if (!halfTable) {
    halfTable = new Float32Array(65536)
    for (let h = 0; h < 65536; h++) halfTable[h] = float16BitsToFloat32(h)
  }
  return halfTable
}

export const float32ToFloat16 = (values: ArrayLike<number>): Uint16Array => {
  const out = new Uint16Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = float32ToFloat16Bits(values[i]!)
  return out
}

export const float16ToFloat32 = (halves: ArrayLike<number>): Float32Array => {
  const table = float16Table()
  const out = new Float32Array(halves.length)
  for (let i = 0; i < halves.length; i++) out[i] = table[halves[i]! & 0xffff]!
  return out
}

// ---- reading ----

const invalid = (reason: string) => new OnnxError({ kind: "Invalid", reason })

/** A typed view of raw little-endian bytes, copying only when the bytes are not aligned for it. */
const rawView = <A>(
  raw: Uint8Array,
  width: number,
  make: (buffer: ArrayBufferLike, offset: number, length: number) => A
): A => {
  // A copy, not raw.slice(): on a Node Buffer (a file read whole) slice is a view at the same offset.
  const source = raw.byteOffset % width === 0 ? raw : new Uint8Array(raw)
  return make(source.buffer, source.byteOffset, source.length / width)
}

/**
 * The elements of a numeric tensor as float32 (integers converted by value, int64 beyond 2^24 rounded).
 * Supports float, float16, bfloat16, double, (u)int8/16/32/64 and bool; fails on external data not loaded.
 */
export const tensorToFloat32 = (tensor: OnnxTensor): Float32Array => {
  const label = tensor.name ?? "tensor"
  if (isExternal(tensor)) {
    throw new OnnxError({
      kind: "ExternalData",
      reason: `${label}: its data is in an external file that was not loaded`
    })
  }
  const count = elementCount(tensor.dims)
  const type = tensor.dataType
  const raw = tensor.rawData
  const expected = dataTypeByteSize(type, count)
  if (raw && expected !== undefined && raw.length !== expected) {
    throw invalid(
      `${label}: raw_data holds ${raw.length} bytes, ${expected} expected for ${count} ${dataTypeName(type)} elements`
    )
  }
  const values = ((): ArrayLike<number | bigint> => {
    switch (type) {
      case DataType.FLOAT:
        return raw ? rawView(raw, 4, (b, o, n) => new Float32Array(b, o, n)) : tensor.floatData ?? []
      case DataType.DOUBLE:
        return raw ? rawView(raw, 8, (b, o, n) => new Float64Array(b, o, n)) : tensor.doubleData ?? []
      case DataType.FLOAT16:
        return float16ToFloat32(raw ? rawView(raw, 2, (b, o, n) => new Uint16Array(b, o, n)) : tensor.int32Data ?? [])
      case DataType.BFLOAT16: {
        const halves = raw ? rawView(raw, 2, (b, o, n) => new Uint16Array(b, o, n)) : tensor.int32Data ?? []
        const words = new Uint32Array(halves.length)
        for (let i = 0; i < halves.length; i++) words[i] = (halves[i]! & 0xffff) << 16
        return new Float32Array(words.buffer)
      }
      case DataType.INT8:
        return raw ? new Int8Array(raw.buffer, raw.byteOffset, raw.length) : tensor.int32Data ?? []
      case DataType.UINT8:
      case DataType.BOOL:
        return raw ?? tensor.int32Data ?? []
      case DataType.INT16:
        return raw ? rawView(raw, 2, (b, o, n) => new Int16Array(b, o, n)) : tensor.int32Data ?? []
      case DataType.UINT16:
        return raw ? rawView(raw, 2, (b, o, n) => new Uint16Array(b, o, n)) : tensor.int32Data ?? []
      case DataType.INT32:
        return raw ? rawView(raw, 4, (b, o, n) => new Int32Array(b, o, n)) : tensor.int32Data ?? []
      case DataType.UINT32:
        return raw ? rawView(raw, 4, (b, o, n) => new Uint32Array(b, o, n)) : tensor.uint64Data ?? []
      case DataType.INT64:
        return raw ? rawView(raw, 8, (b, o, n) => new BigInt64Array(b, o, n)) : tensor.int64Data ?? []
      case DataType.UINT64:
        return raw ? rawView(raw, 8, (b, o, n) => new BigUint64Array(b, o, n)) : tensor.uint64Data ?? []
      default:
        throw invalid(`${label}: cannot read ${dataTypeName(type)} elements as float32`)
    }
  })()
  if (values.length !== count) throw invalid(`${label}: ${values.length} elements for dims [${tensor.dims.join(", ")}]`)
  if (values instanceof Float32Array) {
    // Never hand out the model's own storage: callers may write into the result.
    return values === tensor.floatData || (raw !== undefined && values.buffer === raw.buffer) ? values.slice() : values
  }
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) out[i] = Number(values[i]!)
  return out
}

// ---- constructing ----

const checkCount = (name: string, dims: ReadonlyArray<number>, length: number): void => {
  if (dims.some((dim) => !Number.isInteger(dim) || dim < 0)) {
    throw invalid(`${name}: dims [${dims.join(", ")}] are not sizes`)
  }
  if (elementCount(dims) !== length) throw invalid(`${name}: ${length} elements for dims [${dims.join(", ")}]`)
}

const rawTensor = (name: string, dataType: number, dims: ReadonlyArray<number>, view: ArrayBufferView): OnnxTensor => ({
  name,
  dataType,
  dims: [...dims],
  rawData: new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength))
})

/** A float32 tensor (raw data, copied from `data`). */
export const float32Tensor = (name: string, dims: ReadonlyArray<number>, data: ArrayLike<number>): OnnxTensor => {
  checkCount(name, dims, data.length)
  return rawTensor(name, DataType.FLOAT, dims, data instanceof Float32Array ? data : Float32Array.from(data))
}

/** A float16 tensor from float32 values, rounded to nearest even. */
export const float16Tensor = (name: string, dims: ReadonlyArray<number>, data: ArrayLike<number>): OnnxTensor => {
  checkCount(name, dims, data.length)
  return rawTensor(name, DataType.FLOAT16, dims, float32ToFloat16(data))
}

const integers = (name: string, data: ArrayLike<number>, min: number, max: number): void => {
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!
    if (!Number.isInteger(v) || v < min || v > max) {
      throw invalid(`${name}: element ${i} (${v}) is outside [${min}, ${max}]`)
    }
  }
}

export const int8Tensor = (name: string, dims: ReadonlyArray<number>, data: ArrayLike<number>): OnnxTensor => {
  checkCount(name, dims, data.length)
  integers(name, data, -128, 127)
  return rawTensor(name, DataType.INT8, dims, data instanceof Int8Array ? data : Int8Array.from(data))
}

export const uint8Tensor = (name: string, dims: ReadonlyArray<number>, data: ArrayLike<number>): OnnxTensor => {
  checkCount(name, dims, data.length)
  integers(name, data, 0, 255)
  return rawTensor(name, DataType.UINT8, dims, data instanceof Uint8Array ? data : Uint8Array.from(data))
}

export const int32Tensor = (name: string, dims: ReadonlyArray<number>, data: ArrayLike<number>): OnnxTensor => {
  checkCount(name, dims, data.length)
  integers(name, data, -(2 ** 31), 2 ** 31 - 1)
  return rawTensor(name, DataType.INT32, dims, data instanceof Int32Array ? data : Int32Array.from(data))
}

/** An int64 tensor; numbers must be safe integers. */
export const int64Tensor = (
  name: string,
  dims: ReadonlyArray<number>,
  data: ArrayLike<number | bigint>
): OnnxTensor => {
  checkCount(name, dims, data.length)
  const values = new BigInt64Array(data.length)
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!
    if (typeof v === "number" && !Number.isSafeInteger(v)) {
      throw invalid(`${name}: element ${i} (${v}) is not an integer`)
    }
    values[i] = BigInt.asIntN(64, BigInt(v))
  }
  return rawTensor(name, DataType.INT64, dims, values)
}
