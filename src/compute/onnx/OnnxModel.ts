/**
 * ONNX's ModelProto and what it contains, as plain TypeScript values, with a codec to and from bytes.
 * Fields this codec does not model are kept byte for byte in `unknownFields` and written back as read.
 */
import { Data } from "effect"
import { decodeModel } from "./ModelDecoder.js"
import { encodeModel } from "./ModelEncoder.js"
import { encodeMessage, measure, ProtobufError, ProtoReader } from "./Protobuf.js"

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
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
  UINT2: 25,
  INT2: 26
} as const

export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14
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
      if (field === 0 || wireType === 3 || wireType === 4 || wireType > 5) {
        throw notOnnx(`invalid protobuf tag at byte ${start}`)
      }
      if (field === 1) {
        if (wireType !== 0) throw notOnnx(`ir_version at byte ${start} is not an integer`)
        irVersion = r.int64Number()
        if (irVersion < 1 || irVersion > 64) throw notOnnx(`ir_version ${irVersion} is not an ONNX IR version`)
        continue
      }
      if (irVersion === undefined) throw notOnnx(`it does not start with an ir_version field`)
      if (field >= 2 && field <= 8 && wireType !== (field === 5 ? 0 : 2)) {
        throw notOnnx(`field ${field} at byte ${start} has the wrong wire type`)
      }
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
      throw new OnnxError({
        kind: "Truncated",
        reason: `truncated ONNX file at byte ${bytes.length}: it ends after the graph, before opset_import`
      })
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
