/**
 * ONNX's ModelProto and what it contains, as plain TypeScript values, with a codec to and from bytes.
 * Fields this codec does not model are kept byte for byte in `unknownFields` and written back as read.
 */
import { Data } from "effect"
import { encodeMessage, measure, ProtobufError, ProtoReader, type ProtoSink } from "./Protobuf.js"

export type OnnxErrorKind = "NotOnnx" | "Truncated" | "TooLarge" | "Invalid" | "ExternalData" | "FileSystem"

export class OnnxError extends Data.TaggedError("OnnxError")<{
  readonly kind: OnnxErrorKind
  readonly reason: string
  readonly file?: string
}> {
  override get message() {
    return this.file === undefined ? this.reason : `${this.file}: ${this.reason}`
  }
}

export const DataType = {
  UNDEFINED: 0, FLOAT: 1, UINT8: 2, INT8: 3, UINT16: 4, INT16: 5, INT32: 6, INT64: 7, STRING: 8, BOOL: 9,
  FLOAT16: 10, DOUBLE: 11, UINT32: 12, UINT64: 13, COMPLEX64: 14, COMPLEX128: 15, BFLOAT16: 16,
  FLOAT8E4M3FN: 17, FLOAT8E4M3FNUZ: 18, FLOAT8E5M2: 19, FLOAT8E5M2FNUZ: 20, UINT4: 21, INT4: 22,
  FLOAT4E2M1: 23, FLOAT8E8M0: 24, UINT2: 25, INT2: 26
} as const

export const AttributeType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14
} as const

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const

/** Raw fields (tag and value) the codec does not model, re-emitted unchanged after the known ones. */
export type UnknownFields = ReadonlyArray<Uint8Array>

export interface StringStringEntry {
  readonly key: string
  readonly value: string
}

export interface OperatorSetId {
  /** Absent or "" is the default ONNX domain. */
  readonly domain?: string
  readonly version: number
}

export interface OnnxModel {
  readonly irVersion: number
  readonly producerName?: string
  readonly producerVersion?: string
  readonly domain?: string
  readonly modelVersion?: number
  readonly docString?: string
  readonly graph: OnnxGraph
  readonly opsetImports: ReadonlyArray<OperatorSetId>
  readonly metadataProps?: ReadonlyArray<StringStringEntry>
  /** Opaque TrainingInfoProto messages. */
  readonly trainingInfo?: ReadonlyArray<Uint8Array>
  /** Opaque FunctionProto messages (model-local functions). */
  readonly functions?: ReadonlyArray<Uint8Array>
  readonly unknownFields?: UnknownFields
}

export interface OnnxGraph {
  readonly name?: string
  /** Topologically sorted. */
  readonly nodes: ReadonlyArray<OnnxNode>
  readonly initializers: ReadonlyArray<OnnxTensor>
  readonly inputs: ReadonlyArray<OnnxValueInfo>
  readonly outputs: ReadonlyArray<OnnxValueInfo>
  readonly valueInfo: ReadonlyArray<OnnxValueInfo>
  readonly docString?: string
  /** Opaque TensorAnnotation messages. */
  readonly quantizationAnnotations?: ReadonlyArray<Uint8Array>
  /** Opaque SparseTensorProto messages. */
  readonly sparseInitializers?: ReadonlyArray<Uint8Array>
  readonly metadataProps?: ReadonlyArray<StringStringEntry>
  readonly unknownFields?: UnknownFields
}

export interface OnnxNode {
  /** "" marks an omitted optional input. */
  readonly inputs: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
  readonly name?: string
  readonly opType: string
  readonly domain?: string
  readonly overload?: string
  readonly attributes: ReadonlyArray<OnnxAttribute>
  readonly docString?: string
  readonly metadataProps?: ReadonlyArray<StringStringEntry>
  readonly unknownFields?: UnknownFields
}

