/**
 * Inputs for calibrating and validating a model: token ids from texts for text models (encoders and
 * decoders with an empty KV cache), or seeded random tensors shaped by the model's declared inputs.
 */
import type { OnnxModel, OnnxValueInfo } from "../onnx/OnnxModel.js"
import { DataType } from "../onnx/OnnxModel.js"
import type { Tokenizer } from "../tokenizer/Tokenizer.js"
import type { Feeds, FeedTensor } from "./Runner.js"

/** The graph inputs a caller must feed (initializers listed as inputs by old exporters excluded). */
export const modelInputs = (model: OnnxModel): Array<OnnxValueInfo> => {
  const initializers = new Set(model.graph.initializers.map((tensor) => tensor.name))
  return model.graph.inputs.filter((input) => !initializers.has(input.name))
}

const int64 = (values: ArrayLike<number>, dims: ReadonlyArray<number>): FeedTensor => ({
  type: "int64",
  data: BigInt64Array.from(Array.from(values, (value) => BigInt(value))),
  dims
})

/** Feeds for one text, for a model with `input_ids` (and any of attention mask, type ids, positions, past). */
export const textFeeds = (model: OnnxModel, tokenizer: Tokenizer, text: string, maxTokens = 64): Feeds => {
  const inputs = modelInputs(model)
  // Never more tokens than the model has positions for (the tokenizer knows its model's limit).
  const encoding = tokenizer.encode(text, { truncation: Math.min(maxTokens, tokenizer.maxLength ?? maxTokens) })
  const length = encoding.ids.length
  const feeds: Record<string, FeedTensor> = {}
  for (const input of inputs) {
    const shape = input.type?.tensorType?.shape ?? []
    if (input.name === "input_ids") feeds[input.name] = int64(encoding.ids, [1, length])
    else if (input.name === "attention_mask") feeds[input.name] = int64(encoding.attentionMask, [1, length])
    else if (input.name === "token_type_ids") feeds[input.name] = int64(encoding.typeIds, [1, length])
    else if (input.name === "position_ids") feeds[input.name] = int64(Array.from({ length }, (_, i) => i), [1, length])
    else if (input.name.startsWith("past_key_values")) {
      // An empty cache: [batch, heads, 0, head_dim] from the declared shape.
      const dims = shape.map((dim, axis) => (axis === 0 ? 1 : axis === 2 ? 0 : dim.value ?? 1))
      feeds[input.name] = { type: "float32", data: new Float32Array(0), dims }
    }
  }
  return feeds
}

/** Seeded pseudo-random values in [-1, 1). */
const seeded = (seed: number) => {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return ((state >>> 0) / 2 ** 32) * 2 - 1
  }
}

/**
 * Random feeds from the declared input shapes, symbolic dimensions set from `sizes` (by name, else 1).
 * Integer inputs get zeros (or `integers[name]`); floats get seeded values.
 */
export const randomFeeds = (
  model: OnnxModel,
  seed: number,
  sizes: Readonly<Record<string, number>> = {},
  integers: Readonly<Record<string, number>> = {}
): Feeds => {
  const next = seeded(seed)
  const feeds: Record<string, FeedTensor> = {}
  for (const input of modelInputs(model)) {
    const tensorType = input.type?.tensorType
    const dims = (tensorType?.shape ?? []).map((dim) =>
      dim.value ?? (dim.param === undefined ? 1 : sizes[dim.param] ?? 1)
    )
    const count = dims.reduce((product, dim) => product * dim, 1)
    if (tensorType?.elemType === DataType.FLOAT) {
      feeds[input.name] = { type: "float32", data: Float32Array.from({ length: count }, next), dims }
    } else if (tensorType?.elemType === DataType.INT64) {
      feeds[input.name] = int64(Array.from({ length: count }, () => integers[input.name] ?? 0), dims)
    }
  }
  return feeds
}

/** Calibration inputs and the held-out inputs that validate the result (never calibrated on). */
export interface FeedSets {
  readonly calibration: ReadonlyArray<Feeds>
  readonly heldOut: ReadonlyArray<Feeds>
}

/** The last fifth (at least one) held out; the rest (at least one) calibrates. */
export const splitHeldOut = (feeds: ReadonlyArray<Feeds>): FeedSets => {
  const held = Math.max(1, Math.floor(feeds.length / 5))
  return { calibration: feeds.slice(0, Math.max(1, feeds.length - held)), heldOut: feeds.slice(-held) }
}

/** Texts through the model's tokenizer, at most `maxTokens` each. */
export const textFeedSets = (model: OnnxModel, tokenizer: Tokenizer, texts: ReadonlyArray<string>, maxTokens = 128) =>
  splitHeldOut(texts.map((text) => textFeeds(model, tokenizer, text, maxTokens)))

/** Float32 samples for the model's first input, one per row of `data` (shape [samples, ...sample]). */
export const sampleFeedSets = (
  model: OnnxModel,
  data: Float32Array,
  shape: ReadonlyArray<number>
): FeedSets | string => {
  const input = modelInputs(model)[0]
  if (input === undefined) return "the model has no inputs to feed samples to"
  const [samples = 1, ...rest] = shape
  const size = rest.reduce((a, b) => a * b, 1)
  if (samples * size !== data.length) return `${data.length} values do not fill the shape [${shape.join(", ")}]`
  return splitHeldOut(Array.from({ length: samples }, (_, i): Feeds => ({
    [input.name]: { type: "float32", data: data.slice(i * size, (i + 1) * size), dims: [1, ...rest] }
  })))
}

/** Seeded random inputs (sequence length 16 for text models): four to calibrate, two held out. */
export const randomFeedSets = (model: OnnxModel): FeedSets => {
  const sizes = { batch_size: 1, sequence_length: 16, total_sequence_length: 16, past_sequence_length: 0 }
  const random = (seed: number) => randomFeeds(model, seed, sizes)
  return { calibration: [1, 2, 3, 4].map(random), heldOut: [11, 12].map(random) }
}
