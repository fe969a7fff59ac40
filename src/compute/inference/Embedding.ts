/**
 * Sentence embeddings with an encoder: tokenize, run in batches of similar length, mean-pool the last
 * hidden state over the attention mask, L2-normalize; results come back in the order of the input.
 */
import { Effect } from "effect"
import type { LoraWeights } from "../lora/Adapter.js"
import { type AdapterLayout, feedsFor } from "../lora/GraphLora.js"
import type { Encoding } from "../tokenizer/Tokenizer.js"
import type { Tensor } from "./Backend.js"
import { describeCause, InferenceInputError, InferenceRunError } from "./InferenceError.js"
import type { ModelHandle } from "./Model.js"
import { l2Normalize, lengthBuckets, meanPoolRow } from "./Pooling.js"

export interface EmbedOptions {
  /**
   * Texts per model run at most; default 32. Texts are sorted by token length and cut into runs where
   * padding the next one would cost more than another run (lengthBuckets).
   */
  readonly batchSize?: number | undefined
  /** Run with this LoRA adapter (the model loaded with `adapterSlots`). */
  readonly adapter?: RunAdapter | undefined
}

/**
 * The fixed price of one model run, in tokens of padded batch, as measured on tiny-encoder (a run of
 * rows x length tokens takes about overhead + rows x length token-times): onnxruntime-web on one
 * WebAssembly thread spends ~0.38 ms per run beside ~0.118 ms per token (about 3 tokens); the native
 * runtime 0.2 to 0.4 ms beside ~0.021 ms per token (10 to 20), and its threads share a small run less
 * well, so it counts 16. A larger model spends more per token, so these overestimate its overhead: it
 * is cut into runs a little less finely than it could be.
 */
const RUN_OVERHEAD_TOKENS: Readonly<Record<ModelHandle["backend"], number>> = {
  "onnxruntime-web": 3,
  "onnxruntime-node": 16
}

export const int64 = (values: ArrayLike<number>, dims: ReadonlyArray<number>): Tensor => {
  const data = new BigInt64Array(values.length)
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]!)
  return { type: "int64", data, dims }
}

/** An adapter to run with: the metadata's id and base model digest, and the factors (AdapterFile's `Adapter`). */
export interface RunAdapter {
  readonly metadata: { readonly id: string; readonly baseModelDigest: string }
  readonly weights: LoraWeights
}

// The factor feeds of each adapter on each layout, made once: generation runs once per token.
const adapterFeedCache = new WeakMap<AdapterLayout, WeakMap<LoraWeights, Record<string, Tensor>>>()
const noAdapter = {} as LoraWeights

/** The branch inputs for this run: the adapter's factors, or zeros (the base model) without one. */
export const adapterFeeds = (
  handle: ModelHandle,
  adapter: RunAdapter | undefined
): Effect.Effect<Record<string, Tensor>, InferenceInputError> => {
  const layout = handle.adapterLayout
  if (layout === undefined) {
    return adapter === undefined
      ? Effect.succeed({})
      : Effect.fail(
        new InferenceInputError({
          reason:
            `${handle.name} was loaded without adapter slots: load it with adapterSlots to run adapter ${adapter.metadata.id}`
        })
      )
  }
  if (adapter !== undefined && adapter.metadata.baseModelDigest !== handle.baseModelDigest) {
    return Effect.fail(
      new InferenceInputError({
        reason:
          `adapter ${adapter.metadata.id} was made for base model ${adapter.metadata.baseModelDigest}, not ${handle.name} (${handle.baseModelDigest})`
      })
    )
  }
  let byWeights = adapterFeedCache.get(layout)
  if (byWeights === undefined) adapterFeedCache.set(layout, byWeights = new WeakMap())
  const key = adapter?.weights ?? noAdapter
  const cached = byWeights.get(key)
  if (cached !== undefined) return Effect.succeed(cached)
  return Effect.try({
    try: () => {
      const feeds = feedsFor(layout, adapter?.weights) as Record<string, Tensor>
      byWeights.set(key, feeds)
      return feeds
    },
    catch: (cause) => new InferenceInputError({ reason: `adapter ${adapter?.metadata.id}: ${describeCause(cause)}` })
  })
}

