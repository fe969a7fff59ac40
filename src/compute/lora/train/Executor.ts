/**
 * A differentiable interpreter for an ONNX graph: the forward pass keeps every value, and the backward
 * pass carries gradients from chosen outputs to chosen graph inputs (the trainable parameters) through
 * the nodes that depend on them, in reverse order. Nothing else gets a gradient: the base model's
 * weights are constants, which is what makes LoRA training cheap (no weight gradients for W, only
 * activation gradients through it).
 *
 * Pure TypeScript over typed arrays, so the same code trains in Node's worker threads and in a
 * browser's Web Worker.
 */
import { constantTensor } from "../../onnx/Graph.js"
import type { OnnxModel, OnnxNode, OnnxTensor } from "../../onnx/OnnxModel.js"
import { DataType } from "../../onnx/OnnxModel.js"
import { tensorToFloat32 } from "../../onnx/Tensors.js"
import { fuseGelu, fuseLowRankLinear } from "./GraphFusion.js"
import type { Operator } from "./Operator.js"
import { ExecutorError } from "./Operator.js"
import { operatorFor } from "./Operators.js"
import type { Tensor } from "./Tensor.js"
import {
  boolTensor,
  BufferPool,
  floatTensor,
  giveBackFloats,
  intTensor,
  markConstant,
  sizeOf,
  unfilledFloats
} from "./Tensor.js"

export { ExecutorError } from "./Operator.js"

interface Step {
  readonly node: OnnxNode
  readonly operator: Operator
  /** Per input: does a parameter reach it (so its gradient is needed)? */
  readonly wants: ReadonlyArray<boolean>
  readonly differentiated: boolean
}

export interface Program {
  readonly steps: ReadonlyArray<Step>
  readonly constants: ReadonlyMap<string, Tensor>
  readonly parameters: ReadonlyArray<string>
  readonly outputs: ReadonlyArray<string>
  /** Arrays for the runs of a trainer to reuse, step after step (Tensor.ts's BufferPool). */
  readonly pool: BufferPool
  /**
   * For each value a backward step reads (as an input or an output of a differentiated node), the
   * index of the last step of the backward pass (the lowest) that reads it.
   */
  readonly lastBackwardRead: ReadonlyMap<string, number>
}

/** The values of one forward pass, kept for the backward pass. */
export interface Activations {
  readonly values: Map<string, Tensor>
  readonly training: boolean
  readonly random: () => number
}

const int64Values = (tensor: OnnxTensor): Float64Array => {
  if (tensor.int64Data !== undefined) return Float64Array.from(tensor.int64Data, Number)
  if (tensor.rawData !== undefined) {
    const copy = new Uint8Array(tensor.rawData)
    return Float64Array.from(new BigInt64Array(copy.buffer, 0, copy.byteLength / 8), Number)
  }
  return new Float64Array(0)
}

const int32Values = (tensor: OnnxTensor): Float64Array => {
  if (tensor.int32Data !== undefined) return Float64Array.from(tensor.int32Data)
  if (tensor.rawData !== undefined) {
    const copy = new Uint8Array(tensor.rawData)
    return Float64Array.from(new Int32Array(copy.buffer, 0, copy.byteLength / 4))
  }
  return new Float64Array(0)
}

/** INT8 / UINT8 storage (quantized weights, packed 4-bit blocks): raw bytes, or one value per int32_data entry. */
const byteValues = (tensor: OnnxTensor): Float64Array => {
  if (tensor.rawData !== undefined) {
    const copy = new Uint8Array(tensor.rawData)
    return tensor.dataType === DataType.INT8 ? Float64Array.from(new Int8Array(copy.buffer)) : Float64Array.from(copy)
  }
  return Float64Array.from(tensor.int32Data ?? [])
}

/** An ONNX tensor (initializer or Constant) as an executor tensor. */
export const fromOnnxTensor = (tensor: OnnxTensor): Tensor => {
  const dims = tensor.dims
  switch (tensor.dataType) {
    case DataType.FLOAT:
    case DataType.FLOAT16:
      return floatTensor(dims, tensorToFloat32(tensor))
    case DataType.INT64:
      return intTensor(dims, int64Values(tensor))
    case DataType.INT32:
      return intTensor(dims, int32Values(tensor))
    case DataType.INT8:
    case DataType.UINT8:
      return intTensor(dims, byteValues(tensor))
    case DataType.BOOL: {
      const values = tensor.rawData === undefined
        ? Uint8Array.from(tensor.int32Data ?? [])
        : new Uint8Array(tensor.rawData)
      return boolTensor(dims, values.length === sizeOf(dims) ? values : new Uint8Array(sizeOf(dims)))
    }
    default:
      throw new ExecutorError(
        `tensor ${tensor.name ?? ""} has ONNX type ${tensor.dataType}, which training does not support`
      )
  }
}