/** One of f..typeProtos is set, as `type` says (AttributeType). */
export interface OnnxAttribute {
  readonly name: string
  readonly type: number
  readonly refAttrName?: string
  readonly docString?: string
  readonly f?: number
  readonly i?: bigint
  readonly s?: Uint8Array
  readonly t?: OnnxTensor
  readonly g?: OnnxGraph
  /** Opaque SparseTensorProto. */
  readonly sparseTensor?: Uint8Array
  readonly tp?: OnnxType
  readonly floats?: ReadonlyArray<number>
  readonly ints?: ReadonlyArray<bigint>
  readonly strings?: ReadonlyArray<Uint8Array>
  readonly tensors?: ReadonlyArray<OnnxTensor>
  readonly graphs?: ReadonlyArray<OnnxGraph>
  readonly sparseTensors?: ReadonlyArray<Uint8Array>
  readonly typeProtos?: ReadonlyArray<OnnxType>
  readonly unknownFields?: UnknownFields
}

/**
 * A tensor. Its elements are in exactly one of rawData (little-endian, fixed width) or a typed field,
 * or in an external file (dataLocation EXTERNAL, described by externalData). rawData read from a file
 * is a view into the file's bytes.
 */
export interface OnnxTensor {
  readonly name?: string
  readonly dataType: number
  readonly dims: ReadonlyArray<number>
  /** Opaque TensorProto.Segment. */
  readonly segment?: Uint8Array
  readonly floatData?: Float32Array
  /** int32, int16, int8, uint16, uint8, bool, and float16/bfloat16 as bit patterns. */
  readonly int32Data?: Int32Array
  readonly stringData?: ReadonlyArray<Uint8Array>
  readonly int64Data?: BigInt64Array
  readonly rawData?: Uint8Array
  readonly doubleData?: Float64Array
  /** uint32 and uint64. */
  readonly uint64Data?: BigUint64Array
  readonly docString?: string
  readonly externalData?: ReadonlyArray<StringStringEntry>
  readonly dataLocation?: number
  readonly metadataProps?: ReadonlyArray<StringStringEntry>
  readonly unknownFields?: UnknownFields
}

export interface OnnxValueInfo {
  readonly name: string
  readonly type?: OnnxType
  readonly docString?: string
  readonly metadataProps?: ReadonlyArray<StringStringEntry>
  readonly unknownFields?: UnknownFields
}

/** A TypeProto: tensor types are modelled; sequence, map, optional, sparse and opaque types stay in unknownFields. */
export interface OnnxType {
  readonly tensorType?: OnnxTensorType
  readonly denotation?: string
  readonly unknownFields?: UnknownFields
}

export interface OnnxTensorType {
  readonly elemType: number
  /** Absent: rank unknown. */
  readonly shape?: ReadonlyArray<OnnxDimension>
  readonly unknownFields?: UnknownFields
}

/** A dimension: a fixed size, a symbolic name, or (neither) unknown. */
export interface OnnxDimension {
  readonly value?: number
  readonly param?: string
  readonly denotation?: string
  readonly unknownFields?: UnknownFields
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

// ---- decoding ----

const tag = (field: number, wireType: number) => field * 8 + wireType
const keep = (r: ProtoReader, wireTag: number, start: number, into: Array<Uint8Array> | undefined): Array<Uint8Array> => {
  r.skip(wireTag & 7)
  const list = into ?? []
  list.push(r.bytes.subarray(start, r.pos))
  return list
}
const nested = <T>(r: ProtoReader, decode: (r: ProtoReader) => T): T => {
  const outer = r.enter()
  const value = decode(r)
  r.leave(outer)
  return value
}
const varintCount = (bytes: Uint8Array, start: number, end: number): number => {
  let count = 0
  for (let i = start; i < end; i++) if (bytes[i]! < 0x80) count++
  return count
}
const joined = <A extends Float32Array | Float64Array | Int32Array | BigInt64Array | BigUint64Array>(
  parts: Array<A>,
  make: (length: number) => A
): A => {
  if (parts.length === 1) return parts[0]!
  const all = make(parts.reduce((sum, part) => sum + part.length, 0))
  let at = 0
  for (const part of parts) {
    ;(all as unknown as { set(a: A, at: number): void }).set(part, at)
    at += part.length
  }
  return all
}

const decodeEntry = (r: ProtoReader): StringStringEntry => {
  let key = ""
  let value = ""
  while (r.pos < r.limit) {
    const t = r.uint32()
    if (t === tag(1, 2)) key = r.string()
    else if (t === tag(2, 2)) value = r.string()
    else r.skip(t & 7)
  }
  return { key, value }
}

const decodeOpset = (r: ProtoReader): OperatorSetId => {
  const opset: Mutable<OperatorSetId> = { version: 0 }
  while (r.pos < r.limit) {
    const t = r.uint32()
    if (t === tag(1, 2)) opset.domain = r.string()
    else if (t === tag(2, 0)) opset.version = r.int64Number()
    else r.skip(t & 7)
  }
  return opset
}

const decodeDimension = (r: ProtoReader): OnnxDimension => {
  const dim: Mutable<OnnxDimension> = {}
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    if (t === tag(1, 0)) dim.value = r.int64Number()
    else if (t === tag(2, 2)) dim.param = r.string()
    else if (t === tag(3, 2)) dim.denotation = r.string()
    else unknown = keep(r, t, start, unknown)
  }
  if (unknown) dim.unknownFields = unknown
  return dim
}