/** One serialized run of the handle's session, with the adapter's branch inputs; its failure a typed error. */
export const runModel = (
  handle: ModelHandle,
  feeds: Record<string, Tensor>,
  outputs: ReadonlyArray<string>,
  adapter?: RunAdapter
) =>
  Effect.flatMap(adapterFeeds(handle, adapter), (branches) =>
    handle.lock.withPermits(1)(
      Effect.tryPromise({
        try: () => handle.session.run({ ...branches, ...feeds }, outputs),
        catch: (cause) => new InferenceRunError({ reason: `${handle.name}: ${describeCause(cause)}` })
      })
    ))

const requireEncoder = (handle: ModelHandle) =>
  handle.kind === "encoder"
    ? Effect.void
    : Effect.fail(
      new InferenceInputError({
        reason: `${handle.name} has no output named last_hidden_state: embeddings need an encoder`
      })
    )

/**
 * The texts as the model reads them: tokenized, cut at the tokenizer's and the model's limits. Refuses
 * an empty text and a model that is not an encoder. The encodings' lengths are the tokens a run reads.
 */
export const encodeForEmbedding = (
  handle: ModelHandle,
  texts: ReadonlyArray<string>
): Effect.Effect<Array<Encoding>, InferenceInputError> =>
  Effect.gen(function*() {
    yield* requireEncoder(handle)
    const empty = texts.findIndex((text) => text.trim().length === 0)
    if (empty >= 0) {
      return yield* new InferenceInputError({
        reason: texts.length === 1 ? "text is empty" : `text is empty (item ${empty})`
      })
    }
    const limits = [handle.tokenizer.maxLength, handle.maxLength].filter((limit): limit is number =>
      limit !== undefined
    )
    const truncation = limits.length > 0 ? Math.min(...limits) : undefined
    return texts.map((text) => handle.tokenizer.encode(text, { truncation }))
  })

/** Embeddings of texts `encodeForEmbedding` made, in their order. */
export const embedEncodings = (
  handle: ModelHandle,
  encodings: ReadonlyArray<Encoding>,
  options: EmbedOptions = {}
) =>
  Effect.gen(function*() {
    yield* requireEncoder(handle)
    const padId = handle.tokenizer.specialIds.pad ?? 0
    const wantsTypes = handle.inputNames.has("token_type_ids")
    const embeddings: Array<Float32Array> = new Array(encodings.length)
    const lengths = encodings.map((encoding) => encoding.ids.length)
    const buckets = lengthBuckets(lengths, options.batchSize ?? 32, RUN_OVERHEAD_TOKENS[handle.backend])
    for (const bucket of buckets) {
      // The bucket's rows are sorted by length: the last is the longest.
      const length = lengths[bucket[bucket.length - 1]!]!
      const size = bucket.length * length
      const ids = new BigInt64Array(size)
      if (padId !== 0) ids.fill(BigInt(padId))
      const mask = new BigInt64Array(size)
      const types = wantsTypes ? new BigInt64Array(size) : undefined
      for (let row = 0; row < bucket.length; row++) {
        const encoding = encodings[bucket[row]!]!
        const offset = row * length
        for (let i = 0; i < encoding.ids.length; i++) {
          ids[offset + i] = BigInt(encoding.ids[i]!)
          mask[offset + i] = 1n
          if (types !== undefined) types[offset + i] = BigInt(encoding.typeIds[i]!)
        }
      }
      const dims = [bucket.length, length]
      const feeds: Record<string, Tensor> = { input_ids: { type: "int64", data: ids, dims } }
      if (handle.inputNames.has("attention_mask")) feeds.attention_mask = { type: "int64", data: mask, dims }
      if (types !== undefined) feeds.token_type_ids = { type: "int64", data: types, dims }
      const outputs = yield* runModel(handle, feeds, ["last_hidden_state"], options.adapter)
      const hidden = outputs.last_hidden_state
      if (hidden === undefined || hidden.type !== "float32" || hidden.dims.length !== 3) {
        return yield* new InferenceRunError({
          reason: `${handle.name}: last_hidden_state is not a float32 [batch, seq, dim] tensor`
        })
      }
      const dim = hidden.dims[2]!
      for (let row = 0; row < bucket.length; row++) {
        const index = bucket[row]!
        embeddings[index] = l2Normalize(meanPoolRow(hidden.data as Float32Array, row, length, dim, lengths[index]!))
      }
    }
    return embeddings
  })

export const embedTexts = (handle: ModelHandle, texts: ReadonlyArray<string>, options: EmbedOptions = {}) =>
  Effect.flatMap(encodeForEmbedding(handle, texts), (encodings) => embedEncodings(handle, encodings, options))