/**
 * Prepares a graph for training the named graph inputs. Unknown operators are refused here, by name,
 * before any data is touched.
 */
export const compile = (model: OnnxModel, parameters: ReadonlyArray<string>): Program => {
  const graph = model.graph
  const inputNames = new Set(graph.inputs.map((input) => input.name))
  for (const parameter of parameters) {
    if (!inputNames.has(parameter)) throw new ExecutorError(`${parameter} is not an input of the graph`)
  }
  const constants = new Map<string, Tensor>()
  for (const initializer of graph.initializers) {
    if (initializer.name !== undefined) constants.set(initializer.name, fromOnnxTensor(initializer))
  }
  const unsupported = new Set<string>()
  const reached = new Set(parameters)
  const steps: Array<Step> = []
  for (const node of fusedNodes(graph, inputNames)) {
    const domain = node.domain ?? ""
    const isDefault = domain === "" || domain === "ai.onnx"
    if (isDefault && node.opType === "Constant") {
      const value = constantTensor(node)
      if (value === undefined) throw new ExecutorError(`Constant ${node.name ?? ""} has no tensor value`)
      constants.set(node.outputs[0]!, fromOnnxTensor(value))
      continue
    }
    const operator = operatorFor(node.opType, domain)
    if (operator === undefined) {
      unsupported.add(isDefault ? node.opType : `${domain}.${node.opType}`)
      continue
    }
    // A node of constants alone (the tied LM head's transposed embedding) is computed once, here.
    if (foldable(node, constants, inputNames)) {
      const outputs = operator.forward(node.inputs.map((name) => constants.get(name)), {
        node,
        training: false,
        random: Math.random
      })
      node.outputs.forEach((name, index) => {
        const output = outputs[index]
        if (name !== "" && output !== undefined) constants.set(name, output)
      })
      continue
    }
    const wants = node.inputs.map((name) => reached.has(name))
    const differentiated = operator.backward !== undefined && wants.some(Boolean)
    if (differentiated) { for (const output of node.outputs) reached.add(output) }
    steps.push({ node, operator, wants, differentiated })
  }
  if (unsupported.size > 0) {
    throw new ExecutorError(
      `training does not support the operators ${[...unsupported].sort().join(", ")} of this model`
    )
  }
  for (const tensor of constants.values()) if (tensor.kind === "float") markConstant(tensor.data)
  const lastBackwardRead = new Map<string, number>()
  steps.forEach((step, index) => {
    if (!step.differentiated) return
    for (const name of [...step.node.inputs, ...step.node.outputs]) {
      if (name !== "" && !lastBackwardRead.has(name)) lastBackwardRead.set(name, index)
    }
  })
  return {
    steps,
    constants,
    parameters,
    outputs: graph.outputs.map((output) => output.name),
    pool: new BufferPool(),
    lastBackwardRead
  }
}

/** The graph's nodes with GraphFusion's rewrites, which read the constants that are not graph inputs. */
const fusedNodes = (graph: OnnxModel["graph"], inputs: ReadonlySet<string>): Array<OnnxNode> => {
  const tensors = new Map<string, OnnxTensor>()
  for (const initializer of graph.initializers) {
    if (initializer.name !== undefined && !inputs.has(initializer.name)) tensors.set(initializer.name, initializer)
  }
  for (const node of graph.nodes) {
    const value = constantTensor(node)
    if (value !== undefined) tensors.set(node.outputs[0]!, value)
  }
  const kept = new Set(graph.outputs.map((output) => output.name))
  return fuseLowRankLinear(fuseGelu(graph.nodes, tensors, kept), tensors, kept)
}

/** Whether a node's inputs are all constants (not graph inputs) and its result is the same every run. */
const foldable = (node: OnnxNode, constants: ReadonlyMap<string, Tensor>, inputs: ReadonlySet<string>) =>
  node.opType !== "Dropout" && node.inputs.some((name) => name !== "") &&
  node.inputs.every((name) => name === "" || (constants.has(name) && !inputs.has(name)))

