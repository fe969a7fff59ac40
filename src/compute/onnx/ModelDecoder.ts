/**
 * Decodes ONNX's ModelProto from protobuf bytes into OnnxModel values, field by field; fields it does
 * not model are kept byte for byte in `unknownFields`. `readModel` checks the envelope first.
 */
import type {
  OnnxAttribute,
  OnnxDimension,
  OnnxGraph,
  OnnxModel,
  OnnxNode,
  OnnxTensor,
  OnnxTensorType,
  OnnxType,
  OnnxValueInfo,
  OperatorSetId,
  StringStringEntry
} from "./OnnxModel.js"
import type { ProtoReader } from "./Protobuf.js"

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

const tag = (field: number, wireType: number) => field * 8 + wireType
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
    // eslint-disable-next-line no-restricted-syntax -- every typed array has set(); TypeScript cannot name it over the union A of typed-array types
    ;(all as unknown as { set(a: A, at: number): void }).set(part, at)
    at += part.length
  }
  return all
}

const decodeEntry = (r: ProtoReader): StringStringEntry => {
  let key = ""
  let value = ""
  while (r.pos < r.limit) {
    const t = r.tag()
    if (t === tag(1, 2)) key = r.string()
    else if (t === tag(2, 2)) value = r.string()
    else r.skip(t & 7)
  }
  return { key, value }
}

const decodeOpset = (r: ProtoReader): OperatorSetId => {
  const opset: Mutable<OperatorSetId> = { version: 0 }
  while (r.pos < r.limit) {
    const t = r.tag()
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
    const t = r.tag()
    if (t === tag(1, 0)) dim.value = r.int64Number()
    else if (t === tag(2, 2)) dim.param = r.string()
    else if (t === tag(3, 2)) dim.denotation = r.string()
    else (unknown ??= []).push(r.rawField())
  }
  if (unknown) dim.unknownFields = unknown
  return dim
}

const decodeShape = (r: ProtoReader): Array<OnnxDimension> => {
  const dims: Array<OnnxDimension> = []
  while (r.pos < r.limit) {
    const t = r.tag()
    if (t === tag(1, 2)) dims.push(nested(r, decodeDimension))
    else r.skip(t & 7)
  }
  return dims
}

const decodeTensorType = (r: ProtoReader): OnnxTensorType => {
  const type: Mutable<OnnxTensorType> = { elemType: 0 }
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const t = r.tag()
    if (t === tag(1, 0)) type.elemType = r.int32()
    else if (t === tag(2, 2)) type.shape = nested(r, decodeShape)
    else (unknown ??= []).push(r.rawField())
  }
  if (unknown) type.unknownFields = unknown
  return type
}

const decodeType = (r: ProtoReader): OnnxType => {
  const type: Mutable<OnnxType> = {}
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const t = r.tag()
    if (t === tag(1, 2)) type.tensorType = nested(r, decodeTensorType)
    else if (t === tag(6, 2)) type.denotation = r.string()
    else (unknown ??= []).push(r.rawField())
  }
  if (unknown) type.unknownFields = unknown
  return type
}

