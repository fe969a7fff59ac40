/**
 * The inference service: load an ONNX model with its tokenizer, embed text with an encoder, generate
 * and chat with a decoder. One implementation over a small Backend, two layers: onnxruntime-node and
 * onnxruntime-web (which also runs under Node).
 */
import { Context, Effect, Layer, type Scope, Stream } from "effect"
import * as Metrics from "../../domain/Metrics.js"
import type { Encoding } from "../tokenizer/Tokenizer.js"
import type { Backend } from "./Backend.js"
import { type ChatMessage, renderChatPrompt } from "./ChatTemplate.js"
import { embedEncodings, type EmbedOptions, embedTexts, encodeForEmbedding } from "./Embedding.js"
import {
  type GenerateOptions,
  type GenerateResult,
  generateText,
  generateTextEvents,
  generateTextStream,
  type GenerationEvent
} from "./Generation.js"
import { describeCause, InferenceInputError, type InferenceRunError, ModelLoadError } from "./InferenceError.js"
import { type ModelHandle, type ModelSource, openModel } from "./Model.js"
import { readModelFolder } from "./ModelFolder.js"
import { cosineSimilarity } from "./Pooling.js"
import { makeNodeBackend, makeWebBackend, type NodeBackendOptions, type WebBackendOptions } from "./RuntimeBackends.js"

export type { ChatMessage } from "./ChatTemplate.js"
export type { EmbedOptions } from "./Embedding.js"
export type { GenerateOptions, GenerateResult, GenerationEvent } from "./Generation.js"
export { InferenceInputError, InferenceRunError, ModelLoadError } from "./InferenceError.js"
export type { ModelHandle, ModelSource } from "./Model.js"

export interface ChatOptions extends GenerateOptions {
  /** Stop at the template's end-of-turn marker as well (the default template's `<|`); default true. */
  readonly stopAtTurnEnd?: boolean | undefined
}

export interface InferenceService {
  readonly backend: Backend["name"]
  /** A model folder (model.onnx or onnx/model.onnx, tokenizer.json, configs) or its parts; released with the scope. */
  readonly loadModel: (source: string | ModelSource) => Effect.Effect<ModelHandle, ModelLoadError, Scope.Scope>
  /** Unit-length sentence embedding: mean of the last hidden state over the attention mask. */
  readonly embed: (
    handle: ModelHandle,
    text: string
  ) => Effect.Effect<Float32Array, InferenceInputError | InferenceRunError>
  readonly embedBatch: (
    handle: ModelHandle,
    texts: ReadonlyArray<string>,
    options?: EmbedOptions
  ) => Effect.Effect<Array<Float32Array>, InferenceInputError | InferenceRunError>
  /**
   * The texts tokenized as `embedBatch` reads them (cut at the model's limits; empty text refused), so
   * a caller can count their tokens and hand them to `embedEncodings` without tokenizing twice.
   */
  readonly encodeForEmbedding: (
    handle: ModelHandle,
    texts: ReadonlyArray<string>
  ) => Effect.Effect<Array<Encoding>, InferenceInputError>
  /** `embedBatch` of texts `encodeForEmbedding` made. */
  readonly embedEncodings: (
    handle: ModelHandle,
    encodings: ReadonlyArray<Encoding>,
    options?: EmbedOptions
  ) => Effect.Effect<Array<Float32Array>, InferenceInputError | InferenceRunError>
  /** Cosine similarity of two texts' embeddings. */
  readonly similarity: (
    handle: ModelHandle,
    a: string,
    b: string
  ) => Effect.Effect<number, InferenceInputError | InferenceRunError>
  readonly generate: (
    handle: ModelHandle,
    prompt: string,
    options?: GenerateOptions
  ) => Effect.Effect<GenerateResult, InferenceInputError | InferenceRunError>
  /** The generated text in pieces as they are decoded; a multi-byte character is never split. */
  readonly generateStream: (
    handle: ModelHandle,
    prompt: string,
    options?: GenerateOptions
  ) => Stream.Stream<string, InferenceInputError | InferenceRunError>
  /** As `generateStream`, ending with the whole result (finish reason, token counts). */
  readonly generateEvents: (
    handle: ModelHandle,
    prompt: string,
    options?: GenerateOptions
  ) => Stream.Stream<GenerationEvent, InferenceInputError | InferenceRunError>
  /** Renders the messages with the model's chat template (or the default one), then generates the reply. */
  readonly chat: (
    handle: ModelHandle,
    messages: ReadonlyArray<ChatMessage>,
    options?: ChatOptions
  ) => Effect.Effect<GenerateResult, InferenceInputError | InferenceRunError>
  readonly chatStream: (
    handle: ModelHandle,
    messages: ReadonlyArray<ChatMessage>,
    options?: ChatOptions
  ) => Stream.Stream<string, InferenceInputError | InferenceRunError>
  /** As `chatStream`, ending with the whole result (finish reason, token counts). */
  readonly chatEvents: (
    handle: ModelHandle,
    messages: ReadonlyArray<ChatMessage>,
    options?: ChatOptions
  ) => Stream.Stream<GenerationEvent, InferenceInputError | InferenceRunError>
  /** The prompt `chat` would generate from. */
  readonly chatPrompt: (
    handle: ModelHandle,
    messages: ReadonlyArray<ChatMessage>
  ) => Effect.Effect<string, InferenceInputError>
}

