/**
 * LoRA in an ONNX graph, two ways: a low-rank branch beside each target MatMul whose factors are graph
 * inputs (swap adapters per run on one session), or the update merged into the weights (no overhead).
 *
 * A target is a MatMul y = x W with W a 2-D float weight [in, out] (an initializer, a Constant, or the
 * output of a weight-only DequantizeLinear / Cast), or a 4-bit com.microsoft MatMulNBits (W packed in
 * blocks, in = K, out = N: the QLoRA case, a full-precision branch beside a 4-bit base), named by its
 * module path (`moduleNameOf`; the quantizer keeps the MatMul's path, so names match across precisions).
 * The branch adds y += (x · A_in) · B_in with inputs `lora.<module>.A` [in, rank] = Aᵀ and
 * `lora.<module>.B` [rank, out] = scale · Bᵀ: the scale is folded into the fed B, so the graph needs no
 * Mul and an adapter's alpha is the host's business. Adapters of lower rank are fed zero-padded (extra
 * rank components contribute 0), and zeros everywhere reproduce the base model.
 */
import { Data } from "effect"
import {
  consumers,
  findAttribute,
  initializerMap,
  isDefaultDomain,
  producers,
  promoteConstants
} from "../onnx/Graph.js"
import type { OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo } from "../onnx/OnnxModel.js"
import { DataType } from "../onnx/OnnxModel.js"
import { float32Tensor, tensorToFloat32 } from "../onnx/Tensors.js"
import type { Feeds, FeedTensor } from "../optimize/Runner.js"
import { AWQ_INPUT_SCALE } from "../quantize/Rewrite.js"
import type { LoraWeights } from "./Adapter.js"
import { deltaWeight, moduleNameOf, scaleOf } from "./Adapter.js"

export class GraphLoraError extends Data.TaggedError("GraphLoraError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const fail = (reason: string): never => {
  throw new GraphLoraError({ reason })
}

export interface LoraTarget {
  readonly module: string
  readonly node: string
  readonly input: string
  readonly output: string
  readonly weight: string
  readonly inFeatures: number
  readonly outFeatures: number
  /**
   * "float32": W is a float initializer; "dequantized": W is computed from INT8 / FP16 storage; "int4":
   * W is a MatMulNBits node's 4-bit blocks (`weight` names the packed initializer).
   */
  readonly storage: "float32" | "dequantized" | "int4"
}

