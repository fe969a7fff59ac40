/**
 * `optimize --onnx-simplify`: the graph clean-up onnx-simplifier makes, done on the file so every
 * runtime (and the quantizer after it) sees the smaller graph. Constant nodes become initializers,
 * nodes whose inputs are all constant are computed (ConstantFolding.ts), identical initializers and
 * identical nodes are merged, Identity nodes are bypassed, and what no output depends on is dropped.
 * The main graph is rewritten; subgraphs stay as they are, and a value they read is never renamed.
 */
import { createHash } from "node:crypto"
import { evaluate, foldableOperators, staticShapeValue } from "./ConstantFolding.js"
import {
  allGraphs,
  initializerMap,
  isDefaultDomain,
  outerNames,
  promoteConstants,
  subgraphsOf,
  valuesRead
} from "./Graph.js"
import type { OnnxAttribute, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor } from "./OnnxModel.js"
import { isExternal, tensorByteSize } from "./Tensors.js"
import { tensorOf, type Value, valueOf } from "./TensorValue.js"

export interface SimplifyReport {
  /** Nodes in the main graph and every subgraph, before and after. */
  readonly nodesBefore: number
  readonly nodesAfter: number
  readonly initializersBefore: number
  readonly initializersAfter: number
  readonly constantsPromoted: number
  /** Nodes computed here and replaced by their result. */
  readonly folded: number
  /** Initializers equal to another (same type, shape and bytes), and nodes equal to an earlier one. */
  readonly duplicateInitializers: number
  readonly duplicateNodes: number
  readonly identitiesRemoved: number
  /** Nodes and initializers no graph output depends on. */
  readonly deadNodesRemoved: number
  readonly unusedInitializersRemoved: number
}

/** A folded result bigger than this is kept only when it frees at least as many bytes as it adds. */
const smallConstantBytes = 1024

/** Operators whose every run may differ: never merged with an identical node. */
const nondeterministic = new Set([
  "RandomNormal",
  "RandomUniform",
  "RandomNormalLike",
  "RandomUniformLike",
  "Multinomial",
  "Bernoulli"
])

const nodeCount = (model: OnnxModel) => allGraphs(model).reduce((sum, { graph }) => sum + graph.nodes.length, 0)

/** What a pass may not touch: graph inputs and outputs, and values a subgraph reads by name. */
interface Fixed {
  readonly inputs: ReadonlySet<string>
  readonly outputs: ReadonlySet<string>
  readonly readBySubgraphs: ReadonlySet<string>
}

const fixedNames = (graph: OnnxGraph): Fixed => ({
  inputs: new Set(graph.inputs.map((input) => input.name)),
  outputs: new Set(graph.outputs.map((output) => output.name)),
  readBySubgraphs: new Set(
    graph.nodes.flatMap((node) => subgraphsOf(node).flatMap(({ graph: sub }) => [...outerNames(sub)]))
  )
})

/** A value whose uses may be pointed at another value, so it can go. */
const replaceable = (name: string, fixed: Fixed) =>
  !fixed.outputs.has(name) && !fixed.readBySubgraphs.has(name) && !fixed.inputs.has(name)

/** Points every use of a renamed value at what replaced it; value infos of the old names go. */
const applyRenames = (graph: OnnxGraph, renames: ReadonlyMap<string, string>): OnnxGraph => {
  if (renames.size === 0) return graph
  const resolve = (name: string) => {
    let current = name
    for (let hops = 0; renames.has(current) && hops <= renames.size; hops++) current = renames.get(current)!
    return current
  }
  return {
    ...graph,
    nodes: graph.nodes.map((
      node
    ) => (node.inputs.some((input) => renames.has(input)) ? { ...node, inputs: node.inputs.map(resolve) } : node)),
    valueInfo: graph.valueInfo.filter((info) => !renames.has(info.name))
  }
}

