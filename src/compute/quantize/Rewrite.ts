/**
 * Rewrites an ONNX graph's weights into a quantized form ONNX Runtime (node and web) runs: INT8
 * weight-only QDQ (DequantizeLinear per channel), dynamic INT8 (DynamicQuantizeLinear + MatMulInteger),
 * 4-bit MatMulNBits (round-to-nearest, or blocks computed by GPTQ / AWQ), and FP16 weight storage.
 * Weights it cannot handle stay FP32 and are listed with the reason.
 */
import { findAttribute, initializerMap, promoteConstants } from "../onnx/Graph.js"
import type { OnnxAttribute, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor } from "../onnx/OnnxModel.js"
import { AttributeType, DataType } from "../onnx/OnnxModel.js"
import { float16Tensor, float32Tensor, int8Tensor, tensorToFloat32, uint8Tensor } from "../onnx/Tensors.js"
import type { Int4Blocks } from "./Int4.js"
import { quantizeInt4Rtn } from "./Int4.js"
import { quantizeInt8PerChannel } from "./Int8.js"

export type WeightFormat = "INT8" | "INT8_DYNAMIC" | "INT4" | "FP16" | "FP32"

/** A weight that can be quantized: a 2-D float initializer read by a MatMul / Gemm, or a Conv kernel. */
export interface WeightSite {
  readonly node: OnnxNode
  readonly nodeIndex: number
  readonly weight: string
  readonly dims: ReadonlyArray<number>
  readonly kind: "MatMul" | "Gemm" | "Conv" | "Gather"
  /** Gemm with transB: the weight is stored [N, K]. */
  readonly transposed: boolean
}

export interface RewriteOptions {
  /** Format per weight name; weights not listed get `defaultFormat`. */
  readonly formats?: Readonly<Record<string, WeightFormat>>
  readonly defaultFormat: WeightFormat
  readonly blockSize?: 32 | 64 | 128
  /** Weights with fewer elements stay FP32 (their scales would cost more than they save). */
  readonly minElements?: number
  /** Precomputed 4-bit blocks (GPTQ, AWQ) by weight name, used instead of round-to-nearest. */
  readonly int4Blocks?: ReadonlyMap<string, Int4Blocks>
  /** AWQ: multiply the MatMul's input by these before the 4-bit weight. */
  readonly inputScales?: ReadonlyMap<string, Float32Array>
}

export interface RewriteReport {
  readonly quantized: ReadonlyArray<
    { readonly weight: string; readonly node: string; readonly format: WeightFormat; readonly elements: number }
  >
  readonly keptFp32: ReadonlyArray<{ readonly node: string; readonly opType: string; readonly reason: string }>
}

const nodeLabel = (node: OnnxNode, index: number) => node.name ?? `${node.opType}_${index}`

const intAttribute = (node: OnnxNode, name: string, fallback: bigint) => findAttribute(node, name)?.i ?? fallback

const int = (name: string, value: number | bigint): OnnxAttribute => ({
  name,
  type: AttributeType.INT,
  i: BigInt(value)
})