const decodeValueInfo = (r: ProtoReader): OnnxValueInfo => {
  const info: Mutable<OnnxValueInfo> = { name: "" }
  let metadata: Array<StringStringEntry> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    const t = r.tag()
    if (t === tag(1, 2)) info.name = r.string()
    else if (t === tag(2, 2)) info.type = nested(r, decodeType)
    else if (t === tag(3, 2)) info.docString = r.string()
    else if (t === tag(4, 2)) (metadata ??= []).push(nested(r, decodeEntry))
    else (unknown ??= []).push(r.rawField())
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
    switch (r.tag()) {
      case tag(1, 0):
        dims.push(r.int64Number())
        break
      case tag(1, 2): {
        const end = r.packedEnd()
        while (r.pos < end) dims.push(r.int64Number())
        break
      }
      case tag(2, 0):
        tensor.dataType = r.int32()
        break
      case tag(3, 2):
        tensor.segment = r.bytesField()
        break
      case tag(4, 2): {
        const b = r.packedFixed(4)
        floats.push(new Float32Array(b.buffer, 0, b.length / 4))
        break
      }
      case tag(4, 5):
        floats.push(Float32Array.of(r.float()))
        break
      case tag(5, 0):
        int32s.push(Int32Array.of(r.int32()))
        break
      case tag(5, 2): {
        const end = r.packedEnd()
        const values = new Int32Array(varintCount(r.bytes, r.pos, end))
        for (let i = 0; r.pos < end; i++) values[i] = r.int32()
        int32s.push(values)
        break
      }
      case tag(6, 2):
        ;(strings ??= []).push(r.bytesField())
        break
      case tag(7, 0):
        int64s.push(BigInt64Array.of(r.int64()))
        break
      case tag(7, 2): {
        const end = r.packedEnd()
        const values = new BigInt64Array(varintCount(r.bytes, r.pos, end))
        for (let i = 0; r.pos < end; i++) values[i] = r.int64()
        int64s.push(values)
        break
      }
      case tag(8, 2):
        tensor.name = r.string()
        break
      case tag(9, 2):
        tensor.rawData = r.bytesField()
        break
      case tag(10, 1):
        doubles.push(Float64Array.of(r.double()))
        break
      case tag(10, 2): {
        const b = r.packedFixed(8)
        doubles.push(new Float64Array(b.buffer, 0, b.length / 8))
        break
      }
      case tag(11, 0):
        uint64s.push(BigUint64Array.of(r.uint64()))
        break
      case tag(11, 2): {
        const end = r.packedEnd()
        const values = new BigUint64Array(varintCount(r.bytes, r.pos, end))
        for (let i = 0; r.pos < end; i++) values[i] = r.uint64()
        uint64s.push(values)
        break
      }
      case tag(12, 2):
        tensor.docString = r.string()
        break
      case tag(13, 2):
        ;(external ??= []).push(nested(r, decodeEntry))
        break
      case tag(14, 0):
        tensor.dataLocation = r.int32()
        break
      case tag(16, 2):
        ;(metadata ??= []).push(nested(r, decodeEntry))
        break
      default:
        ;(unknown ??= []).push(r.rawField())
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
    switch (r.tag()) {
      case tag(1, 2):
        attribute.name = r.string()
        break
      case tag(2, 5):
        attribute.f = r.float()
        break
      case tag(3, 0):
        attribute.i = r.int64()
        break
      case tag(4, 2):
        attribute.s = r.bytesField()
        break
      case tag(5, 2):
        attribute.t = nested(r, decodeTensor)
        break
      case tag(6, 2):
        attribute.g = nested(r, decodeGraph)
        break
      case tag(7, 5):
        ;(floats ??= []).push(r.float())
        break
      case tag(7, 2): {
        const end = r.packedEnd()
        floats ??= []
        while (r.pos < end) floats.push(r.float())
        break
      }
      case tag(8, 0):
        ;(ints ??= []).push(r.int64())
        break
      case tag(8, 2): {
        const end = r.packedEnd()
        ints ??= []
        while (r.pos < end) ints.push(r.int64())
        break
      }
      case tag(9, 2):
        ;(strings ??= []).push(r.bytesField())
        break
      case tag(10, 2):
        ;(tensors ??= []).push(nested(r, decodeTensor))
        break
      case tag(11, 2):
        ;(graphs ??= []).push(nested(r, decodeGraph))
        break
      case tag(13, 2):
        attribute.docString = r.string()
        break
      case tag(14, 2):
        attribute.tp = nested(r, decodeType)
        break
      case tag(15, 2):
        ;(typeProtos ??= []).push(nested(r, decodeType))
        break
      case tag(20, 0):
        attribute.type = r.int32()
        break
      case tag(21, 2):
        attribute.refAttrName = r.string()
        break
      case tag(22, 2):
        attribute.sparseTensor = r.bytesField()
        break
      case tag(23, 2):
        ;(sparseTensors ??= []).push(r.bytesField())
        break
      default:
        ;(unknown ??= []).push(r.rawField())
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
    switch (r.tag()) {
      case tag(1, 2):
        inputs.push(r.string())
        break
      case tag(2, 2):
        outputs.push(r.string())
        break
      case tag(3, 2):
        node.name = r.string()
        break
      case tag(4, 2):
        node.opType = r.string()
        break
      case tag(5, 2):
        attributes.push(nested(r, decodeAttribute))
        break
      case tag(6, 2):
        node.docString = r.string()
        break
      case tag(7, 2):
        node.domain = r.string()
        break
      case tag(8, 2):
        node.overload = r.string()
        break
      case tag(9, 2):
        ;(metadata ??= []).push(nested(r, decodeEntry))
        break
      default:
        ;(unknown ??= []).push(r.rawField())
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
    switch (r.tag()) {
      case tag(1, 2):
        nodes.push(nested(r, decodeNode))
        break
      case tag(2, 2):
        graph.name = r.string()
        break
      case tag(5, 2):
        initializers.push(nested(r, decodeTensor))
        break
      case tag(10, 2):
        graph.docString = r.string()
        break
      case tag(11, 2):
        inputs.push(nested(r, decodeValueInfo))
        break
      case tag(12, 2):
        outputs.push(nested(r, decodeValueInfo))
        break
      case tag(13, 2):
        valueInfo.push(nested(r, decodeValueInfo))
        break
      case tag(14, 2):
        ;(annotations ??= []).push(r.bytesField())
        break
      case tag(15, 2):
        ;(sparse ??= []).push(r.bytesField())
        break
      case tag(16, 2):
        ;(metadata ??= []).push(nested(r, decodeEntry))
        break
      default:
        ;(unknown ??= []).push(r.rawField())
    }
  }
  if (annotations) graph.quantizationAnnotations = annotations
  if (sparse) graph.sparseInitializers = sparse
  if (metadata) graph.metadataProps = metadata
  if (unknown) graph.unknownFields = unknown
  return graph
}

export const decodeModel = (r: ProtoReader): OnnxModel => {
  const opsetImports: Array<OperatorSetId> = []
  const model: Mutable<Partial<OnnxModel>> = { opsetImports }
  let metadata: Array<StringStringEntry> | undefined
  let training: Array<Uint8Array> | undefined
  let functions: Array<Uint8Array> | undefined
  let unknown: Array<Uint8Array> | undefined
  while (r.pos < r.limit) {
    switch (r.tag()) {
      case tag(1, 0):
        model.irVersion = r.int64Number()
        break
      case tag(2, 2):
        model.producerName = r.string()
        break
      case tag(3, 2):
        model.producerVersion = r.string()
        break
      case tag(4, 2):
        model.domain = r.string()
        break
      case tag(5, 0):
        model.modelVersion = r.int64Number()
        break
      case tag(6, 2):
        model.docString = r.string()
        break
      case tag(7, 2):
        model.graph = nested(r, decodeGraph)
        break
      case tag(8, 2):
        opsetImports.push(nested(r, decodeOpset))
        break
      case tag(14, 2):
        ;(metadata ??= []).push(nested(r, decodeEntry))
        break
      case tag(20, 2):
        ;(training ??= []).push(r.bytesField())
        break
      case tag(25, 2):
        ;(functions ??= []).push(r.bytesField())
        break
      default:
        ;(unknown ??= []).push(r.rawField())
    }
  }
  if (metadata) model.metadataProps = metadata
  if (training) model.trainingInfo = training
  if (functions) model.functions = functions
  if (unknown) model.unknownFields = unknown
  return model as OnnxModel
}