const chatPrompt = (handle: ModelHandle, messages: ReadonlyArray<ChatMessage>) =>
  Effect.try({
    try: () => {
      const name = (id: number | undefined) => (id === undefined ? undefined : handle.tokenizer.idToToken(id))
      return renderChatPrompt(handle.chatTemplate, messages, {
        bos_token: name(handle.tokenizer.specialIds.bos),
        eos_token: name(handle.tokenizer.specialIds.eos),
        add_generation_prompt: true
      })
    },
    catch: (cause) => new InferenceInputError({ reason: describeCause(cause) })
  })

/** A model's own template writes its special tokens itself (as HF's apply_chat_template); the default one does not. */
const chatOptions = (handle: ModelHandle, options: ChatOptions): GenerateOptions => {
  if (handle.chatTemplate !== undefined) return { addSpecialTokens: false, ...options }
  return options.stopAtTurnEnd === false ? options : { ...options, stop: [...(options.stop ?? []), "<|"] }
}

/** Runs of one operation counted by outcome and timed, for /metrics wherever a node runs inference. */
const measured = (operation: string) => {
  const runs = (outcome: string) =>
    Metrics.counter("edge_net_inference_runs_total", "Inference runs, by operation and outcome", { operation, outcome })
  const succeeded = runs("ok")
  const failed = runs("failed")
  const seconds = Metrics.histogram("edge_net_inference_seconds", "Time of one inference run", { operation })
  return <A, E, R>(run: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      const started = performance.now()
      return Effect.onExit(run, (exit) =>
        Effect.sync(() => {
          seconds.unsafeUpdate((performance.now() - started) / 1000, [])
          const outcome = exit._tag === "Success" ? succeeded : failed
          outcome.unsafeUpdate(1, [])
        }))
    })
}
const measuredEmbed = measured("embed")
const measuredGenerate = measured("generate")
const measuredChat = measured("chat")

export const makeInference = (backend: Backend): InferenceService => ({
  backend: backend.name,
  loadModel: (source) =>
    Effect.gen(function*() {
      const parts = typeof source === "string" ? yield* readModelFolder(source) : source
      return yield* openModel(backend, parts)
    }).pipe(Effect.withSpan("Inference.loadModel")),
  embed: (handle, text) =>
    embedTexts(handle, [text]).pipe(
      Effect.map((vectors) => vectors[0]!),
      measuredEmbed,
      Effect.withSpan("Inference.embed")
    ),
  embedBatch: (handle, texts, options) =>
    embedTexts(handle, texts, options).pipe(
      measuredEmbed,
      Effect.withSpan("Inference.embedBatch", { attributes: { texts: texts.length } })
    ),
  encodeForEmbedding,
  embedEncodings: (handle, encodings, options) =>
    embedEncodings(handle, encodings, options).pipe(
      measuredEmbed,
      Effect.withSpan("Inference.embedEncodings", { attributes: { texts: encodings.length } })
    ),
  similarity: (handle, a, b) =>
    embedTexts(handle, [a, b]).pipe(
      Effect.map(([x, y]) => cosineSimilarity(x!, y!)),
      measuredEmbed,
      Effect.withSpan("Inference.similarity")
    ),
  generate: (handle, prompt, options) =>
    generateText(handle, prompt, options).pipe(measuredGenerate, Effect.withSpan("Inference.generate")),
  generateStream: (handle, prompt, options) => generateTextStream(handle, prompt, options),
  generateEvents: (handle, prompt, options) => generateTextEvents(handle, prompt, options),
  chat: (handle, messages, options = {}) =>
    chatPrompt(handle, messages).pipe(
      Effect.flatMap((prompt) => generateText(handle, prompt, chatOptions(handle, options))),
      measuredChat,
      Effect.withSpan("Inference.chat")
    ),
  chatStream: (handle, messages, options = {}) =>
    Stream.unwrap(
      Effect.map(chatPrompt(handle, messages), (prompt) =>
        generateTextStream(handle, prompt, chatOptions(handle, options)))
    ),
  chatEvents: (handle, messages, options = {}) =>
    Stream.unwrap(
      Effect.map(chatPrompt(handle, messages), (prompt) =>
        generateTextEvents(handle, prompt, chatOptions(handle, options)))
    ),
  chatPrompt
})

const backendError = (name: string) => (cause: unknown) =>
  new ModelLoadError({ reason: `${name} is not available: ${describeCause(cause)}` })

export class Inference extends Context.Tag("edge-net/Inference")<Inference, InferenceService>() {
  /** onnxruntime-node: native, multi-threaded (one operator thread per core unless told). */
  static readonly layerNode = (options: NodeBackendOptions = {}) =>
    Layer.effect(
      Inference,
      Effect.tryPromise({ try: () => makeNodeBackend(options), catch: backendError("onnxruntime-node") }).pipe(
        Effect.map(makeInference)
      )
    )

  /** onnxruntime-web: WebAssembly, in a browser or under Node (one thread unless told). */
  static readonly layerWeb = (options: WebBackendOptions = {}) =>
    Layer.effect(
      Inference,
      Effect.tryPromise({ try: () => makeWebBackend(options), catch: backendError("onnxruntime-web") }).pipe(
        Effect.map(makeInference)
      )
    )

  static readonly node = Inference.layerNode()
  static readonly web = Inference.layerWeb()
}
