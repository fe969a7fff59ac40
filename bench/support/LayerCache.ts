/**
 * Caching the frozen part of an encoder under its adapted layers, so that a federated benchmark can
 * train hundreds of adapters in minutes. When LoRA adapts only the last layer, everything below it is
 * fixed: the hidden state entering that layer is a function of the tokens alone. We compute it once per
 * sample with the executor on the full model, and build a truncated model whose first node looks it up
 * (a Gather from a table of cached rows) where the lower layers used to be; a sample's token ids become
 * the indices of its rows. The attention mask is still computed from `attention_mask`, and pooling
 * still uses each sample's own length, so the truncated model's output equals the full model's on every
 * real position, with or without an adapter in the last layer (the benchmark measures it).
 */
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { mergeAdapter } from "../../src/compute/lora/GraphLora.js"
import { compile, forward } from "../../src/compute/lora/train/Executor.js"
import type { ClassificationSample } from "../../src/compute/lora/train/Objectives.js"
import { meanPool, tokenFeeds } from "../../src/compute/lora/train/Objectives.js"
import type { FloatTensor } from "../../src/compute/lora/train/Tensor.js"
import type { OnnxModel, OnnxNode } from "../../src/compute/onnx/OnnxModel.js"
import { float32Tensor } from "../../src/compute/onnx/Tensors.js"

const TABLE = "cached_hidden.table"

export interface CachedTask {
  /** The adapted layer and what follows it, fed by the table of cached hidden states. */
  readonly model: OnnxModel
  /** Each set of samples with token ids replaced by row indices of the table. */
  readonly sets: ReadonlyArray<ReadonlyArray<ClassificationSample>>
  /** The tensor whose values the table holds. */
  readonly cached: string
  readonly rows: number
}

/**
 * The truncated model for adapters in the layer whose node names start with `layerPrefix` (e.g.
 * `/layers.3/`), and the sets re-indexed into its table. Refuses a graph where something besides the
 * hidden state and mask-only values crosses into that layer.
 */
export const cacheBelowLayer = (
  model: OnnxModel,
  layerPrefix: string,
  sets: ReadonlyArray<ReadonlyArray<ClassificationSample>>
): CachedTask => {
  const nodes = model.graph.nodes
  const first = nodes.findIndex((node) => (node.name ?? "").startsWith(layerPrefix))
  if (first < 0) throw new Error(`no node of the model starts with ${layerPrefix}`)
  const producer = new Map<string, number>()
  nodes.forEach((node, index) => node.outputs.forEach((output) => producer.set(output, index)))
  const ancestors = (tensor: string, into: Set<number>) => {
    const index = producer.get(tensor)
    if (index === undefined || into.has(index)) return
    into.add(index)
    for (const input of nodes[index]!.inputs) ancestors(input, into)
  }
  const crossing = new Set<string>()
  for (const node of nodes.slice(first)) {
    for (const input of node.inputs) if ((producer.get(input) ?? Number.POSITIVE_INFINITY) < first) crossing.add(input)
  }
  const dependsOnTokens = (tensor: string) => {
    const found = new Set<number>()
    ancestors(tensor, found)
    return [...found].some((index) => nodes[index]!.inputs.includes("input_ids"))
  }
  const hidden = [...crossing].filter(dependsOnTokens)
  if (hidden.length !== 1) throw new Error(`expected one hidden state into ${layerPrefix}, found ${hidden.join(", ")}`)
  const cached = hidden[0]!
  const kept = new Set<number>()
  for (const tensor of crossing) if (tensor !== cached) ancestors(tensor, kept)
  // Rows of the table: row 0 is padding, then each sample's positions in turn.
  const program = compile(model, [])
  let rows = 1
  const chunks: Array<Float32Array> = []
  const width = model.graph.outputs[0]!.type!.tensorType!.shape!.at(-1)!.value!
  const remapped = sets.map((set) =>
    set.map((sample) => {
      const values = forward(program, tokenFeeds(model, [sample.ids])).values.get(cached) as FloatTensor
      chunks.push(values.data.slice(0, sample.ids.length * width))
      const ids = sample.ids.map((_, t) => rows + t)
      rows += sample.ids.length
      return { ids, label: sample.label }
    })
  )
  const table = new Float32Array(rows * width)
  let offset = width
  for (const chunk of chunks) {
    table.set(chunk, offset)
    offset += chunk.length
  }
  const lookup: OnnxNode = {
    opType: "Gather",
    name: "/cached_hidden/Gather",
    inputs: [TABLE, "input_ids"],
    outputs: [cached],
    attributes: []
  }
  const keptNodes = [...nodes.filter((_, index) => kept.has(index)), lookup, ...nodes.slice(first)]
  const used = new Set(keptNodes.flatMap((node) => node.inputs))
  return {
    model: {
      ...model,
      graph: {
        ...model.graph,
        nodes: keptNodes,
        initializers: [
          ...model.graph.initializers.filter((initializer) => used.has(initializer.name ?? "")),
          float32Tensor(TABLE, [rows, width], table)
        ],
        valueInfo: []
      }
    },
    sets: remapped,
    cached,
    rows
  }
}

/** Pooled outputs of `model` with `weights` merged (or of the base without), by the executor. */
export const pooledOutputs = (
  model: OnnxModel,
  weights: LoraWeights | undefined,
  samples: ReadonlyArray<ClassificationSample>
): Float32Array => {
  const rows = samples.map((sample) => sample.ids)
  const merged = weights === undefined ? model : mergeAdapter(model, weights)
  const output = forward(compile(merged, []), tokenFeeds(merged, rows)).values.get(merged.graph.outputs[0]!.name)
  return meanPool(output as FloatTensor, rows)
}

/** max_i |a_i - b_i|. */
export const maxDifference = (a: Float32Array, b: Float32Array): number => {
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!))
  return worst
}