const decodeShape = (r: ProtoReader): Array<OnnxDimension> => {
  const dims: Array<OnnxDimension> = []
  while (r.pos < r.limit) {
    const t = r.uint32()
    if (t === tag(1, 2)) dims.push(nested(r, decodeDimension))
    else r.skip(t & 7)
  }
  return dims
}

const decodeTensorType = (r: ProtoReader): OnnxTensorType => {
  const type: Mutable<OnnxTensorType> = { elemType: 0 }
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    if (t === tag(1, 0)) type.elemType = r.int32()
    else if (t === tag(2, 2)) type.shape = nested(r, decodeShape)
    else unknown = keep(r, t, start, unknown)
  }
  if (unknown) type.unknownFields = unknown
  return type
}

const decodeType = (r: ProtoReader): OnnxType => {
  const type: Mutable<OnnxType> = {}
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    if (t === tag(1, 2)) type.tensorType = nested(r, decodeTensorType)
    else if (t === tag(6, 2)) type.denotation = r.string()
    else unknown = keep(r, t, start, unknown)
  }
  if (unknown) type.unknownFields = unknown
  return type
}

const decodeValueInfo = (r: ProtoReader): OnnxValueInfo => {
  const info: Mutable<OnnxValueInfo> = { name: "" }
  let metadata: Array<StringStringEntry> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    if (t === tag(1, 2)) info.name = r.string()
    else if (t === tag(2, 2)) info.type = nested(r, decodeType)
    else if (t === tag(3, 2)) info.docString = r.string()
    else if (t === tag(4, 2)) (metadata ??= []).push(nested(r, decodeEntry))
    else unknown = keep(r, t, start, unknown)
  }
  if (metadata) info.metadataProps = metadata
  if (unknown) info.unknownFields = unknown
  return info
}