const quantizedOps = new Set(["MatMulNBits", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul"])

const attributeOf = (node: OnnxNode, name: string): number | undefined => {
  const value = findAttribute(node, name)?.i
  return value === undefined ? undefined : Number(value)
}

/** A 4-bit MatMulNBits with K and N, i.e. one whose output LoRA can add to. */
const isInt4MatMul = (node: OnnxNode) =>
  node.opType === "MatMulNBits" && node.domain === "com.microsoft" && attributeOf(node, "bits") === 4 &&
  (attributeOf(node, "K") ?? 0) > 0 && (attributeOf(node, "N") ?? 0) > 0

/**
 * The input a MatMulNBits target's branch reads: the MatMul's original input, i.e. before AWQ's input
 * scaling (the Mul the quantizer names `<path>/AwqInputScale`), which the 4-bit weight alone undoes.
 */
const unscaledInput = (input: string, producedBy: ReadonlyMap<string, OnnxNode>): string => {
  const source = producedBy.get(input)
  return source?.opType === "Mul" && source.name?.endsWith(`/${AWQ_INPUT_SCALE}`) === true &&
      source.inputs[0] !== undefined
    ? source.inputs[0]
    : input
}

const int4Target = (node: OnnxNode, producedBy: ReadonlyMap<string, OnnxNode>): LoraTarget | undefined => {
  const [input, weight] = node.inputs
  const output = node.outputs[0]
  const module = moduleNameOf(node.name ?? "")
  if (input === undefined || weight === undefined || output === undefined || module === "") return undefined
  return {
    module,
    node: node.name!,
    input: unscaledInput(input, producedBy),
    output,
    weight,
    inFeatures: attributeOf(node, "K")!,
    outFeatures: attributeOf(node, "N")!,
    storage: "int4"
  }
}

/** The MatMul weight sites that LoRA can target, by module path; a module with two such MatMuls has none. */
export const loraTargets = (model: OnnxModel): Array<LoraTarget> => {
  const graph = promoteConstants(model).graph
  const initializers = initializerMap(graph)
  const producedBy = producers(graph)
  const found = new Map<string, LoraTarget | "ambiguous">()
  for (const node of graph.nodes) {
    if (isInt4MatMul(node)) {
      const target = int4Target(node, producedBy)
      if (target !== undefined) found.set(target.module, found.has(target.module) ? "ambiguous" : target)
      continue
    }
    if (node.opType !== "MatMul" || !isDefaultDomain(node.domain) || node.name === undefined) continue
    const [input, weight] = node.inputs
    const output = node.outputs[0]
    if (input === undefined || weight === undefined || output === undefined) continue
    const direct = initializers.get(weight)
    const source = producedBy.get(weight)
    const stored = direct ??
      (source && ["DequantizeLinear", "Cast"].includes(source.opType)
        ? initializers.get(source.inputs[0] ?? "")
        : undefined)
    if (
      stored === undefined || stored.dims.length !== 2 || (direct !== undefined && direct.dataType !== DataType.FLOAT)
    ) continue
    const module = moduleNameOf(node.name)
    if (module === "") continue
    const [inFeatures, outFeatures] = stored.dims as [number, number]
    const target: LoraTarget = {
      module,
      node: node.name,
      input,
      output,
      weight,
      inFeatures,
      outFeatures,
      storage: direct ? "float32" : "dequantized"
    }
    found.set(module, found.has(module) ? "ambiguous" : target)
  }
  return [...found.values()].filter((target): target is LoraTarget => target !== "ambiguous")
}

/** The graph inputs carrying a module's factors. */
export const adapterInputNames = (module: string) => ({ A: `lora.${module}.A`, B: `lora.${module}.B` }) as const

const floatInput = (name: string, dims: ReadonlyArray<number>): OnnxValueInfo => ({
  name,
  type: { tensorType: { elemType: DataType.FLOAT, shape: dims.map((value) => ({ value })) } }
})

/** Why a quantized model has no target for a module, when that is the reason. */
const describeQuantized = (model: OnnxModel): string | undefined => {
  const int4 = model.graph.nodes.filter(isInt4MatMul)
  if (int4.length > 0 && int4.every((node) => moduleNameOf(node.name ?? "") === "")) {
    return "the model's 4-bit MatMulNBits nodes have no module paths in their names (quantized by an older edge-net or another tool): quantize the FP32 model again"
  }
  const node = model.graph.nodes.find((candidate) => quantizedOps.has(candidate.opType) && !isInt4MatMul(candidate))
  if (node === undefined) return undefined
  const what = node.opType === "MatMulNBits" ? `MatMulNBits with ${attributeOf(node, "bits") ?? "?"} bits` : node.opType
  return `the model's weights are quantized (${what}): apply the adapter to the FP32 model, then quantize`
}

const targetsByModule = (model: OnnxModel, modules: ReadonlyArray<string>): Array<LoraTarget> => {
  const all = new Map(loraTargets(model).map((target) => [target.module, target]))
  return modules.map((module) => {
    const target = all.get(module)
    if (target !== undefined) return target
    const examples = [...all.keys()].slice(0, 3).join(", ")
    return fail(
      describeQuantized(model) ??
        `${module} is not a LoRA target of this model (${all.size} targets${
          examples === "" ? "" : `, such as ${examples}`
        })`
    )
  })
}

/**
 * Adds a rank-`rank` branch with factor inputs to each target module's MatMul. The graph's other
 * nodes and values are unchanged; each branch sits right after its MatMul, so the order stays valid.
 */
export const injectAdapterInputs = (model: OnnxModel, modules: ReadonlyArray<string>, rank: number): OnnxModel => {
  if (!Number.isInteger(rank) || rank < 1) fail(`rank must be a whole number, 1 or more (not ${rank})`)
  if (modules.length === 0) fail("no target modules to inject")
  const targets = targetsByModule(model, modules)
  const taken = new Set(model.graph.inputs.map((input) => input.name))
  const branches = new Map<string, Array<OnnxNode>>()
  const renamed = new Map<string, string>()
  const inputs: Array<OnnxValueInfo> = []
  for (const target of targets) {
    const names = adapterInputNames(target.module)
    if (taken.has(names.A) || branches.has(target.node)) fail(`${target.module} already has an adapter branch`)
    const base = `${target.output}/lora_base`
    const down = `lora.${target.module}.down`
    const up = `lora.${target.module}.up`
    inputs.push(floatInput(names.A, [target.inFeatures, rank]), floatInput(names.B, [rank, target.outFeatures]))
    renamed.set(target.node, base)
    branches.set(target.node, [
      { opType: "MatMul", name: `${down}/MatMul`, inputs: [target.input, names.A], outputs: [down], attributes: [] },
      { opType: "MatMul", name: `${up}/MatMul`, inputs: [down, names.B], outputs: [up], attributes: [] },
      {
        opType: "Add",
        name: `lora.${target.module}.add/Add`,
        inputs: [base, up],
        outputs: [target.output],
        attributes: []
      }
    ])
  }
  const nodes = model.graph.nodes.flatMap((node) => {
    const branch = node.name === undefined ? undefined : branches.get(node.name)
    if (branch === undefined) return [node]
    return [{ ...node, outputs: [renamed.get(node.name!)!, ...node.outputs.slice(1)] }, ...branch]
  })
  return { ...model, graph: { ...model.graph, nodes, inputs: [...model.graph.inputs, ...inputs] } }
}

export interface AdapterLayout {
  readonly rank: number
  readonly modules: Readonly<Record<string, { readonly inFeatures: number; readonly outFeatures: number }>>
}

/** The adapter branches of an injected model, read from its `lora.<module>.A` / `.B` inputs. */
export const adapterLayout = (model: OnnxModel): AdapterLayout => {
  const dims = (input: OnnxValueInfo) => (input.type?.tensorType?.shape ?? []).map((dim) => dim.value ?? -1)
  const byName = new Map(model.graph.inputs.map((input) => [input.name, dims(input)]))
  const modules: Record<string, { inFeatures: number; outFeatures: number }> = {}
  let rank: number | undefined
  for (const input of model.graph.inputs) {
    const match = /^lora\.(.+)\.A$/.exec(input.name)
    if (match === null) continue
    const module = match[1]!
    const [inFeatures, rankOfA] = byName.get(input.name)!
    const [rankOfB, outFeatures] = byName.get(adapterInputNames(module).B) ?? []
    if (
      inFeatures === undefined || rankOfA === undefined || rankOfB !== rankOfA || outFeatures === undefined ||
      Math.min(inFeatures, rankOfA, outFeatures) < 1
    ) {
      fail(`the adapter inputs of ${module} do not have fixed shapes [in, rank] and [rank, out]`)
    }
    if (rank !== undefined && rank !== rankOfA) {
      fail(`adapter inputs have ranks ${rank} and ${rankOfA}; one graph has one rank`)
    }
    rank = rankOfA
    modules[module] = { inFeatures: inFeatures!, outFeatures: outFeatures! }
  }
  if (rank === undefined) fail("the model has no adapter inputs (see injectAdapterInputs)")
  return { rank: rank!, modules }
}

const zeros = (dims: ReadonlyArray<number>): FeedTensor => ({
  type: "float32",
  data: new Float32Array(dims[0]! * dims[1]!),
  dims
})

/**
 * The factor feeds for one run: `weights` transposed, its scale folded into B and zero-padded to the
 * graph's rank; modules it does not adapt (or every module, without weights) get zeros.
 */
export const feedsFor = (layout: AdapterLayout, weights?: LoraWeights): Feeds => {
  const feeds: Record<string, FeedTensor> = {}
  for (const [module, { inFeatures, outFeatures }] of Object.entries(layout.modules)) {
    const names = adapterInputNames(module)
    feeds[names.A] = zeros([inFeatures, layout.rank])
    feeds[names.B] = zeros([layout.rank, outFeatures])
  }
  if (weights === undefined) return feeds
  if (weights.rank > layout.rank) fail(`the adapter has rank ${weights.rank}, more than the graph's ${layout.rank}`)
  const scale = scaleOf(weights)
  const rank = weights.rank
  for (const [module, { inFeatures, outFeatures, A, B }] of Object.entries(weights.modules)) {
    const slot = layout.modules[module]
    if (slot === undefined) fail(`the graph has no adapter branch for ${module}`)
    if (slot!.inFeatures !== inFeatures || slot!.outFeatures !== outFeatures) {
      fail(
        `${module}: the adapter is [${inFeatures} -> ${outFeatures}], the graph's branch [${slot!.inFeatures} -> ${
          slot!.outFeatures
        }]`
      )
    }
    const names = adapterInputNames(module)
    const fedA = feeds[names.A]!.data as Float32Array
    const fedB = feeds[names.B]!.data as Float32Array
    for (let r = 0; r < rank; r++) {
      for (let i = 0; i < inFeatures; i++) fedA[i * layout.rank + r] = A[r * inFeatures + i]!
      for (let o = 0; o < outFeatures; o++) fedB[r * outFeatures + o] = scale * B[o * rank + r]!
    }
  }
  return feeds
}

/**
 * W + scale · Aᵀ Bᵀ written into each target's weight (Constant-held weights promoted first). A weight
 * other nodes also read gets a merged copy for this MatMul alone. Quantized weights (INT8, FP16, 4-bit) are
 * refused: requantizing W + ΔW turns an update smaller than one quantization step into rounding noise
 * (for tiny-lm's mail adapter at 4 bits the weight's change came out 2.4 times ΔW's norm away from ΔW),
 * so merge into the FP32 model and quantize that, or run the adapter as a branch.
 */
export const mergeAdapter = (model: OnnxModel, weights: LoraWeights): OnnxModel => {
  const promoted = promoteConstants(model)
  const targets = targetsByModule(promoted, Object.keys(weights.modules))
  const graph = promoted.graph
  const initializers = initializerMap(graph)
  const readers = consumers(graph)
  const graphValues = new Set([...graph.inputs, ...graph.outputs].map((value) => value.name))
  const scale = scaleOf(weights)
  const replaced = new Map<string, OnnxTensor>()
  const added: Array<OnnxTensor> = []
  const rewired = new Map<string, string>()
  for (const target of targets) {
    if (target.storage === "int4") {
      fail(
        `${target.module}: its weight is stored in 4 bits (MatMulNBits); merge into the FP32 model, then quantize, or run the adapter as a branch (adapter slots)`
      )
    }
    if (target.storage !== "float32") {
      fail(`${target.module}: its weight is stored quantized (INT8 / FP16); merge into the FP32 model, then quantize`)
    }
    const module = weights.modules[target.module]!
    if (module.inFeatures !== target.inFeatures || module.outFeatures !== target.outFeatures) {
      fail(
        `${target.module}: the adapter is [${module.inFeatures} -> ${module.outFeatures}], the model's weight [${target.inFeatures} -> ${target.outFeatures}]`
      )
    }
    const merged = tensorToFloat32(initializers.get(target.weight)!)
    const delta = deltaWeight(module, weights.rank, scale)
    for (let i = 0; i < merged.length; i++) merged[i]! += delta[i]!
    const dims = [target.inFeatures, target.outFeatures]
    const shared = (readers.get(target.weight)?.length ?? 0) > 1 || graphValues.has(target.weight)
    if (shared) {
      const name = `${target.weight}/lora_merged/${target.module}`
      added.push(float32Tensor(name, dims, merged))
      rewired.set(target.node, name)
    } else replaced.set(target.weight, float32Tensor(target.weight, dims, merged))
  }
  const nodes = graph.nodes.map((node) => {
    const name = node.name === undefined ? undefined : rewired.get(node.name)
    return name === undefined ? node : { ...node, inputs: [node.inputs[0]!, name, ...node.inputs.slice(2)] }
  })
  const kept = graph.initializers.map((
    tensor
  ) => (tensor.name === undefined ? tensor : replaced.get(tensor.name) ?? tensor))
  return { ...promoted, graph: { ...graph, nodes, initializers: [...kept, ...added] } }
}
