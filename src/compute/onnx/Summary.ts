/**
 * What is in an ONNX model, for `edge-net-models info`: versions, inputs and outputs, operators
 * (subgraphs included), parameters per data type and the largest tensors.
 */
import { allGraphs, constantTensor, isDefaultDomain } from "./Graph.js"
import { encodedModelSize, type OnnxModel, type OnnxType, type OnnxValueInfo } from "./OnnxModel.js"
import { fieldNumberOf } from "./Protobuf.js"
import { dataTypeName, elementCount, isExternal, tensorByteSize } from "./Tensors.js"

export interface ValueSummary {
  readonly name: string
  /** "tensor", "sequence", "map", "optional", "sparse_tensor", "opaque" or "unknown". */
  readonly kind: string
  /** Element type name for tensors. */
  readonly elemType?: string
  /** Dims: a size, a symbolic name, or null when unknown; absent when the rank is unknown. */
  readonly shape?: ReadonlyArray<number | string | null>
}

export interface ParameterGroup {
  readonly dataType: string
  readonly tensors: number
  readonly elements: number
  readonly bytes: number
}

export interface TensorSummary {
  readonly name: string
  readonly dataType: string
  readonly dims: ReadonlyArray<number>
  readonly elements: number
  readonly bytes: number
  readonly origin: "initializer" | "constant"
  readonly graph: string
  readonly external: boolean
}

export interface ModelSummary {
  readonly irVersion: number
  readonly producer?: string
  readonly domain?: string
  readonly modelVersion?: number
  readonly opsetImports: ReadonlyArray<{ readonly domain: string; readonly version: number }>
  readonly inputs: ReadonlyArray<ValueSummary>
  readonly outputs: ReadonlyArray<ValueSummary>
  readonly nodes: number
  readonly subgraphs: number
  /** By count, most frequent first; ops outside the default domain as `domain:Op`. */
  readonly opCounts: ReadonlyArray<{ readonly op: string; readonly count: number }>
  /** Initializers and Constant tensors of every graph. */
  readonly parameters: {
    readonly tensors: number
    readonly elements: number
    readonly bytes: number
    readonly byDataType: ReadonlyArray<ParameterGroup>
  }
  readonly largestTensors: ReadonlyArray<TensorSummary>
  /** Bytes of the model file itself (external data not included). */
  readonly fileSize: number
  readonly externalDataBytes: number
}

const otherKinds: Record<number, string> = { 4: "sequence", 5: "map", 7: "opaque", 8: "sparse_tensor", 9: "optional" }

const kindOf = (type: OnnxType | undefined): string => {
  if (type?.tensorType) return "tensor"
  const field = type?.unknownFields?.[0]
  return (field && otherKinds[fieldNumberOf(field)]) ?? "unknown"
}

const describeValue = (info: OnnxValueInfo): ValueSummary => {
  const tensorType = info.type?.tensorType
  if (!tensorType) return { name: info.name, kind: kindOf(info.type) }
  const base = { name: info.name, kind: "tensor", elemType: dataTypeName(tensorType.elemType) }
  return tensorType.shape ? { ...base, shape: tensorType.shape.map((dim) => dim.value ?? dim.param ?? null) } : base
}