const decodeTensor = (r: ProtoReader): OnnxTensor => {
  const tensor: Mutable<OnnxTensor> = { dataType: 0, dims: [] }
  const dims: Array<number> = []
  const floats: Array<Float32Array> = []
  const int32s: Array<Int32Array> = []
  const int64s: Array<BigInt64Array> = []
  const doubles: Array<Float64Array> = []
  const uint64s: Array<BigUint64Array> = []
  let strings: Array<Uint8Array> | undefined
  let external: Array<StringStringEntry> | undefined
  let metadata: Array<StringStringEntry> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    switch (t) {
      case tag(1, 0): dims.push(r.int64Number()); break
      case tag(1, 2): { const end = r.packedEnd(); while (r.pos < end) dims.push(r.int64Number()); break }
      case tag(2, 0): tensor.dataType = r.int32(); break
      case tag(3, 2): tensor.segment = r.bytesField(); break
      case tag(4, 2): { const b = r.packedFixed(4); floats.push(new Float32Array(b.buffer, 0, b.length / 4)); break }
      case tag(4, 5): floats.push(Float32Array.of(r.float())); break
      case tag(5, 0): int32s.push(Int32Array.of(r.int32())); break
      case tag(5, 2): {
        const end = r.packedEnd()
        const values = new Int32Array(varintCount(r.bytes, r.pos, end))
        for (let i = 0; r.pos < end; i++) values[i] = r.int32()
        int32s.push(values)
        break
      }
      case tag(6, 2): (strings ??= []).push(r.bytesField()); break
      case tag(7, 0): int64s.push(BigInt64Array.of(r.int64())); break
      case tag(7, 2): {
        const end = r.packedEnd()
        const values = new BigInt64Array(varintCount(r.bytes, r.pos, end))
        for (let i = 0; r.pos < end; i++) values[i] = r.int64()
        int64s.push(values)
        break
      }
      case tag(8, 2): tensor.name = r.string(); break
      case tag(9, 2): tensor.rawData = r.bytesField(); break
      case tag(10, 1): doubles.push(Float64Array.of(r.double())); break
      case tag(10, 2): { const b = r.packedFixed(8); doubles.push(new Float64Array(b.buffer, 0, b.length / 8)); break }
      case tag(11, 0): uint64s.push(BigUint64Array.of(r.uint64())); break
      case tag(11, 2): {
        const end = r.packedEnd()
        const values = new BigUint64Array(varintCount(r.bytes, r.pos, end))
        for (let i = 0; r.pos < end; i++) values[i] = r.uint64()
        uint64s.push(values)
        break
      }
      case tag(12, 2): tensor.docString = r.string(); break
      case tag(13, 2): (external ??= []).push(nested(r, decodeEntry)); break
      case tag(14, 0): tensor.dataLocation = r.int32(); break
      case tag(16, 2): (metadata ??= []).push(nested(r, decodeEntry)); break
      default: unknown = keep(r, t, start, unknown)
    }
  }
  tensor.dims = dims
  if (floats.length > 0) tensor.floatData = joined(floats, (n) => new Float32Array(n))
  if (int32s.length > 0) tensor.int32Data = joined(int32s, (n) => new Int32Array(n))
  if (int64s.length > 0) tensor.int64Data = joined(int64s, (n) => new BigInt64Array(n))
  if (doubles.length > 0) tensor.doubleData = joined(doubles, (n) => new Float64Array(n))
  if (uint64s.length > 0) tensor.uint64Data = joined(uint64s, (n) => new BigUint64Array(n))
  if (strings) tensor.stringData = strings
  if (external) tensor.externalData = external
  if (metadata) tensor.metadataProps = metadata
  if (unknown) tensor.unknownFields = unknown
  return tensor
}

const decodeAttribute = (r: ProtoReader): OnnxAttribute => {
  const attribute: Mutable<OnnxAttribute> = { name: "", type: 0 }
  let floats: Array<number> | undefined
  let ints: Array<bigint> | undefined
  let strings: Array<Uint8Array> | undefined
  let tensors: Array<OnnxTensor> | undefined
  let graphs: Array<OnnxGraph> | undefined
  let sparseTensors: Array<Uint8Array> | undefined
  let typeProtos: Array<OnnxType> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    switch (t) {
      case tag(1, 2): attribute.name = r.string(); break
      case tag(2, 5): attribute.f = r.float(); break
      case tag(3, 0): attribute.i = r.int64(); break
      case tag(4, 2): attribute.s = r.bytesField(); break
      case tag(5, 2): attribute.t = nested(r, decodeTensor); break
      case tag(6, 2): attribute.g = nested(r, decodeGraph); break
      case tag(7, 5): (floats ??= []).push(r.float()); break
      case tag(7, 2): { const end = r.packedEnd(); floats ??= []; while (r.pos < end) floats.push(r.float()); break }
      case tag(8, 0): (ints ??= []).push(r.int64()); break
      case tag(8, 2): { const end = r.packedEnd(); ints ??= []; while (r.pos < end) ints.push(r.int64()); break }
      case tag(9, 2): (strings ??= []).push(r.bytesField()); break
      case tag(10, 2): (tensors ??= []).push(nested(r, decodeTensor)); break
      case tag(11, 2): (graphs ??= []).push(nested(r, decodeGraph)); break
      case tag(13, 2): attribute.docString = r.string(); break
      case tag(14, 2): attribute.tp = nested(r, decodeType); break
      case tag(15, 2): (typeProtos ??= []).push(nested(r, decodeType)); break
      case tag(20, 0): attribute.type = r.int32(); break
      case tag(21, 2): attribute.refAttrName = r.string(); break
      case tag(22, 2): attribute.sparseTensor = r.bytesField(); break
      case tag(23, 2): (sparseTensors ??= []).push(r.bytesField()); break
      default: unknown = keep(r, t, start, unknown)
    }
  }
  if (floats) attribute.floats = floats
  if (ints) attribute.ints = ints
  if (strings) attribute.strings = strings
  if (tensors) attribute.tensors = tensors
  if (graphs) attribute.graphs = graphs
  if (sparseTensors) attribute.sparseTensors = sparseTensors
  if (typeProtos) attribute.typeProtos = typeProtos
  if (unknown) attribute.unknownFields = unknown
  return attribute
}

