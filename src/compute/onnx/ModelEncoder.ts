/**
 * Encodes OnnxModel values as ONNX's ModelProto, fields in number order as protobuf's C++ serializer
 * writes them, and the unknown fields a decoded model kept last, as read.
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
  StringStringEntry,
  UnknownFields
} from "./OnnxModel.js"
import type { ProtoSink } from "./Protobuf.js"

const encodeEntry = (entry: StringStringEntry, s: ProtoSink): void => {
  s.string(1, entry.key)
  s.string(2, entry.value)
}
const encodeEntries = (field: number, entries: ReadonlyArray<StringStringEntry> | undefined, s: ProtoSink): void => {
  if (entries) { for (const entry of entries) s.message(field, entry, encodeEntry) }
}
const encodeOpaque = (field: number, payloads: ReadonlyArray<Uint8Array> | undefined, s: ProtoSink): void => {
  if (payloads) { for (const payload of payloads) s.bytes(field, payload) }
}
const encodeUnknown = (fields: UnknownFields | undefined, s: ProtoSink): void => {
  if (fields) { for (const field of fields) s.raw(field) }
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
  if (tensor.stringData) { for (const text of tensor.stringData) s.bytes(6, text) }
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
  if (a.floats) { for (const f of a.floats) s.float(7, f) }
  if (a.ints) { for (const i of a.ints) s.int64(8, i) }
  if (a.strings) { for (const text of a.strings) s.bytes(9, text) }
  if (a.tensors) { for (const t of a.tensors) s.message(10, t, encodeTensor) }
  if (a.graphs) { for (const g of a.graphs) s.message(11, g, encodeGraph) }
  if (a.docString !== undefined) s.string(13, a.docString)
  if (a.tp) s.message(14, a.tp, encodeType)
  if (a.typeProtos) { for (const tp of a.typeProtos) s.message(15, tp, encodeType) }
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

export const encodeModel = (model: OnnxModel, s: ProtoSink): void => {
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
