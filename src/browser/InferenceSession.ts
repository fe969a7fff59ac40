/**
 * A model the ModelLoader verified, run in the page on onnxruntime-web: embeddings for an encoder and
 * text generation for a decoder, through the same code the node runs (compute/inference: tokenizer,
 * length-bucketed batches, mask-weighted mean pooling, L2 normalization; KV-cached decoding), so the
 * page's numbers are the node's.
 */
import { Cause, Effect, Either, Exit, Scope } from "effect"
import { embedTexts } from "../compute/inference/Embedding.js"
import { generateText } from "../compute/inference/Generation.js"
import { type ModelHandle, openModel } from "../compute/inference/Model.js"
import { jsonDecoder, JsonObject } from "../domain/JsonText.js"
import type { SavedAdapter } from "./AdapterStore.js"
import type { LoadedModel } from "./ModelLoader.js"
import { type BackendChoice, defaultOrtBase, loadBackend } from "./Ort.js"

/** How a session runs its model. */
export interface SessionOptions {
  /** `auto` (the default) takes WebGPU when the browser has an adapter, else WebAssembly. */
  readonly backend?: BackendChoice | undefined
  /** Where onnxruntime-web's files are served; default `ort/` beside the SDK (`/ui/ort/` on a node). */
  readonly ortBase?: string | undefined
  /** WebAssembly threads (default 1, or 2 in a cross-origin isolated page). */
  readonly threads?: number | undefined
  /**
   * LoRA branches in the graph, fed with every run, so that adapters of up to `rank` on `modules`
   * (default: every MatMul weight) apply per call. Without them the session runs the base model only.
   */
  readonly adapterSlots?: { readonly rank: number; readonly modules?: ReadonlyArray<string> | undefined } | undefined
}

/** Embedding settings. */
export interface EmbedConfig {
  /** Run with this adapter (AdapterStore); the session needs `adapterSlots`. */
  readonly adapter?: SavedAdapter | undefined
}

/** Generation settings: the SDK's names, as the Node SDK takes them. */
export interface GenerateConfig {
  /** New tokens at most (default 64). */
  readonly maxTokens?: number | undefined
  /** 0 (the default) is greedy. */
  readonly temperature?: number | undefined
  readonly topK?: number | undefined
  readonly topP?: number | undefined
  /** Run with this adapter (AdapterStore); the session needs `adapterSlots`. */
  readonly adapter?: SavedAdapter | undefined
}

/** A failed run or load, in one line. */
export class InferenceSessionError extends Error {
  override readonly name = "InferenceSessionError"
}

const decodeJson = jsonDecoder(JsonObject)

const textOf = (model: LoadedModel, artifact: string): string | undefined => {
  const bytes = model.files.get(artifact)
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes)
}

const jsonOf = (model: LoadedModel, artifact: string): Readonly<Record<string, unknown>> | undefined => {
  const text = textOf(model, artifact)
  if (text === undefined) return undefined
  return Either.getOrThrowWith(
    decodeJson(text, `${artifact} of ${model.id}`),
    (error) => new InferenceSessionError(error.message)
  )
}

/** Runs an Effect of the compute layer, its typed failure rethrown as one-line error. */
const run = async <A, E extends { readonly message: string }>(effect: Effect.Effect<A, E>): Promise<A> => {
  const exit = await Effect.runPromiseExit(effect)
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") throw new InferenceSessionError(failure.value.message)
  throw new InferenceSessionError(Cause.pretty(exit.cause).split("\n")[0] ?? "inference failed")
}

/** A model open on onnxruntime-web. */
export class InferenceSession {
  private disposed = false

  private constructor(
    private readonly handle: ModelHandle,
    private readonly scope: Scope.CloseableScope,
    /** The runtime it runs on. */
    readonly backend: "wasm" | "webgpu",
    /** `encoder` (embeddings) or `decoder` (generation). */
    readonly kind: "encoder" | "decoder",
    /** The model's id and version. */
    readonly model: string
  ) {}

  /** Opens a loaded model: its ONNX artifact (`model`), tokenizer and configs. */
  static async create(model: LoadedModel, options: SessionOptions = {}): Promise<InferenceSession> {
    const onnx = model.files.get("model")
    const tokenizer = textOf(model, "tokenizer")
    const name = `${model.id}@${model.version}`
    if (onnx === undefined) throw new InferenceSessionError(`${name} has no artifact named model (an ONNX file)`)
    if (tokenizer === undefined) throw new InferenceSessionError(`${name} has no artifact named tokenizer`)
    const ortBase = options.ortBase ?? defaultOrtBase(import.meta.url)
    const { backend, name: backendName } = await loadBackend(options.backend ?? "auto", ortBase, options.threads)
    const scope = Effect.runSync(Scope.make())
    const handle = await run(
      Scope.extend(
        openModel(backend, {
          model: onnx,
          tokenizer,
          tokenizerConfig: jsonOf(model, "tokenizer_config"),
          config: jsonOf(model, "config"),
          generationConfig: jsonOf(model, "generation_config"),
          name,
          adapterSlots: options.adapterSlots
        }),
        scope
      )
    ).catch(async (error: unknown) => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      throw error
    })
    return new InferenceSession(handle, scope, backendName, handle.kind, name)
  }

  /** L2-normalized sentence embeddings of the texts, in their order (an encoder only). */
  embed(texts: ReadonlyArray<string>, config: EmbedConfig = {}): Promise<Array<Float32Array>> {
    this.assertOpen()
    return run(embedTexts(this.handle, texts, { adapter: config.adapter }))
  }

  /** Text generated after the prompt (a decoder only); greedy unless a temperature is given. */
  async generate(prompt: string, config: GenerateConfig = {}): Promise<string> {
    this.assertOpen()
    const result = await run(generateText(this.handle, prompt, {
      maxNewTokens: config.maxTokens,
      temperature: config.temperature ?? 0,
      topK: config.topK,
      topP: config.topP,
      adapter: config.adapter
    }))
    return result.text
  }

  /** Releases the runtime's session; the session refuses work afterwards. */
  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    await Effect.runPromise(Scope.close(this.scope, Exit.void))
  }

  private assertOpen() {
    if (this.disposed) throw new InferenceSessionError(`the session on ${this.model} was disposed`)
  }
}