const decodeNode = (r: ProtoReader): OnnxNode => {
  const inputs: Array<string> = []
  const outputs: Array<string> = []
  const attributes: Array<OnnxAttribute> = []
  const node: Mutable<OnnxNode> = { inputs, outputs, opType: "", attributes }
  let metadata: Array<StringStringEntry> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    switch (t) {
      case tag(1, 2): inputs.push(r.string()); break
      case tag(2, 2): outputs.push(r.string()); break
      case tag(3, 2): node.name = r.string(); break
      case tag(4, 2): node.opType = r.string(); break
      case tag(5, 2): attributes.push(nested(r, decodeAttribute)); break
      case tag(6, 2): node.docString = r.string(); break
      case tag(7, 2): node.domain = r.string(); break
      case tag(8, 2): node.overload = r.string(); break
      case tag(9, 2): (metadata ??= []).push(nested(r, decodeEntry)); break
      default: unknown = keep(r, t, start, unknown)
    }
  }
  if (metadata) node.metadataProps = metadata
  if (unknown) node.unknownFields = unknown
  return node
}

function decodeGraph(r: ProtoReader): OnnxGraph {
  const nodes: Array<OnnxNode> = []
  const initializers: Array<OnnxTensor> = []
  const inputs: Array<OnnxValueInfo> = []
  const outputs: Array<OnnxValueInfo> = []
  const valueInfo: Array<OnnxValueInfo> = []
  const graph: Mutable<OnnxGraph> = { nodes, initializers, inputs, outputs, valueInfo }
  let annotations: Array<Uint8Array> | undefined
  let sparse: Array<Uint8Array> | undefined
  let metadata: Array<StringStringEntry> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    switch (t) {
      case tag(1, 2): nodes.push(nested(r, decodeNode)); break
      case tag(2, 2): graph.name = r.string(); break
      case tag(5, 2): initializers.push(nested(r, decodeTensor)); break
      case tag(10, 2): graph.docString = r.string(); break
      case tag(11, 2): inputs.push(nested(r, decodeValueInfo)); break
      case tag(12, 2): outputs.push(nested(r, decodeValueInfo)); break
      case tag(13, 2): valueInfo.push(nested(r, decodeValueInfo)); break
      case tag(14, 2): (annotations ??= []).push(r.bytesField()); break
      case tag(15, 2): (sparse ??= []).push(r.bytesField()); break
      case tag(16, 2): (metadata ??= []).push(nested(r, decodeEntry)); break
      default: unknown = keep(r, t, start, unknown)
    }
  }
  if (annotations) graph.quantizationAnnotations = annotations
  if (sparse) graph.sparseInitializers = sparse
  if (metadata) graph.metadataProps = metadata
  if (unknown) graph.unknownFields = unknown
  return graph
}