export const summarize = (
  model: OnnxModel,
  options: { readonly fileSize?: number; readonly largest?: number } = {}
): ModelSummary => {
  const ops = new Map<string, number>()
  const groups = new Map<string, { tensors: number; elements: number; bytes: number }>()
  const tensors: Array<TensorSummary> = []
  const graphs = allGraphs(model)
  let nodes = 0
  const addTensor = (
    tensor: Parameters<typeof tensorByteSize>[0],
    name: string,
    origin: TensorSummary["origin"],
    graph: string
  ) => {
    const dataType = dataTypeName(tensor.dataType)
    const elements = elementCount(tensor.dims)
    const bytes = tensorByteSize(tensor)
    tensors.push({ name, dataType, dims: tensor.dims, elements, bytes, origin, graph, external: isExternal(tensor) })
    const group = groups.get(dataType) ?? { tensors: 0, elements: 0, bytes: 0 }
    groups.set(dataType, {
      tensors: group.tensors + 1,
      elements: group.elements + elements,
      bytes: group.bytes + bytes
    })
  }
  for (const { graph, path } of graphs) {
    for (const tensor of graph.initializers) addTensor(tensor, tensor.name ?? "", "initializer", path)
    for (const node of graph.nodes) {
      nodes++
      const op = isDefaultDomain(node.domain) ? node.opType : `${node.domain}:${node.opType}`
      ops.set(op, (ops.get(op) ?? 0) + 1)
      const constant = constantTensor(node)
      if (constant) addTensor(constant, node.outputs[0] ?? constant.name ?? "", "constant", path)
    }
  }
  const byDataType = [...groups].map(([dataType, group]) => ({ dataType, ...group })).sort((a, b) => b.bytes - a.bytes)
  const sum = (key: "tensors" | "elements" | "bytes") => byDataType.reduce((total, group) => total + group[key], 0)
  const producer = [model.producerName, model.producerVersion].filter((part) => part !== undefined && part !== "").join(
    " "
  )
  return {
    irVersion: model.irVersion,
    ...(producer !== "" ? { producer } : {}),
    ...(model.domain ? { domain: model.domain } : {}),
    ...(model.modelVersion !== undefined ? { modelVersion: model.modelVersion } : {}),
    opsetImports: model.opsetImports.map((opset) => ({ domain: opset.domain || "ai.onnx", version: opset.version })),
    inputs: model.graph.inputs.map(describeValue),
    outputs: model.graph.outputs.map(describeValue),
    nodes,
    subgraphs: graphs.length - 1,
    opCounts: [...ops].map(([op, count]) => ({ op, count })).sort((a, b) =>
      b.count - a.count || a.op.localeCompare(b.op)
    ),
    parameters: { tensors: sum("tensors"), elements: sum("elements"), bytes: sum("bytes"), byDataType },
    largestTensors: tensors.sort((a, b) => b.bytes - a.bytes).slice(0, options.largest ?? 10),
    fileSize: options.fileSize ?? encodedModelSize(model),
    externalDataBytes: tensors.filter((tensor) => tensor.external).reduce((total, tensor) => total + tensor.bytes, 0)
  }
}

const bytesText = (bytes: number): string =>
  bytes >= 1024 ** 3 ?
    `${(bytes / 1024 ** 3).toFixed(2)} GiB`
    : bytes >= 1024 ** 2 ?
    `${(bytes / 1024 ** 2).toFixed(2)} MiB`
    : bytes >= 1024 ?
    `${(bytes / 1024).toFixed(1)} KiB`
    : `${bytes} B`

const valueText = (value: ValueSummary): string =>
  value.kind !== "tensor" ?
    `${value.name}: ${value.kind}`
    : `${value.name}: ${value.elemType}${value.shape ? `[${value.shape.map((dim) => dim ?? "?").join(", ")}]` : "[?]"}`

/** The summary as the CLI prints it. */
export const formatSummary = (summary: ModelSummary): string => {
  const lines = [
    `IR version     ${summary.irVersion}`,
    `opsets         ${summary.opsetImports.map((opset) => `${opset.domain} ${opset.version}`).join(", ")}`,
    ...(summary.producer ? [`producer       ${summary.producer}`] : []),
    `file size      ${bytesText(summary.fileSize)}${
      summary.externalDataBytes > 0 ? ` + ${bytesText(summary.externalDataBytes)} external data` : ""
    }`,
    `inputs         ${summary.inputs.map(valueText).join("; ")}`,
    `outputs        ${summary.outputs.map(valueText).join("; ")}`,
    `nodes          ${summary.nodes}${summary.subgraphs > 0 ? ` (${summary.subgraphs} subgraphs)` : ""}`,
    `operators      ${summary.opCounts.map(({ op, count }) => `${op} ${count}`).join(", ")}`,
    `parameters     ${summary.parameters.elements.toLocaleString("en-US")} in ${summary.parameters.tensors} tensors, ${
      bytesText(summary.parameters.bytes)
    }`,
    ...summary.parameters.byDataType.map((group) =>
      `  ${group.dataType.padEnd(12)} ${group.elements.toLocaleString("en-US")} in ${group.tensors} tensors, ${
        bytesText(group.bytes)
      }`
    ),
    `largest tensors`,
    ...summary.largestTensors.map((tensor) =>
      `  ${tensor.name} ${tensor.dataType}[${tensor.dims.join(", ")}] ${bytesText(tensor.bytes)} (${tensor.origin}${
        tensor.graph === "main" ? "" : ` in ${tensor.graph}`
      }${tensor.external ? ", external" : ""})`
    )
  ]
  return lines.join("\n")
}
