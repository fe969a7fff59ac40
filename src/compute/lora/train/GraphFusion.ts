/**
 * Rewrites of a graph's node list that the executor runs faster and that compute the same function:
 * GPT-2's exported GELU, ½ x (1 + erf(x / √2)) spelled as Div, Erf, Add, Mul, Mul, becomes one ONNX
 * Gelu node, so that a step makes one pass over the MLP's widest activation instead of five, forward
 * and backward; and a layer with its LoRA branch and bias (MatMul, the branch's up MatMul, Add, Add)
 * becomes one LowRankLinear node (FusedOperators.ts).
 */

/** The domain of the nodes only these rewrites write. */
export const FUSED_DOMAIN = "edge-net"
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

/**
 * Fuses base = MatMul(x, W) and up = MatMul(down, B) added together, and a bias added to the sum when
 * there is one, into LowRankLinear(x, W, down, B, bias), placed where the last of them was (every input
 * is computed by then). Only when W (and the bias) are constants of the right ranks and nothing else
 * reads base, up or the sum.
 */
export const fuseLowRankLinear = (
  nodes: ReadonlyArray<OnnxNode>,
  constants: ReadonlyMap<string, OnnxTensor>,
  kept: ReadonlySet<string>
): Array<OnnxNode> => {
  const producers = new Map<string, OnnxNode>()
  const consumers = new Map<string, number>()
  for (const node of nodes) {
    for (const output of node.outputs) producers.set(output, node)
    for (const input of node.inputs) consumers.set(input, (consumers.get(input) ?? 0) + 1)
  }
  const isDefault = (node: OnnxNode) => node.domain === undefined || node.domain === "" || node.domain === "ai.onnx"
  const single = (value: string) => consumers.get(value) === 1 && !kept.has(value)
  const matMul = (value: string) => {
    const node = producers.get(value)
    return node !== undefined && node.opType === "MatMul" && isDefault(node) && single(value) ? node : undefined
  }
  const removed = new Set<OnnxNode>()
  const replaced = new Map<OnnxNode, OnnxNode>()
  for (const add of nodes) {
    if (add.opType !== "Add" || !isDefault(add) || add.inputs.length !== 2 || removed.has(add)) continue
    // Either order: the base product (weight a 2-D constant) and the branch's (B not a constant).
    const [first, second] = add.inputs as [string, string]
    const pair = [[first, second], [second, first]].map(([a, b]) => [matMul(a!), matMul(b!)] as const).find((
      [base, up]
    ) =>
      base !== undefined && up !== undefined && constants.get(base.inputs[1]!)?.dims.length === 2 &&
      !constants.has(up.inputs[1]!)
    )
    if (pair === undefined) continue
    const [base, up] = pair as readonly [OnnxNode, OnnxNode]
    const sum = add.outputs[0]!
    // The bias Add reading the sum, when the sum has no other reader and the bias is a 1-D constant.
    const biasAdd = single(sum)
      ? nodes.find((node) =>
        node.opType === "Add" && isDefault(node) && node.inputs.length === 2 && node.inputs.includes(sum) &&
        constants.get(node.inputs[node.inputs[0] === sum ? 1 : 0]!)?.dims.length === 1
      )
      : undefined
    const bias = biasAdd?.inputs[biasAdd.inputs[0] === sum ? 1 : 0]
    const last = biasAdd ?? add
    replaced.set(last, {
      opType: "LowRankLinear",
      domain: FUSED_DOMAIN,
      name: `${last.name ?? last.outputs[0]}/LowRankLinear`,
      inputs: [base.inputs[0]!, base.inputs[1]!, up.inputs[0]!, up.inputs[1]!, ...(bias === undefined ? [] : [bias])],
      outputs: [last.outputs[0]!],
      attributes: []
    })
    for (const node of [base, up, add]) if (node !== last) removed.add(node)
  }
  return nodes.filter((node) => !removed.has(node)).map((node) => replaced.get(node) ?? node)
}