const decodeModel = (r: ProtoReader): OnnxModel => {
  const opsetImports: Array<OperatorSetId> = []
  const model: Mutable<Partial<OnnxModel>> = { opsetImports }
  let metadata: Array<StringStringEntry> | undefined
  let training: Array<Uint8Array> | undefined
  let functions: Array<Uint8Array> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const start = r.pos
    const t = r.uint32()
    switch (t) {
      case tag(1, 0): model.irVersion = r.int64Number(); break
      case tag(2, 2): model.producerName = r.string(); break
      case tag(3, 2): model.producerVersion = r.string(); break
      case tag(4, 2): model.domain = r.string(); break
      case tag(5, 0): model.modelVersion = r.int64Number(); break
      case tag(6, 2): model.docString = r.string(); break
      case tag(7, 2): model.graph = nested(r, decodeGraph); break
      case tag(8, 2): opsetImports.push(nested(r, decodeOpset)); break
      case tag(14, 2): (metadata ??= []).push(nested(r, decodeEntry)); break
      case tag(20, 2): (training ??= []).push(r.bytesField()); break
      case tag(25, 2): (functions ??= []).push(r.bytesField()); break
      default: unknown = keep(r, t, start, unknown)
    }
  }
  if (metadata) model.metadataProps = metadata
  if (training) model.trainingInfo = training
  if (functions) model.functions = functions
  if (unknown) model.unknownFields = unknown
  return model as OnnxModel
}

const notOnnx = (reason: string) => new OnnxError({ kind: "NotOnnx", reason: `not an ONNX model: ${reason}` })

/**
 * Tells garbage from a cut-off file before decoding: the top level must be ModelProto fields, starting
 * from a plausible ir_version; a field running past the end after that is truncation.
 */
const checkEnvelope = (bytes: Uint8Array): void => {
  if (bytes.length === 0) throw notOnnx("the file is empty")
  const r = new ProtoReader(bytes)
  let irVersion: number | undefined
  let hasGraph = false
  let hasOpset = false
  let lastField = 0
  while (r.pos < r.limit) {
    const start = r.pos
    try {
      const t = r.uint32()
      const field = t >>> 3
      const wireType = t & 7
      if (field === 0 || wireType === 3 || wireType === 4 || wireType > 5) throw notOnnx(`invalid protobuf tag at byte ${start}`)
      if (field === 1) {
        if (wireType !== 0) throw notOnnx(`ir_version at byte ${start} is not an integer`)
        irVersion = r.int64Number()
        if (irVersion < 1 || irVersion > 64) throw notOnnx(`ir_version ${irVersion} is not an ONNX IR version`)
        continue
      }
      if (irVersion === undefined) throw notOnnx(`it does not start with an ir_version field`)
      if (field >= 2 && field <= 8 && wireType !== (field === 5 ? 0 : 2)) throw notOnnx(`field ${field} at byte ${start} has the wrong wire type`)
      if (field === 7) hasGraph = true
      if (field === 8) hasOpset = true
      lastField = field
      r.skip(wireType)
    } catch (error) {
      if (error instanceof ProtobufError) {
        if (irVersion !== undefined && error.kind === "truncated") {
          throw new OnnxError({
            kind: "Truncated",
            reason: `truncated ONNX file at byte ${bytes.length}: the field starting at byte ${start} runs past the end`
          })
        }
        throw notOnnx(`${error.detail} at byte ${error.offset}`)
      }
      throw error
    }
  }
  if (irVersion === undefined) throw notOnnx("no ir_version")
  if (!hasGraph) throw notOnnx("no graph")
  if (!hasOpset && irVersion >= 3) {
    // Writers put opset_import right after the graph: a file ending there was most likely cut.
    if (lastField === 7) {
      throw new OnnxError({ kind: "Truncated", reason: `truncated ONNX file at byte ${bytes.length}: it ends after the graph, before opset_import` })
    }
    throw notOnnx("no opset_import")
  }
}

/** Decodes a model. Tensor bytes (rawData) stay views into `bytes`. Throws OnnxError. */
export const readModel = (bytes: Uint8Array): OnnxModel => {
  checkEnvelope(bytes)
  try {
    return decodeModel(new ProtoReader(bytes))
  } catch (error) {
    if (error instanceof ProtobufError) throw notOnnx(`${error.kind} field at byte ${error.offset} (${error.detail})`)
    throw error
  }
}

// ---- encoding (fields in number order, as protobuf's C++ serializer writes them; unknown fields last) ----

