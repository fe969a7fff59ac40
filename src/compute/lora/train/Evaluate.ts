/**
 * Held-out figures for an adapter, computed by ONNX Runtime on the model the user will run (the base,
 * the adapter merged into its FP32 weights, or the adapter as a branch beside quantized weights): next-
 * token loss for a causal LM, and pooled features for a classifier head. Training uses the TypeScript
 * executor; judging it uses the real runtime.
 */
import type * as ort from "onnxruntime-node"
import type { OnnxModel } from "../../onnx/OnnxModel.js"
import { writeModel } from "../../onnx/OnnxModel.js"
import type { Feeds, FeedTensor } from "../../optimize/Runner.js"
import { createSession, run } from "../../optimize/Runner.js"
import type { LoraWeights } from "../Adapter.js"
import { adapterLayout, feedsFor, injectAdapterInputs, loraTargets, mergeAdapter } from "../GraphLora.js"
import type { ClassifierHead } from "./ClassifierHead.js"
import { argmax, headLogits } from "./ClassifierHead.js"
import type { CausalLmSample } from "./Objectives.js"
import { meanPool, nextTokenLoss, tokenFeeds } from "./Objectives.js"
import type { Tensor } from "./Tensor.js"
import { floatTensor } from "./Tensor.js"

/** A session with feeds given to every run besides the tokens: an adapter's factors, for a branch. */
export interface AdaptedSession {
  readonly session: ort.InferenceSession
  readonly feeds: Feeds
}

const sessionOf = (target: ort.InferenceSession | AdaptedSession) =>
  "session" in target ? target : { session: target, feeds: {} }

/**
 * `model` running `weights` in ONNX Runtime: merged into the weights when every adapted weight is FP32;
 * else (an INT8 or 4-bit base, which cannot take a merge) as a branch fed the adapter with every run.
 */
export const adaptedSession = async (model: OnnxModel, weights: LoraWeights): Promise<AdaptedSession> => {
  const modules = Object.keys(weights.modules)
  const storage = new Map(loraTargets(model).map((target) => [target.module, target.storage]))
  if (modules.every((module) => storage.get(module) === "float32")) {
    return { session: await createSession(writeModel(mergeAdapter(model, weights))), feeds: {} }
  }
  const injected = injectAdapterInputs(model, modules, weights.rank)
  return { session: await createSession(writeModel(injected)), feeds: feedsFor(adapterLayout(injected), weights) }
}

/** Executor tensors as ORT feeds (integers as int64, booleans as bool). */
export const ortFeeds = (tensors: ReadonlyMap<string, Tensor>): Feeds => {
  const feeds: Record<string, FeedTensor> = {}
  for (const [name, tensor] of tensors) {
    feeds[name] = tensor.kind === "float"
      ? { type: "float32", data: tensor.data, dims: tensor.dims }
      : tensor.kind === "int"
      ? { type: "int64", data: BigInt64Array.from(tensor.data, (value) => BigInt(value)), dims: tensor.dims }
      : { type: "bool", data: tensor.data, dims: tensor.dims }
  }
  return feeds
}

/** Mean next-token loss, nats per token, of windows under a session of `model` (or of `model` with an adapter). */
export const heldOutLoss = async (
  target: ort.InferenceSession | AdaptedSession,
  model: OnnxModel,
  windows: ReadonlyArray<CausalLmSample>,
  batchSize = 8
): Promise<number> => {
  const { session, feeds } = sessionOf(target)
  const output = model.graph.outputs[0]!.name
  let total = 0
  let count = 0
  for (let start = 0; start < windows.length; start += batchSize) {
    const rows = windows.slice(start, start + batchSize).map((window) => window.ids)
    const logits = (await run(session, { ...ortFeeds(tokenFeeds(model, rows)), ...feeds }, [output]))[output]!
    const loss = nextTokenLoss(floatTensor(logits.dims, logits.data), rows)
    total += loss.total
    count += loss.count
  }
  return total / Math.max(1, count)
}

/** The mask-weighted mean of the first output over each sequence, [hidden] per sequence. */
export const pooledFeatures = async (
  target: ort.InferenceSession | AdaptedSession,
  model: OnnxModel,
  sequences: ReadonlyArray<{ readonly ids: ReadonlyArray<number> }>,
  options: { readonly batchSize?: number; readonly padId?: number } = {}
): Promise<Array<Float32Array>> => {
  const { session, feeds } = sessionOf(target)
  const output = model.graph.outputs[0]!.name
  const batchSize = options.batchSize ?? 16
  const features: Array<Float32Array> = []
  for (let start = 0; start < sequences.length; start += batchSize) {
    const rows = sequences.slice(start, start + batchSize).map((sequence) => sequence.ids)
    const tokens = ortFeeds(tokenFeeds(model, rows, options.padId ?? 0))
    const hidden = (await run(session, { ...tokens, ...feeds }, [output]))[output]!
    const width = hidden.dims[2]!
    const pooled = meanPool(floatTensor(hidden.dims, hidden.data), rows)
    for (let b = 0; b < rows.length; b++) features.push(pooled.slice(b * width, (b + 1) * width))
  }
  return features
}

/** The fraction of features a head labels correctly. */
export const accuracy = (
  head: ClassifierHead,
  features: ReadonlyArray<Float32Array>,
  labels: ReadonlyArray<number>
): number => {
  let correct = 0
  features.forEach((feature, index) => {
    if (argmax(headLogits(head, feature, 1)) === labels[index]) correct++
  })
  return correct / Math.max(1, features.length)
}
