/**
 * The messages between a ModelWorker (ModelWorker.ts) and its thread (ModelWorkerThread.ts): requests
 * numbered by the caller, answered once each, with text pieces and load progress sent ahead of the answer.
 */
import { Data } from "effect"
import type { ChatMessage, GenerateResult } from "../compute/inference/Inference.js"
import type { ModelManifest } from "../content/Manifest.js"
import type { GenerateConfig, SessionOptions } from "./InferenceSession.js"
import type { LoadProgress } from "./ModelLoader.js"
import type { ModelLoaderOptions } from "./Promise.js"

/**
 * Why a request was refused rather than failed: its input (an empty text, a prompt longer than the
 * model's context), or a model of the other kind (an encoder asked to generate, or the reverse).
 */
export type WorkerRefusal = "input" | "kind"

/** Every failure of a model worker, in one line: the thread's own error's message, or why the thread is gone. */
export class ModelWorkerError extends Data.TaggedError("ModelWorkerError")<{
  readonly reason: string
  readonly refusal?: WorkerRefusal | undefined
}> {
  override get message() {
    return this.reason
  }
}

/** What a thread is started with. */
export interface ModelWorkerData {
  readonly loader: ModelLoaderOptions
  /** Whether the caller has `onToken` listeners: every generation's pieces are sent then. */
  readonly listening: boolean
}

/** A model opened in a worker. */
export interface WorkerModel {
  /** The reference it was loaded by (`id[@version]`): what `model` names in later requests. */
  readonly reference: string
  readonly id: string
  readonly version: string
  readonly kind: "encoder" | "decoder"
}

/** Session options that cross to a thread: all but the progress callback, which comes back as messages. */
export type WorkerSessionOptions = Omit<SessionOptions, "onProgress">

/** Which loaded model a request runs on: `model` names it, else the latest loaded of the kind it needs. */
export interface ModelChoice {
  readonly model?: string | undefined
}

/**
 * A model named by its manifest, as a node serves it: the thread opens it from its loader's blob store
 * (the manifest's files) without asking any catalog, with adapter branches of `adapterRank`, and keeps
 * it open under the loader's memory limit. `adapter` (`id@version`, stored in the loader's cache root)
 * runs with this request only.
 */
export interface ServedModel {
  readonly manifest: ModelManifest
  readonly kind: "encoder" | "decoder"
  readonly adapterRank?: number | undefined
  readonly adapter?: string | undefined
}

/** What a served generation reads: a prompt, or chat messages rendered with the model's template. */
export type ServedInput =
  | { readonly prompt: string }
  | { readonly messages: ReadonlyArray<ChatMessage> }

/** Served embeddings: one vector per text, and how many tokens each text was read as. */
export interface ServedEmbeddings {
  readonly vectors: ReadonlyArray<Float32Array>
  readonly tokens: ReadonlyArray<number>
}

/** A request body; the caller adds its number. */
export type WorkerRequestBody =
  | { readonly type: "load"; readonly reference: string; readonly options: WorkerSessionOptions }
  | { readonly type: "unload"; readonly reference: string }
  | {
    readonly type: "generate"
    readonly model: string | undefined
    readonly prompt: string
    readonly config: GenerateConfig
    /** Send the pieces even when nobody listens with `onToken` (a stream). */
    readonly stream: boolean
  }
  | {
    readonly type: "chat"
    readonly model: string | undefined
    readonly messages: ReadonlyArray<ChatMessage>
    readonly config: GenerateConfig
    readonly stream: boolean
  }
  | {
    readonly type: "batch"
    readonly model: string | undefined
    readonly prompts: ReadonlyArray<string>
    readonly config: GenerateConfig
  }
  | { readonly type: "embed"; readonly model: string | undefined; readonly texts: ReadonlyArray<string> }
  | { readonly type: "serveEmbed"; readonly served: ServedModel; readonly texts: ReadonlyArray<string> }
  /** The answer is the whole result (finish reason, token counts); pieces are sent ahead when `stream`. */
  | {
    readonly type: "serveGenerate"
    readonly served: ServedModel
    readonly input: ServedInput
    readonly config: GenerateConfig
    readonly stream: boolean
  }

export type WorkerRequest = WorkerRequestBody & { readonly id: number }

/** Control messages, acted on at once rather than queued behind the running request. */
export type WorkerControl =
  | { readonly type: "cancel"; readonly id: number }
  | { readonly type: "listen"; readonly listening: boolean }
  /** Stop after the model run under way, close the models, exit. */
  | { readonly type: "close" }
  /** Tests only: the thread throws an uncaught error, as a crashing thread would. */
  | { readonly type: "crash" }

export type ToWorker = WorkerRequest | WorkerControl

/** What the answer to each type of request carries. */
export interface WorkerAnswers {
  readonly load: WorkerModel
  readonly unload: null
  readonly generate: string
  readonly chat: string
  readonly batch: ReadonlyArray<string>
  readonly embed: ReadonlyArray<Float32Array>
  readonly serveEmbed: ServedEmbeddings
  /** Null when the caller went away before the end (the generation was stopped). */
  readonly serveGenerate: GenerateResult | null
}

export type WorkerValue = WorkerAnswers[keyof WorkerAnswers]

export type FromWorker =
  /** The thread's runtime is built (onnxruntime loaded): requests may come. */
  | { readonly type: "ready" }
  /** The runtime could not be built (a bad config file...): the thread ends. */
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "piece"; readonly id: number; readonly text: string }
  | { readonly type: "progress"; readonly id: number; readonly progress: LoadProgress }
  | { readonly type: "done"; readonly id: number; readonly value: WorkerValue }
  | {
    readonly type: "error"
    readonly id: number
    readonly message: string
    readonly refusal?: WorkerRefusal | undefined
  }

/** One line of any thrown value: the in-process facade rejects with the error itself, whose message this is. */
export const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * The buffers to transfer with these vectors: each vector that owns its whole buffer gives it; a view
 * into a larger or shared buffer is copied first, so the transfer moves no more than the vectors.
 */
export const transferable = (vectors: ReadonlyArray<Float32Array>) => {
  const seen = new Set<ArrayBufferLike>()
  const owned = vectors.map((vector) => {
    const whole = vector.byteOffset === 0 && vector.byteLength === vector.buffer.byteLength &&
      vector.buffer instanceof ArrayBuffer && !seen.has(vector.buffer)
    const own = whole ? vector : vector.slice()
    seen.add(own.buffer)
    return own
  })
  return { vectors: owned, buffers: owned.map((vector) => vector.buffer as ArrayBuffer) }
}