const encodeEntry = (entry: StringStringEntry, s: ProtoSink): void => {
  s.string(1, entry.key)
  s.string(2, entry.value)
}
const encodeEntries = (field: number, entries: ReadonlyArray<StringStringEntry> | undefined, s: ProtoSink): void => {
  if (entries) for (const entry of entries) s.message(field, entry, encodeEntry)
}
const encodeOpaque = (field: number, payloads: ReadonlyArray<Uint8Array> | undefined, s: ProtoSink): void => {
  if (payloads) for (const payload of payloads) s.bytes(field, payload)
}
const encodeUnknown = (fields: UnknownFields | undefined, s: ProtoSink): void => {
  if (fields) for (const field of fields) s.raw(field)
}

const encodeOpset = (opset: OperatorSetId, s: ProtoSink): void => {
  if (opset.domain !== undefined) s.string(1, opset.domain)
  s.varint(2, opset.version)
}

const encodeDimension = (dim: OnnxDimension, s: ProtoSink): void => {
  if (dim.value !== undefined) s.varint(1, dim.value)
  if (dim.param !== undefined) s.string(2, dim.param)
  if (dim.denotation !== undefined) s.string(3, dim.denotation)
  encodeUnknown(dim.unknownFields, s)
}
const encodeShape = (dims: ReadonlyArray<OnnxDimension>, s: ProtoSink): void => {
  for (const dim of dims) s.message(1, dim, encodeDimension)
}
const encodeTensorType = (type: OnnxTensorType, s: ProtoSink): void => {
  s.varint(1, type.elemType)
  if (type.shape) s.message(2, type.shape, encodeShape)
  encodeUnknown(type.unknownFields, s)
}
const encodeType = (type: OnnxType, s: ProtoSink): void => {
  if (type.tensorType) s.message(1, type.tensorType, encodeTensorType)
  if (type.denotation !== undefined) s.string(6, type.denotation)
  encodeUnknown(type.unknownFields, s)
}

const encodeValueInfo = (info: OnnxValueInfo, s: ProtoSink): void => {
  s.string(1, info.name)
  if (info.type) s.message(2, info.type, encodeType)
  if (info.docString !== undefined) s.string(3, info.docString)
  encodeEntries(4, info.metadataProps, s)
  encodeUnknown(info.unknownFields, s)
}

const encodeTensor = (tensor: OnnxTensor, s: ProtoSink): void => {
  for (const dim of tensor.dims) s.varint(1, dim)
  s.varint(2, tensor.dataType)
  if (tensor.segment) s.bytes(3, tensor.segment)
  if (tensor.floatData && tensor.floatData.length > 0) s.packedFixed(4, tensor.floatData)
  if (tensor.int32Data && tensor.int32Data.length > 0) s.packedInt32(5, tensor.int32Data)
  if (tensor.stringData) for (const text of tensor.stringData) s.bytes(6, text)
  if (tensor.int64Data && tensor.int64Data.length > 0) s.packedInt64(7, tensor.int64Data)
  if (tensor.name !== undefined) s.string(8, tensor.name)
  if (tensor.rawData) s.bytes(9, tensor.rawData)
  if (tensor.doubleData && tensor.doubleData.length > 0) s.packedFixed(10, tensor.doubleData)
  if (tensor.uint64Data && tensor.uint64Data.length > 0) s.packedInt64(11, tensor.uint64Data)
  if (tensor.docString !== undefined) s.string(12, tensor.docString)
  encodeEntries(13, tensor.externalData, s)
  if (tensor.dataLocation !== undefined) s.varint(14, tensor.dataLocation)
  encodeEntries(16, tensor.metadataProps, s)
  encodeUnknown(tensor.unknownFields, s)
}