const uses = (graph: OnnxGraph) => {
  const count = new Map<string, number>()
  for (const node of graph.nodes) for (const name of valuesRead(node)) count.set(name, (count.get(name) ?? 0) + 1)
  return count
}

/** Fixed-size shapes the model declares (inputs, outputs, value infos): a Shape of such a value is a constant. */
const declaredShapes = (graph: OnnxGraph) => {
  const shapes = new Map<string, Array<number>>()
  for (const info of [...graph.inputs, ...graph.valueInfo, ...graph.outputs]) {
    const dims = info.type?.tensorType?.shape
    if (dims !== undefined && dims.every((dim) => dim.value !== undefined && dim.param === undefined)) {
      shapes.set(
        info.name,
        dims.map((dim) => dim.value!)
      )
    }
  }
  return shapes
}

const foldConstants = (graph: OnnxGraph, opset: number, fixed: Fixed) => {
  const constants = initializerMap(graph)
  // Before IR 4 an initializer listed as an input is only a default the caller may replace.
  for (const name of fixed.inputs) constants.delete(name)
  const values = new Map<string, Value | undefined>()
  const valueNamed = (name: string) => {
    if (!values.has(name)) {
      const tensor = constants.get(name)
      values.set(name, tensor === undefined ? undefined : valueOf(tensor))
    }
    return values.get(name)
  }
  const shapes = declaredShapes(graph)
  const useCount = uses(graph)
  const nodes: Array<OnnxNode> = []
  const added: Array<OnnxTensor> = []
  for (const node of graph.nodes) {
    const result = foldable(node, fixed) ? fold(node, opset, valueNamed, shapes) : undefined
    if (result === undefined || result.length !== node.outputs.length) {
      nodes.push(node)
      continue
    }
    const tensors = result.map((value, i) => tensorOf(node.outputs[i]!, value))
    const addedBytes = tensors.reduce((sum, tensor) => sum + tensorByteSize(tensor), 0)
    // Inputs this node alone reads go with it: folding a transposed weight swaps one copy for another.
    const freedBytes = [...new Set(node.inputs)].reduce((sum, name) => {
      const tensor = constants.get(name)
      return tensor !== undefined && useCount.get(name) === 1 && replaceable(name, fixed)
        ? sum + tensorByteSize(tensor)
        : sum
    }, 0)
    if (addedBytes > smallConstantBytes && addedBytes > freedBytes) {
      nodes.push(node)
      continue
    }
    for (const tensor of tensors) {
      constants.set(tensor.name!, tensor)
      values.set(tensor.name!, valueOf(tensor))
      added.push(tensor)
    }
  }
  return {
    graph: { ...graph, nodes, initializers: [...graph.initializers, ...added] },
    folded: graph.nodes.length - nodes.length
  }
}

const foldable = (node: OnnxNode, fixed: Fixed) =>
  isDefaultDomain(node.domain) && foldableOperators.has(node.opType) && subgraphsOf(node).length === 0 &&
  node.outputs.every((output) => output !== "" && replaceable(output, fixed))

const fold = (
  node: OnnxNode,
  opset: number,
  valueNamed: (name: string) => Value | undefined,
  shapes: ReadonlyMap<string, Array<number>>
) => {
  const [first = ""] = node.inputs
  if (node.opType === "Shape" && valueNamed(first) === undefined) {
    const dims = shapes.get(first)
    return dims === undefined ? undefined : [staticShapeValue(dims, node)]
  }
  const inputs = node.inputs.map((name) => (name === "" ? undefined : valueNamed(name)))
  if (inputs.some((value, i) => value === undefined && node.inputs[i] !== "")) return undefined
  return evaluate(node, inputs, opset)
}

