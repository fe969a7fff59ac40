/**
 * Reading and rewriting graphs: subgraphs (If/Loop/Scan bodies), producers and consumers of values,
 * topological order, and promoting Constant nodes to initializers. Rewrites return new values.
 */
import {
  AttributeType,
  type OnnxAttribute,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
  type OnnxValueInfo
} from "./OnnxModel.js"

export const isDefaultDomain = (domain: string | undefined): boolean =>
  domain === undefined || domain === "" || domain === "ai.onnx"

export const findAttribute = (node: OnnxNode, name: string): OnnxAttribute | undefined =>
  node.attributes.find((attribute) => attribute.name === name)

/** The graphs held by a node's attributes (If's branches, Loop's and Scan's bodies, any GRAPHS attribute). */
export const subgraphsOf = (node: OnnxNode): Array<{ readonly attribute: string; readonly graph: OnnxGraph }> => {
  const found: Array<{ attribute: string; graph: OnnxGraph }> = []
  for (const attribute of node.attributes) {
    if (attribute.g) found.push({ attribute: attribute.name, graph: attribute.g })
    if (attribute.graphs) { for (const graph of attribute.graphs) found.push({ attribute: attribute.name, graph }) }
  }
  return found
}

export interface GraphVisit {
  readonly graph: OnnxGraph
  /** "main" for the model's graph, then `<parent>/<node name or op#index>.<attribute>` for subgraphs. */
  readonly path: string
  readonly depth: number
}