/** Every weight site of the main graph, and the nodes in subgraphs that will stay FP32. */
export const weightSites = (
  graph: OnnxGraph
): { sites: Array<WeightSite>; subgraphNodes: Array<{ node: string; opType: string }> } => {
  const initializers = initializerMap(graph)
  const sites: Array<WeightSite> = []
  const subgraphNodes: Array<{ node: string; opType: string }> = []
  graph.nodes.forEach((node, nodeIndex) => {
    for (const attribute of node.attributes) {
      for (const sub of [...(attribute.g === undefined ? [] : [attribute.g]), ...(attribute.graphs ?? [])]) {
        for (const inner of sub.nodes) {
          if (["MatMul", "Gemm", "Conv"].includes(inner.opType)) {
            subgraphNodes.push({ node: inner.name ?? inner.opType, opType: inner.opType })
          }
        }
      }
    }
    if ((node.domain ?? "") !== "") return
    // An embedding table: Gather(table, ids), quantized per row (one scale per token).
    const table = node.opType === "Gather" ? initializers.get(node.inputs[0] ?? "") : undefined
    if (
      table !== undefined && table.dataType === DataType.FLOAT && table.dims.length === 2 &&
      (findAttribute(node, "axis")?.i ?? 0n) === 0n
    ) {
      sites.push({ node, nodeIndex, weight: node.inputs[0]!, dims: table.dims, kind: "Gather", transposed: false })
      return
    }
    const weight = node.inputs[1]
    const tensor = weight === undefined ? undefined : initializers.get(weight)
    if (tensor === undefined || tensor.dataType !== DataType.FLOAT || weight === undefined) return
    if (node.opType === "MatMul" && tensor.dims.length === 2) {
      sites.push({ node, nodeIndex, weight, dims: tensor.dims, kind: "MatMul", transposed: false })
    } else if (node.opType === "Gemm" && tensor.dims.length === 2 && intAttribute(node, "transA", 0n) === 0n) {
      sites.push({
        node,
        nodeIndex,
        weight,
        dims: tensor.dims,
        kind: "Gemm",
        transposed: intAttribute(node, "transB", 0n) === 1n
      })
    } else if (node.opType === "Conv" && tensor.dims.length >= 3) {
      sites.push({ node, nodeIndex, weight, dims: tensor.dims, kind: "Conv", transposed: false })
    }
  })
  return { sites, subgraphNodes }
}

const defaultOpset = (model: OnnxModel) =>
  model.opsetImports.find((opset) => (opset.domain ?? "") === "" || opset.domain === "ai.onnx")?.version ?? 1

const withOpset = (model: OnnxModel, domain: string, version: number): OnnxModel =>
  model.opsetImports.some((opset) => (opset.domain ?? "") === domain)
    ? model
    : { ...model, opsetImports: [...model.opsetImports, { domain, version }] }

const elementsOf = (dims: ReadonlyArray<number>) => dims.reduce((product, dim) => product * dim, 1)

/** The last path segment of the Mul that scales a MatMulNBits input for AWQ. */
export const AWQ_INPUT_SCALE = "AwqInputScale"

/**
 * The names of the nodes that replace a MatMul by 4-bit MatMulNBits: in the MatMul's own path
 * (`/model/blocks.0/attn/c_attn/MatMul` -> `.../c_attn/MatMulNBits`, and `.../c_attn/AwqInputScale` for
 * AWQ's input scaling), so a LoRA adapter's module names are the same on the FP32 and the INT4 model.
 * A MatMul without a path keeps generated names.
 */
export const int4NodeNames = (matMul: string | undefined, fallback: string) => {
  const slash = matMul?.lastIndexOf("/") ?? -1
  const path = matMul !== undefined && slash > 0 ? matMul.slice(0, slash + 1) : undefined
  return path === undefined
    ? { matMul: `${fallback}_matmul`, inputScale: `${fallback}_awq_mul` }
    : { matMul: `${path}MatMulNBits`, inputScale: `${path}${AWQ_INPUT_SCALE}` }
}

/**
 * Quantizes the model's weights as `options` say. Constant-node weights are promoted to initializers
 * first. Returns the new model and what was quantized or kept.
 */