const encodeAttribute = (a: OnnxAttribute, s: ProtoSink): void => {
  s.string(1, a.name)
  if (a.f !== undefined) s.float(2, a.f)
  if (a.i !== undefined) s.int64(3, a.i)
  if (a.s) s.bytes(4, a.s)
  if (a.t) s.message(5, a.t, encodeTensor)
  if (a.g) s.message(6, a.g, encodeGraph)
  if (a.floats) for (const f of a.floats) s.float(7, f)
  if (a.ints) for (const i of a.ints) s.int64(8, i)
  if (a.strings) for (const text of a.strings) s.bytes(9, text)
  if (a.tensors) for (const t of a.tensors) s.message(10, t, encodeTensor)
  if (a.graphs) for (const g of a.graphs) s.message(11, g, encodeGraph)
  if (a.docString !== undefined) s.string(13, a.docString)
  if (a.tp) s.message(14, a.tp, encodeType)
  if (a.typeProtos) for (const tp of a.typeProtos) s.message(15, tp, encodeType)
  if (a.type !== 0) s.varint(20, a.type)
  if (a.refAttrName !== undefined) s.string(21, a.refAttrName)
  if (a.sparseTensor) s.bytes(22, a.sparseTensor)
  encodeOpaque(23, a.sparseTensors, s)
  encodeUnknown(a.unknownFields, s)
}

const encodeNode = (node: OnnxNode, s: ProtoSink): void => {
  for (const input of node.inputs) s.string(1, input)
  for (const output of node.outputs) s.string(2, output)
  if (node.name !== undefined) s.string(3, node.name)
  s.string(4, node.opType)
  for (const attribute of node.attributes) s.message(5, attribute, encodeAttribute)
  if (node.docString !== undefined) s.string(6, node.docString)
  if (node.domain !== undefined) s.string(7, node.domain)
  if (node.overload !== undefined) s.string(8, node.overload)
  encodeEntries(9, node.metadataProps, s)
  encodeUnknown(node.unknownFields, s)
}

function encodeGraph(graph: OnnxGraph, s: ProtoSink): void {
  for (const node of graph.nodes) s.message(1, node, encodeNode)
  if (graph.name !== undefined) s.string(2, graph.name)
  for (const tensor of graph.initializers) s.message(5, tensor, encodeTensor)
  if (graph.docString !== undefined) s.string(10, graph.docString)
  for (const input of graph.inputs) s.message(11, input, encodeValueInfo)
  for (const output of graph.outputs) s.message(12, output, encodeValueInfo)
  for (const info of graph.valueInfo) s.message(13, info, encodeValueInfo)
  encodeOpaque(14, graph.quantizationAnnotations, s)
  encodeOpaque(15, graph.sparseInitializers, s)
  encodeEntries(16, graph.metadataProps, s)
  encodeUnknown(graph.unknownFields, s)
}

const encodeModel = (model: OnnxModel, s: ProtoSink): void => {
  s.varint(1, model.irVersion)
  if (model.producerName !== undefined) s.string(2, model.producerName)
  if (model.producerVersion !== undefined) s.string(3, model.producerVersion)
  if (model.domain !== undefined) s.string(4, model.domain)
  if (model.modelVersion !== undefined) s.varint(5, model.modelVersion)
  if (model.docString !== undefined) s.string(6, model.docString)
  s.message(7, model.graph, encodeGraph)
  for (const opset of model.opsetImports) s.message(8, opset, encodeOpset)
  encodeEntries(14, model.metadataProps, s)
  encodeOpaque(20, model.trainingInfo, s)
  encodeOpaque(25, model.functions, s)
  encodeUnknown(model.unknownFields, s)
}

/** Protobuf cannot encode a message of 2 GiB or more; such models keep their tensors in external data. */
export const maxModelBytes = 2 ** 31 - 1

/** The size `writeModel` would produce, without writing. */
export const encodedModelSize = (model: OnnxModel): number => measure(model, encodeModel).size

/** Encodes a model into one buffer of exactly its size. Throws OnnxError (TooLarge) past 2 GiB. */
export const writeModel = (model: OnnxModel): Uint8Array => {
  const sizer = measure(model, encodeModel)
  if (sizer.size > maxModelBytes) {
    throw new OnnxError({
      kind: "TooLarge",
      reason: `the model encodes to ${sizer.size} bytes, over protobuf's 2 GiB limit: write it with external data`
    })
  }
  return encodeMessage(model, encodeModel, sizer)
}