/** Bytes of a tensor's elements in one canonical form, whichever field holds them; undefined when not comparable. */
const contentKey = (tensor: OnnxTensor): string | undefined => {
  if (isExternal(tensor) || tensor.segment !== undefined || tensor.stringData !== undefined) return undefined
  const typed = tensor.rawData ?? tensor.floatData ?? tensor.int32Data ?? tensor.int64Data ?? tensor.doubleData ??
    tensor.uint64Data
  if (typed === undefined) return undefined
  // A raw field and a typed field holding the same values key differently: such pairs are just not merged.
  const field = tensor.rawData !== undefined
    ? "raw"
    : tensor.floatData
    ? "f"
    : tensor.int32Data
    ? "i32"
    : tensor.int64Data
    ? "i64"
    : tensor.doubleData
    ? "d"
    : "u64"
  const digest = createHash("sha256").update(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength)).digest(
    "hex"
  )
  return `${tensor.dataType}:${tensor.dims.join("x")}:${field}:${digest}`
}

const mergeDuplicateInitializers = (graph: OnnxGraph, fixed: Fixed) => {
  const first = new Map<string, string>()
  const renames = new Map<string, string>()
  for (const tensor of graph.initializers) {
    if (tensor.name === undefined || fixed.inputs.has(tensor.name)) continue
    const key = contentKey(tensor)
    if (key === undefined) continue
    const kept = first.get(key)
    if (kept === undefined) first.set(key, tensor.name)
    else if (replaceable(tensor.name, fixed)) renames.set(tensor.name, kept)
  }
  const initializers = graph.initializers.filter((tensor) => tensor.name === undefined || !renames.has(tensor.name))
  return { graph: applyRenames({ ...graph, initializers }, renames), merged: renames.size }
}

const attributeKey = (attribute: OnnxAttribute): string | undefined => {
  if (
    attribute.g || attribute.graphs || attribute.t || attribute.tensors || attribute.sparseTensor ||
    attribute.sparseTensors || attribute.tp || attribute.typeProtos || attribute.refAttrName
  ) {
    return undefined
  }
  const bytes = (value: Uint8Array) => Buffer.from(value).toString("base64")
  return JSON.stringify([
    attribute.name,
    attribute.type,
    attribute.f ?? null,
    attribute.i?.toString() ?? null,
    attribute.s === undefined ? null : bytes(attribute.s),
    attribute.floats ?? null,
    attribute.ints?.map(String) ?? null,
    attribute.strings?.map(bytes) ?? null
  ])
}

/** Common subexpressions: a node equal to an earlier one (operator, inputs, attributes) is replaced by it. */
const mergeDuplicateNodes = (graph: OnnxGraph, fixed: Fixed) => {
  const seen = new Map<string, OnnxNode>()
  const renames = new Map<string, string>()
  const nodes: Array<OnnxNode> = []
  const resolve = (name: string) => renames.get(name) ?? name
  for (const original of graph.nodes) {
    const node = original.inputs.some((input) => renames.has(input))
      ? { ...original, inputs: original.inputs.map(resolve) }
      : original
    const attributes = node.attributes.map(attributeKey)
    const mergeable = node.outputs.length > 0 && !nondeterministic.has(node.opType) && attributes.every((key) =>
      key !== undefined
    ) &&
      node.outputs.every((output) => output !== "" && replaceable(output, fixed))
    if (!mergeable) {
      nodes.push(node)
      continue
    }
    const key = JSON.stringify([
      node.domain ?? "",
      node.opType,
      node.overload ?? "",
      node.inputs,
      node.outputs.length,
      [...attributes].sort()
    ])
    const earlier = seen.get(key)
    if (earlier === undefined) {
      seen.set(key, node)
      nodes.push(node)
    } else {
      node.outputs.forEach((output, i) => renames.set(output, earlier.outputs[i]!))
    }
  }
  return { graph: applyRenames({ ...graph, nodes }, renames), merged: graph.nodes.length - nodes.length }
}