export const rewriteWeights = (
  source: OnnxModel,
  options: RewriteOptions
): { model: OnnxModel; report: RewriteReport } => {
  let model = promoteConstants(source)
  const graph = model.graph
  const initializers = initializerMap(graph)
  const { sites, subgraphNodes } = weightSites(graph)
  const opset = defaultOpset(model)
  const minElements = options.minElements ?? 1024
  const blockSize = options.blockSize ?? 32
  const prologue: Array<OnnxNode> = []
  const replaced = new Map<number, Array<OnnxNode>>()
  const newInitializers: Array<OnnxTensor> = []
  const retired = new Set<string>()
  const quantized: Array<RewriteReport["quantized"][number]> = []
  const keptFp32: Array<RewriteReport["keptFp32"][number]> = subgraphNodes.map((entry) => ({
    ...entry,
    reason: "inside a subgraph (If/Loop/Scan)"
  }))
  const dequantized = new Set<string>()
  const readers = new Map<string, number>()
  for (const node of graph.nodes) for (const input of node.inputs) readers.set(input, (readers.get(input) ?? 0) + 1)
  let uid = 0
  const fresh = (base: string) => `${base}__q${uid++}`

  for (const site of sites) {
    const label = nodeLabel(site.node, site.nodeIndex)
    const format = options.formats?.[site.weight] ?? options.defaultFormat
    const tensor = initializers.get(site.weight)!
    const elements = elementsOf(site.dims)
    if (format === "FP32") {
      keptFp32.push({ node: label, opType: site.kind, reason: "assigned FP32" })
      continue
    }
    if (elements < minElements) {
      keptFp32.push({ node: label, opType: site.kind, reason: `weight has ${elements} elements (< ${minElements})` })
      continue
    }
    const values = tensorToFloat32(tensor)
    const sharedWeight = (readers.get(site.weight) ?? 0) > 1

    if (format === "INT4" && site.kind === "MatMul") {
      const [K, N] = site.dims as [number, number]
      const blocks = options.int4Blocks?.get(site.weight) ?? quantizeInt4Rtn(values, K, N, blockSize)
      const base = fresh(site.weight)
      newInitializers.push(
        uint8Tensor(`${base}_B`, [N, Math.ceil(K / blocks.blockSize), blocks.blockSize / 2], blocks.packed),
        float32Tensor(`${base}_scales`, [blocks.scales.length], blocks.scales),
        uint8Tensor(`${base}_zero_points`, [blocks.zeroPoints.length], blocks.zeroPoints)
      )
      const nodes: Array<OnnxNode> = []
      const names = int4NodeNames(site.node.name, base)
      let input = site.node.inputs[0]!
      const inputScales = options.inputScales?.get(site.weight)
      if (inputScales !== undefined) {
        newInitializers.push(float32Tensor(`${base}_awq`, [K], inputScales))
        nodes.push({
          opType: "Mul",
          name: names.inputScale,
          inputs: [input, `${base}_awq`],
          outputs: [`${base}_scaled_input`],
          attributes: []
        })
        input = `${base}_scaled_input`
      }
      nodes.push({
        opType: "MatMulNBits",
        domain: "com.microsoft",
        name: names.matMul,
        inputs: [input, `${base}_B`, `${base}_scales`, `${base}_zero_points`],
        outputs: [...site.node.outputs],
        attributes: [int("K", K), int("N", N), int("bits", 4), int("block_size", blocks.blockSize)]
      })
      replaced.set(site.nodeIndex, nodes)
      if (!sharedWeight) retired.add(site.weight)
      quantized.push({ weight: site.weight, node: label, format, elements })
      continue
    }

    // DynamicQuantizeLinear and MatMulInteger arrived in opsets 11 and 10; older models get weight-only INT8.
    if (format === "INT8_DYNAMIC" && site.kind === "MatMul" && opset >= 11) {
      const [K, N] = site.dims as [number, number]
      const q = quantizeInt8PerChannel(values, K, N, 1)
      const base = fresh(site.weight)
      newInitializers.push(
        int8Tensor(`${base}_W`, [K, N], q.values),
        int8Tensor(`${base}_W_zero_point`, [N], new Int8Array(N)),
        float32Tensor(`${base}_W_scale`, [N], q.scales)
      )
      const output = site.node.outputs[0]!
      replaced.set(site.nodeIndex, [
        {
          opType: "DynamicQuantizeLinear",
          name: `${base}_dql`,
          inputs: [site.node.inputs[0]!],
          outputs: [`${base}_A`, `${base}_A_scale`, `${base}_A_zero_point`],
          attributes: []
        },
        {
          opType: "MatMulInteger",
          name: `${base}_mmi`,
          inputs: [`${base}_A`, `${base}_W`, `${base}_A_zero_point`, `${base}_W_zero_point`],
          outputs: [`${base}_int32`],
          attributes: []
        },
        {
          opType: "Cast",
          name: `${base}_cast`,
          inputs: [`${base}_int32`],
          outputs: [`${base}_float`],
          attributes: [int("to", DataType.FLOAT)]
        },
        {
          opType: "Mul",
          name: `${base}_scale`,
          inputs: [`${base}_A_scale`, `${base}_W_scale`],
          outputs: [`${base}_scales`],
          attributes: []
        },
        {
          opType: "Mul",
          name: `${base}_rescale`,
          inputs: [`${base}_float`, `${base}_scales`],
          outputs: [output],
          attributes: []
        }
      ])
      if (!sharedWeight) retired.add(site.weight)
      quantized.push({ weight: site.weight, node: label, format, elements })
      continue
    }

    if (format === "FP16" || format === "INT8" || format === "INT4" || format === "INT8_DYNAMIC") {
      if (dequantized.has(site.weight)) continue
      dequantized.add(site.weight)
      const base = fresh(site.weight)
      // Weight-only forms every consumer shares: the weight's own name becomes the output of a small
      // dequantizing prologue, so the rest of the graph is untouched.
      if (format === "FP16") {
        newInitializers.push(float16Tensor(`${base}_fp16`, site.dims, values))
        prologue.push({
          opType: "Cast",
          name: `${base}_cast`,
          inputs: [`${base}_fp16`],
          outputs: [site.weight],
          attributes: [int("to", DataType.FLOAT)]
        })
      } else {
        // INT8 QDQ; also the fallback for INT4 / dynamic INT8 on weights MatMulNBits / MatMulInteger cannot take.
        const axis = site.kind === "MatMul" || (site.kind === "Gemm" && !site.transposed) ? 1 : 0 // Conv, Gather and Gemm with transB: per row
        const rows = site.dims[0]!
        const cols = elements / rows
        const q = quantizeInt8PerChannel(values, rows, cols, axis)
        const channels = q.scales.length
        newInitializers.push(int8Tensor(`${base}_quantized`, site.dims, q.values))
        if (opset >= 13) {
          // The QDQ form: ONNX Runtime fuses DequantizeLinear into its INT8 kernels where it can.
          newInitializers.push(
            float32Tensor(`${base}_scale`, [channels], q.scales),
            int8Tensor(`${base}_zero_point`, [channels], new Int8Array(channels))
          )
          prologue.push({
            opType: "DequantizeLinear",
            name: `${base}_dequantize`,
            inputs: [`${base}_quantized`, `${base}_scale`, `${base}_zero_point`],
            outputs: [site.weight],
            attributes: [int("axis", axis)]
          })
        } else {
          // Before opset 13 DequantizeLinear has no axis (and before 10 it does not exist): Cast and a
          // broadcast Mul say the same thing in any opset, without changing the model's opset.
          const scaleDims = axis === 1 ? [channels] : [channels, ...site.dims.slice(1).map(() => 1)]
          newInitializers.push(float32Tensor(`${base}_scale`, scaleDims, q.scales))
          prologue.push(
            {
              opType: "Cast",
              name: `${base}_cast`,
              inputs: [`${base}_quantized`],
              outputs: [`${base}_int8_as_float`],
              attributes: [int("to", DataType.FLOAT)]
            },
            {
              opType: "Mul",
              name: `${base}_dequantize`,
              inputs: [`${base}_int8_as_float`, `${base}_scale`],
              outputs: [site.weight],
              attributes: []
            }
          )
        }
        if (format !== "INT8") {
          const why = site.kind !== "MatMul"
            ? `needs a MatMul weight, not ${site.kind}`
            : `needs opset 11 (the model has ${opset})`
          keptFp32.push({
            node: label,
            opType: site.kind,
            reason: `${format} ${why}; stored as INT8 weight-only instead`
          })
        }
      }
      retired.add(site.weight)
      quantized.push({ weight: site.weight, node: label, format: format === "FP16" ? "FP16" : "INT8", elements })
    }
  }

  const nodes = [...prologue, ...graph.nodes.flatMap((node, index) => replaced.get(index) ?? [node])]
  model = {
    ...model,
    graph: {
      ...graph,
      nodes,
      initializers: [
        ...graph.initializers.filter((tensor) => tensor.name === undefined || !retired.has(tensor.name)),
        ...newInitializers
      ],
      // Retired initializers may have been listed as graph inputs by old exporters.
      inputs: graph.inputs.filter((input) => !retired.has(input.name))
    }
  }
  if (quantized.some((entry) => entry.format === "INT4")) model = withOpset(model, "com.microsoft", 1)
  return { model, report: { quantized, keptFp32 } }
}
