/**
 * What an operator of the training executor is (a forward, and for the differentiable ones a backward)
 * and the helpers every operator reads its node with: attributes, required inputs, axes.
 */
import type { OnnxNode } from "../../onnx/OnnxModel.js"
import type { FloatTensor, Tensor } from "./Tensor.js"

export class ExecutorError extends Error {
  override readonly name = "ExecutorError"
}

export const fail = (node: OnnxNode, reason: string): never => {
  throw new ExecutorError(`${node.opType} ${node.name ?? node.outputs[0] ?? ""}: ${reason}`)
}

/** What an operator sees of the run: its node's attributes, and the run's dropout draws. */
export interface OpContext {
  readonly node: OnnxNode
  readonly training: boolean
  readonly random: () => number
}

export type Forward = (inputs: ReadonlyArray<Tensor | undefined>, context: OpContext) => Array<Tensor>

/**
 * Gradients for the inputs whose `wants` flag is set, from the gradients of the outputs (undefined for
 * an output nothing downstream differentiates). `outputs` are the forward results.
 */
export type Backward = (
  inputs: ReadonlyArray<Tensor | undefined>,
  outputs: ReadonlyArray<Tensor>,
  outputGrads: ReadonlyArray<Float32Array | undefined>,
  wants: ReadonlyArray<boolean>,
  context: OpContext
) => Array<Float32Array | undefined>

export interface Operator {
  readonly forward: Forward
  readonly backward?: Backward
}

// ---- attributes and inputs ----

export const intAttribute = (node: OnnxNode, name: string, fallback?: number): number => {
  const attribute = node.attributes.find((candidate) => candidate.name === name)
  if (attribute?.i !== undefined) return Number(attribute.i)
  if (fallback === undefined) return fail(node, `needs the ${name} attribute`)
  return fallback
}

export const floatAttribute = (node: OnnxNode, name: string, fallback: number): number =>
  node.attributes.find((candidate) => candidate.name === name)?.f ?? fallback

export const stringAttribute = (node: OnnxNode, name: string): string | undefined => {
  const value = node.attributes.find((candidate) => candidate.name === name)?.s
  return value === undefined ? undefined : new TextDecoder().decode(value)
}

export const intsAttribute = (node: OnnxNode, name: string): Array<number> | undefined =>
  node.attributes.find((candidate) => candidate.name === name)?.ints?.map(Number)

export const required = <T extends Tensor>(
  node: OnnxNode,
  inputs: ReadonlyArray<Tensor | undefined>,
  index: number
): T => {
  const tensor = inputs[index]
  if (tensor === undefined) return fail(node, `input ${index} is missing`)
  return tensor as T
}

export const asFloat = (
  node: OnnxNode,
  tensor: Tensor
): FloatTensor => (tensor.kind === "float" ? tensor : fail(node, `expects float input, got ${tensor.kind}`))

export const intValues = (tensor: Tensor): Array<number> => Array.from(tensor.data as ArrayLike<number>)

export const normalizeAxis = (node: OnnxNode, axis: number, rank: number): number => {
  const normalized = axis < 0 ? axis + rank : axis
  if (normalized < 0 || normalized >= rank) fail(node, `axis ${axis} is out of range for rank ${rank}`)
  return normalized
}