const bypassIdentities = (graph: OnnxGraph, fixed: Fixed) => {
  const renames = new Map<string, string>()
  const nodes = graph.nodes.filter((node) => {
    const [input = "", ...more] = node.inputs
    const [output = "", ...others] = node.outputs
    const bypass = node.opType === "Identity" && isDefaultDomain(node.domain) && more.length === 0 &&
      others.length === 0 && input !== "" &&
      output !== "" && replaceable(output, fixed)
    if (bypass) renames.set(output, input)
    return !bypass
  })
  return { graph: applyRenames({ ...graph, nodes }, renames), removed: graph.nodes.length - nodes.length }
}

/** Drops nodes no graph output depends on, then initializers nothing reads (and, before IR 4, their input entries). */
const dropUnused = (graph: OnnxGraph) => {
  const needed = new Set(graph.outputs.map((output) => output.name))
  const kept: Array<OnnxNode> = []
  for (let index = graph.nodes.length - 1; index >= 0; index--) {
    const node = graph.nodes[index]!
    if (node.outputs.length > 0 && !node.outputs.some((output) => needed.has(output))) continue
    kept.push(node)
    for (const name of valuesRead(node)) needed.add(name)
  }
  kept.reverse()
  const initializers = graph.initializers.filter((tensor) => tensor.name === undefined || needed.has(tensor.name))
  const dropped = new Set(
    graph.initializers.filter((tensor) => !initializers.includes(tensor)).map((tensor) => tensor.name)
  )
  const produced = new Set([
    ...kept.flatMap((node) => node.outputs),
    ...initializers.map((tensor) => tensor.name),
    ...graph.inputs.map((input) => input.name)
  ])
  return {
    graph: {
      ...graph,
      nodes: kept,
      initializers,
      inputs: graph.inputs.filter((input) => !dropped.has(input.name)),
      valueInfo: graph.valueInfo.filter((info) => produced.has(info.name))
    },
    deadNodes: graph.nodes.length - kept.length,
    unusedInitializers: graph.initializers.length - initializers.length
  }
}

/** The model with its main graph simplified, and what was done. Outputs are computed exactly as before. */
export const simplify = (model: OnnxModel): { readonly model: OnnxModel; readonly report: SimplifyReport } => {
  const nodesBefore = nodeCount(model)
  const initializersBefore = model.graph.initializers.length
  const promoted = promoteConstants(model)
  const opset = model.opsetImports.find((entry) => isDefaultDomain(entry.domain))?.version ?? 1
  const totals = {
    folded: 0,
    duplicateInitializers: 0,
    duplicateNodes: 0,
    identitiesRemoved: 0,
    deadNodesRemoved: 0,
    unusedInitializersRemoved: 0
  }
  let graph = promoted.graph
  // Each pass can open work for another (a merged node makes its consumers equal, a fold makes a node dead).
  for (let round = 0; round < 8; round++) {
    const folded = foldConstants(graph, opset, fixedNames(graph))
    const initializers = mergeDuplicateInitializers(folded.graph, fixedNames(folded.graph))
    const duplicates = mergeDuplicateNodes(initializers.graph, fixedNames(initializers.graph))
    const identities = bypassIdentities(duplicates.graph, fixedNames(duplicates.graph))
    const unused = dropUnused(identities.graph)
    graph = unused.graph
    totals.folded += folded.folded
    totals.duplicateInitializers += initializers.merged
    totals.duplicateNodes += duplicates.merged
    totals.identitiesRemoved += identities.removed
    totals.deadNodesRemoved += unused.deadNodes
    totals.unusedInitializersRemoved += unused.unusedInitializers
    const changes = folded.folded + initializers.merged + duplicates.merged + identities.removed + unused.deadNodes +
      unused.unusedInitializers
    if (changes === 0) break
  }
  const simplified: OnnxModel = { ...promoted, graph }
  return {
    model: simplified,
    report: {
      nodesBefore,
      nodesAfter: nodeCount(simplified),
      initializersBefore,
      initializersAfter: graph.initializers.length,
      constantsPromoted: nodesBefore - nodeCount(promoted),
      ...totals
    }
  }
}