/** The graph and every subgraph under it, parents before children. */
export const allGraphs = (root: OnnxModel | OnnxGraph): Array<GraphVisit> => {
  const visits: Array<GraphVisit> = []
  const visit = (graph: OnnxGraph, path: string, depth: number): void => {
    visits.push({ graph, path, depth })
    graph.nodes.forEach((node, index) => {
      for (const { attribute, graph: sub } of subgraphsOf(node)) {
        visit(sub, `${path}/${node.name || `${node.opType}#${index}`}.${attribute}`, depth + 1)
      }
    })
  }
  visit("opsetImports" in root ? root.graph : root, "main", 0)
  return visits
}

/**
 * Rewrites a graph and all its subgraphs bottom-up: `rewrite` sees each graph with its subgraphs
 * already rewritten. Unchanged parts are shared, not copied.
 */
export const mapGraphs = (
  graph: OnnxGraph,
  rewrite: (graph: OnnxGraph, depth: number) => OnnxGraph,
  depth = 0
): OnnxGraph => {
  let changed = false
  const nodes = graph.nodes.map((node) => {
    if (!node.attributes.some((a) => a.g || a.graphs)) return node
    let nodeChanged = false
    const attributes = node.attributes.map((attribute) => {
      if (!attribute.g && !attribute.graphs) return attribute
      const g = attribute.g && mapGraphs(attribute.g, rewrite, depth + 1)
      const graphs = attribute.graphs?.map((sub) => mapGraphs(sub, rewrite, depth + 1))
      if (g === attribute.g && (graphs === undefined || graphs.every((sub, i) => sub === attribute.graphs![i]))) {
        return attribute
      }
      nodeChanged = true
      return { ...attribute, ...(g ? { g } : {}), ...(graphs ? { graphs } : {}) }
    })
    if (!nodeChanged) return node
    changed = true
    return { ...node, attributes }
  })
  return rewrite(changed ? { ...graph, nodes } : graph, depth)
}

export const initializerMap = (graph: OnnxGraph): Map<string, OnnxTensor> =>
  new Map(graph.initializers.flatMap((tensor) => (tensor.name === undefined ? [] : [[tensor.name, tensor] as const])))

/** The node producing each value of this graph (not of its subgraphs). */
export const producers = (graph: OnnxGraph): Map<string, OnnxNode> => {
  const map = new Map<string, OnnxNode>()
  for (const node of graph.nodes) for (const output of node.outputs) if (output !== "") map.set(output, node)
  return map
}

/**
 * Names a graph reads from its enclosing scopes: used by its nodes (or their subgraphs) but defined by
 * none of its inputs, initializers or nodes.
 */
export const outerNames = (graph: OnnxGraph): Set<string> => {
  const defined = new Set<string>([
    ...graph.inputs.map((i) => i.name),
    ...graph.initializers.flatMap((t) => (t.name ? [t.name] : []))
  ])
  const free = new Set<string>()
  for (const node of graph.nodes) {
    for (const input of node.inputs) if (input !== "" && !defined.has(input)) free.add(input)
    for (const { graph: sub } of subgraphsOf(node)) {
      for (const name of outerNames(sub)) if (!defined.has(name)) free.add(name)
    }
    for (const output of node.outputs) defined.add(output)
  }
  for (const output of graph.outputs) if (!defined.has(output.name)) free.add(output.name)
  return free
}

/** The values a node reads: its inputs, and the outer values its subgraphs use. */
export const valuesRead = (node: OnnxNode): Set<string> => {
  const names = new Set(node.inputs.filter((input) => input !== ""))
  for (const { graph } of subgraphsOf(node)) for (const name of outerNames(graph)) names.add(name)
  return names
}

/** The nodes of this graph reading each value, including through their subgraphs. */
export const consumers = (graph: OnnxGraph): Map<string, Array<OnnxNode>> => {
  const map = new Map<string, Array<OnnxNode>>()
  for (const node of graph.nodes) {
    for (const name of valuesRead(node)) {
      const list = map.get(name)
      if (list) list.push(node)
      else map.set(name, [node])
    }
  }
  return map
}

export const producerOf = (graph: OnnxGraph, name: string): OnnxNode | undefined =>
  graph.nodes.find((node) => node.outputs.includes(name))

export const consumersOf = (graph: OnnxGraph, name: string): Array<OnnxNode> =>
  graph.nodes.filter((node) => valuesRead(node).has(name))

export interface OrderIssue {
  readonly path: string
  readonly node: string
  readonly input: string
}

/**
 * Node inputs not available where they are read: not a graph input, initializer, earlier node's output,
 * or (in a subgraph) a value of the enclosing scope at that point. Empty for a well-ordered model.
 */
export const topologicalOrderIssues = (root: OnnxModel | OnnxGraph): Array<OrderIssue> => {
  const issues: Array<OrderIssue> = []
  const check = (graph: OnnxGraph, outer: ReadonlySet<string>, path: string): void => {
    const available = new Set(outer)
    for (const input of graph.inputs) available.add(input.name)
    for (const tensor of graph.initializers) if (tensor.name !== undefined) available.add(tensor.name)
    graph.nodes.forEach((node, index) => {
      const label = node.name || `${node.opType}#${index}`
      for (const input of node.inputs) {
        if (input !== "" && !available.has(input)) issues.push({ path, node: label, input })
      }
      for (const { attribute, graph: sub } of subgraphsOf(node)) check(sub, available, `${path}/${label}.${attribute}`)
      for (const output of node.outputs) if (output !== "") available.add(output)
    })
  }
  check("opsetImports" in root ? root.graph : root, new Set(), "main")
  return issues
}

export const isTopologicallySorted = (root: OnnxModel | OnnxGraph): boolean => topologicalOrderIssues(root).length === 0

/** The tensor of a Constant node holding one in its `value` attribute (not value_float, sparse_value, ...). */
export const constantTensor = (node: OnnxNode): OnnxTensor | undefined => {
  if (node.opType !== "Constant" || !isDefaultDomain(node.domain)) return undefined
  const value = findAttribute(node, "value")
  return value && value.type === AttributeType.TENSOR && value.t ? value.t : undefined
}

const valueInfoOf = (name: string, tensor: OnnxTensor): OnnxValueInfo => ({
  name,
  type: { tensorType: { elemType: tensor.dataType, shape: tensor.dims.map((value) => ({ value })) } }
})

/**
 * Turns Constant nodes holding a tensor into initializers named after their output, in the main graph
 * and every subgraph; other nodes keep their order. A Constant whose output is also its graph's output
 * stays a node. Models before IR 4 need initializers listed as graph inputs: there the main graph gets
 * them, and subgraphs keep their Constants.
 */
export const promoteConstants = (model: OnnxModel): OnnxModel => {
  const graph = mapGraphs(model.graph, (graph, depth) => {
    const legacy = model.irVersion < 4
    if (legacy && depth > 0) return graph
    const graphOutputs = new Set(graph.outputs.map((output) => output.name))
    const taken = new Set(graph.initializers.map((tensor) => tensor.name))
    const nodes: Array<OnnxNode> = []
    const promoted: Array<OnnxTensor> = []
    for (const node of graph.nodes) {
      const tensor = constantTensor(node)
      const output = node.outputs[0]
      if (tensor && output && node.outputs.length === 1 && !graphOutputs.has(output) && !taken.has(output)) {
        promoted.push({ ...tensor, name: output })
        taken.add(output)
      } else nodes.push(node)
    }
    if (promoted.length === 0) return graph
    return {
      ...graph,
      nodes,
      initializers: [...graph.initializers, ...promoted],
      ...(legacy ? { inputs: [...graph.inputs, ...promoted.map((tensor) => valueInfoOf(tensor.name!, tensor))] } : {})
    }
  })
  return graph === model.graph ? model : { ...model, graph }
}

export interface TensorVisit {
  readonly tensor: OnnxTensor
  readonly path: string
  /** An initializer, or a tensor held by a node attribute (Constant's value, among others). */
  readonly origin: "initializer" | "attribute"
}

/** Every dense tensor in the model: initializers and attribute tensors of every graph. */
export const allTensors = (root: OnnxModel | OnnxGraph): Array<TensorVisit> =>
  allGraphs(root).flatMap(({ graph, path }) => [
    ...graph.initializers.map((tensor) => ({ tensor, path, origin: "initializer" as const })),
    ...graph.nodes.flatMap((node) =>
      node.attributes.flatMap((attribute) =>
        [...(attribute.t ? [attribute.t] : []), ...(attribute.tensors ?? [])].map((tensor) => ({
          tensor,
          path,
          origin: "attribute" as const
        }))
      )
    )
  ])

/** Replaces tensors (initializers and attribute tensors, in every graph); unchanged parts are shared. */
export const mapTensors = (model: OnnxModel, replace: (tensor: OnnxTensor) => OnnxTensor): OnnxModel => {
  const mapAttribute = (attribute: OnnxAttribute): OnnxAttribute => {
    const t = attribute.t && replace(attribute.t)
    const tensors = attribute.tensors?.map(replace)
    if (
      t === attribute.t && (tensors === undefined || tensors.every((tensor, i) => tensor === attribute.tensors![i]))
    ) return attribute
    return { ...attribute, ...(t ? { t } : {}), ...(tensors ? { tensors } : {}) }
  }
  const graph = mapGraphs(model.graph, (graph) => {
    const initializers = graph.initializers.map(replace)
    const nodes = graph.nodes.map((node) => {
      const attributes = node.attributes.map(mapAttribute)
      return attributes.every((attribute, i) => attribute === node.attributes[i]) ? node : { ...node, attributes }
    })
    const same = initializers.every((tensor, i) => tensor === graph.initializers[i]) &&
      nodes.every((node, i) => node === graph.nodes[i])
    return same ? graph : { ...graph, initializers, nodes }
  })
  return graph === model.graph ? model : { ...model, graph }
}
