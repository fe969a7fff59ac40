/**
 * Rewrites of a graph's node list that the executor runs faster and that compute the same function:
 * GPT-2's exported GELU, ½ x (1 + erf(x / √2)) spelled as Div, Erf, Add, Mul, Mul, becomes one ONNX
 * Gelu node, so that a step makes one pass over the MLP's widest activation instead of five, forward
 * and backward.
 */
import type { OnnxNode, OnnxTensor } from "../../onnx/OnnxModel.js"
import { tensorToFloat32 } from "../../onnx/Tensors.js"

/** The single value of a scalar constant, or undefined for anything else. */
const scalarOf = (tensor: OnnxTensor | undefined): number | undefined => {
  if (tensor === undefined || tensor.dims.reduce((size, dim) => size * dim, 1) !== 1) return undefined
  const values = tensorToFloat32(tensor)
  return values.length === 1 ? values[0] : undefined
}

const near = (value: number | undefined, target: number) => value !== undefined && Math.abs(value - target) < 1e-6

/**
 * Fuses each Div(x, √2) → Erf → Add(1) → Mul(x) → Mul(0.5) chain whose intermediate values nothing
 * else reads into Gelu(x). `constants` are the graph's initializers and Constant nodes by name;
 * `kept` are names that must stay (graph outputs).
 */
export const fuseGelu = (
  nodes: ReadonlyArray<OnnxNode>,
  constants: ReadonlyMap<string, OnnxTensor>,
  kept: ReadonlySet<string>
): Array<OnnxNode> => {
  const consumers = new Map<string, Array<OnnxNode>>()
  for (const node of nodes) {
    for (const input of node.inputs) consumers.set(input, [...(consumers.get(input) ?? []), node])
  }
  const isDefault = (node: OnnxNode) => node.domain === undefined || node.domain === "" || node.domain === "ai.onnx"
  /** The one node reading `value` (an intermediate nothing else reads), when it has the op type. */
  const only = (value: string, opType: string) => {
    const readers = consumers.get(value) ?? []
    const reader = readers[0]
    return readers.length === 1 && !kept.has(value) && reader!.opType === opType && isDefault(reader!)
      ? reader
      : undefined
  }
  /** The input of a two-input node other than `value`. */
  const other = (node: OnnxNode, value: string) => (node.inputs[0] === value ? node.inputs[1] : node.inputs[0])
  const removed = new Set<OnnxNode>()
  const replaced = new Map<OnnxNode, OnnxNode>()
  for (const div of nodes) {
    if (div.opType !== "Div" || !isDefault(div) || div.inputs.length !== 2) continue
    const [x, divisor] = div.inputs as [string, string]
    if (!near(scalarOf(constants.get(divisor)), Math.SQRT2)) continue
    const erf = only(div.outputs[0]!, "Erf")
    const add = erf === undefined ? undefined : only(erf.outputs[0]!, "Add")
    if (add === undefined || !near(scalarOf(constants.get(other(add, erf!.outputs[0]!) ?? "")), 1)) continue
    const mul = only(add.outputs[0]!, "Mul")
    if (mul === undefined || other(mul, add.outputs[0]!) !== x) continue
    const half = only(mul.outputs[0]!, "Mul")
    if (half === undefined || !near(scalarOf(constants.get(other(half, mul.outputs[0]!) ?? "")), 0.5)) continue
    replaced.set(div, {
      opType: "Gelu",
      name: `${half.name ?? half.outputs[0]}/Gelu`,
      inputs: [x],
      outputs: [half.outputs[0]!],
      attributes: []
    })
    for (const node of [erf!, add, mul, half]) removed.add(node)
  }
  return nodes.filter((node) => !removed.has(node)).map((node) => replaced.get(node) ?? node)
}