/** Runs the graph; `training` turns Dropout on (drawing from `random`). */
export const forward = (
  program: Program,
  feeds: ReadonlyMap<string, Tensor>,
  options: { readonly training?: boolean; readonly random?: () => number } = {}
): Activations => {
  const values = new Map<string, Tensor>(program.constants)
  for (const [name, tensor] of feeds) values.set(name, tensor)
  const training = options.training ?? false
  const random = options.random ?? Math.random
  for (const step of program.steps) {
    const inputs = step.node.inputs.map((name) => {
      if (name === "") return undefined
      const value = values.get(name)
      if (value === undefined) {
        throw new ExecutorError(
          `${step.node.opType} ${step.node.name ?? ""}: its input ${name} has no value (was it fed?)`
        )
      }
      return value
    })
    const outputs = step.operator.forward(inputs, { node: step.node, training, random })
    step.node.outputs.forEach((name, index) => {
      const output = outputs[index]
      if (name !== "" && output !== undefined) values.set(name, output)
    })
  }
  return { values, training, random }
}

/**
 * The forward pass's float arrays by the backward step after which nothing reads them (the step count
 * for those no backward step reads): a running trainer's pool takes them back then, and later steps
 * of the backward pass reuse them. An array several values share (Reshape's output is its input's
 * data) goes back after the last read of any of them.
 */
const valuesSpentAt = (program: Program, values: ReadonlyMap<string, Tensor>) => {
  const spentAt = new Map<Float32Array, number>()
  for (const [name, tensor] of values) {
    if (tensor.kind !== "float") continue
    const read = program.lastBackwardRead.get(name) ?? program.steps.length
    spentAt.set(tensor.data, Math.min(spentAt.get(tensor.data) ?? read, read))
  }
  const byStep = new Map<number, Array<Float32Array>>()
  for (const [array, step] of spentAt) {
    const arrays = byStep.get(step)
    if (arrays === undefined) byStep.set(step, [array])
    else arrays.push(array)
  }
  return byStep
}

const accumulate = (
  grads: Map<string, Float32Array>,
  name: string,
  grad: Float32Array,
  spent: Set<Float32Array>
) => {
  const existing = grads.get(name)
  if (existing === undefined) {
    grads.set(name, grad)
    return
  }
  // Backward functions may hand one array to several inputs: sum into a fresh one, never in place.
  const sum = unfilledFloats(existing.length)
  for (let i = 0; i < sum.length; i++) sum[i] = existing[i]! + grad[i]!
  grads.set(name, sum)
  spent.add(existing)
  spent.add(grad)
}

/**
 * Gradients of the parameters, given the gradient of a scalar loss with respect to some values
 * (usually graph outputs) of a forward pass.
 */
export const backward = (
  program: Program,
  activations: Activations,
  seeds: ReadonlyMap<string, Float32Array>
): Map<string, Float32Array> => {
  const grads = new Map<string, Float32Array>(seeds)
  const { values } = activations
  const parameters = new Set(program.parameters)
  const spentValues = valuesSpentAt(program, values)
  for (const array of spentValues.get(program.steps.length) ?? []) giveBackFloats(array)
  for (let index = program.steps.length - 1; index >= 0; index--) {
    const step = program.steps[index]!
    if (index < program.steps.length - 1) {
      for (const array of spentValues.get(index + 1) ?? []) giveBackFloats(array)
    }
    if (!step.differentiated) continue
    const outputGrads = step.node.outputs.map((name) => grads.get(name))
    if (outputGrads.every((grad) => grad === undefined)) continue
    const inputs = step.node.inputs.map((name) => (name === "" ? undefined : values.get(name)))
    const outputs = step.node.outputs.map((name) => values.get(name)!)
    const inputGrads = step.operator.backward!(inputs, outputs, outputGrads, step.wants, {
      node: step.node,
      training: activations.training,
      random: activations.random
    })
    const spent = new Set<Float32Array>()
    for (const name of step.node.outputs) {
      const grad = grads.get(name)
      if (grad !== undefined && !parameters.has(name)) {
        grads.delete(name)
        spent.add(grad)
      }
    }
    step.node.inputs.forEach((name, position) => {
      const grad = inputGrads[position]
      if (grad !== undefined && step.wants[position]) accumulate(grads, name, grad, spent)
    })
    // Gradients no entry holds any more go back to a running trainer's pool for the next nodes to use:
    // the backward pass then needs about one layer's gradients at a time, not every layer's.
    if (spent.size > 0) {
      const live = new Set(grads.values())
      for (const grad of spent) if (!live.has(grad)) giveBackFloats(grad)
    }
  }
  const result = new Map<string, Float32Array>()
  for (const parameter of program.parameters) {
    const value = values.get(parameter)
    result.set(parameter, grads.get(parameter) ?? new Float32Array(value === undefined ? 0 : value.data.length))
  }
  return result
}
