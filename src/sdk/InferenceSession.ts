/**
 * The SDK's inference session (seed section 7.2): one model from the ModelLoader, generation and chat
 * (whole or streamed), embeddings, and a LoRA adapter swapped per session without reloading the model
 * when its branches fit (the model is opened with adapter slots of the session's `adapterRank`).
 *
 * The session holds its model until it is disposed (or its scope closes); the loader may evict the
 * model only after that.
 */
import { Effect, Exit, Ref, Scope, Stream } from "effect"
import type { ChatMessage, GenerateOptions, GenerateResult } from "../compute/inference/Inference.js"
import { Inference, type InferenceInputError, type InferenceRunError } from "../compute/inference/Inference.js"
import type { Adapter } from "../compute/lora/AdapterFile.js"
import { type LoadedModel, type LoadProgress, ModelLoader, ModelLoaderError } from "./ModelLoader.js"
import { makeTrainer, type Trainer, type TrainerConfig } from "./SessionTrainer.js"

/** The seed's generation settings (its names), mapped onto the inference service's. */
export interface GenerateConfig {
  /** New tokens at most (default 64). */
  readonly maxTokens?: number | undefined
  /** 0 (the default) is greedy. */
  readonly temperature?: number | undefined
  readonly topP?: number | undefined
  readonly topK?: number | undefined
  readonly repetitionPenalty?: number | undefined
  /** Generation ends before the first of these. */
  readonly stopSequences?: ReadonlyArray<string> | undefined
}

export interface SessionOptions {
  readonly version?: string | undefined
  /** A stored adapter (`id[@version]`) to start with. */
  readonly adapter?: string | undefined
  /**
   * Rank of the adapter branches the model is opened with, so adapters up to it swap without
   * reloading (default 0: the plain model, fastest; the first `loadAdapter` then opens it again with
   * branches of the adapter's rank, and later ones up to that rank swap in place).
   */
  readonly adapterRank?: number | undefined
  readonly onProgress?: ((progress: LoadProgress) => void) | undefined
}

export interface MemoryInfo {
  /** The model file held by the runtime. */
  readonly modelBytes: number
  /** The active adapter's factors. */
  readonly adapterBytes: number
  /**
   * Keys and values kept between calls: always 0, since each generation keeps its cache only while it
   * runs (a new call re-reads its whole prompt).
   */
  readonly kvCacheBytes: number
}

export type SessionError = ModelLoaderError | InferenceInputError | InferenceRunError

export interface Session {
  readonly id: string
  readonly version: string
  readonly kind: "encoder" | "decoder"
  readonly generate: (prompt: string, config?: GenerateConfig) => Effect.Effect<string, SessionError>
  /** With the token ids, the prompt's length and why it stopped. */
  readonly generateDetailed: (prompt: string, config?: GenerateConfig) => Effect.Effect<GenerateResult, SessionError>
  readonly generateStream: (prompt: string, config?: GenerateConfig) => Stream.Stream<string, SessionError>
  readonly chat: (messages: ReadonlyArray<ChatMessage>, config?: GenerateConfig) => Effect.Effect<string, SessionError>
  readonly chatDetailed: (
    messages: ReadonlyArray<ChatMessage>,
    config?: GenerateConfig
  ) => Effect.Effect<GenerateResult, SessionError>
  readonly chatStream: (
    messages: ReadonlyArray<ChatMessage>,
    config?: GenerateConfig
  ) => Stream.Stream<string, SessionError>
  readonly embed: (text: string) => Effect.Effect<Float32Array, SessionError>
  readonly embedBatch: (texts: ReadonlyArray<string>) => Effect.Effect<Array<Float32Array>, SessionError>
  readonly similarity: (a: string, b: string) => Effect.Effect<number, SessionError>
  /**
   * Runs with this stored adapter from now on. Swapped in place when the model's branches fit it;
   * otherwise the model is opened again with larger ones (`reloaded: true`).
   */
  readonly loadAdapter: (reference: string) => Effect.Effect<{ readonly reloaded: boolean }, ModelLoaderError>
  /** Back to the base model. */
  readonly unloadAdapter: () => Effect.Effect<void>
  /** The active adapter's id and version, if any. */
  readonly activeAdapter: () => Effect.Effect<string | undefined>
  readonly getMemoryInfo: () => Effect.Effect<MemoryInfo>
  /** Nothing is kept between calls (see MemoryInfo.kvCacheBytes); returns the bytes freed, 0. */
  readonly clearKVCache: () => Effect.Effect<number>
  /** A trainer of MicroLoRA adapters on this session's model (SessionTrainer.ts); save one, then `loadAdapter` it. */
  readonly createTrainer: (config?: TrainerConfig) => Effect.Effect<Trainer, ModelLoaderError>
  /** Gives the model back to the loader; the session refuses work afterwards. */
  readonly dispose: () => Effect.Effect<void>
}

const DEFAULT_ADAPTER_RANK = 0

export const generateOptionsOf = (config: GenerateConfig = {}, adapter?: Adapter): GenerateOptions => ({
  ...(config.maxTokens === undefined ? {} : { maxNewTokens: config.maxTokens }),
  ...(config.temperature === undefined ? {} : { temperature: config.temperature }),
  ...(config.topP === undefined ? {} : { topP: config.topP }),
  ...(config.topK === undefined ? {} : { topK: config.topK }),
  ...(config.repetitionPenalty === undefined ? {} : { repetitionPenalty: config.repetitionPenalty }),
  ...(config.stopSequences === undefined ? {} : { stop: config.stopSequences }),
  ...(adapter === undefined ? {} : { adapter })
})

const adapterBytesOf = (adapter: Adapter | undefined) =>
  adapter === undefined
    ? 0
    : Object.values(adapter.weights.modules).reduce((sum, module) => sum + 4 * (module.A.length + module.B.length), 0)

interface Current {
  readonly model: LoadedModel
  readonly scope: Scope.CloseableScope
  readonly adapterRank: number
}

/**
 * Opens a session on a model by id (`id[@version]`): lent from the ModelLoader until `dispose` or
 * the end of the scope.
 */
export const create = (id: string, options: SessionOptions = {}) =>
  Effect.gen(function*() {
    const loader = yield* ModelLoader
    const inference = yield* Inference
    const startAdapter = options.adapter === undefined ? undefined : yield* loader.adapter(options.adapter)
    const open = (rank: number, adapter: string | undefined) =>
      Effect.gen(function*() {
        const scope = yield* Scope.make()
        const model = yield* loader.load(id, {
          version: options.version,
          adapter,
          adapterRank: rank,
          onProgress: options.onProgress
        }).pipe(Scope.extend(scope), Effect.tapError(() => Scope.close(scope, Exit.void)))
        return { model, scope, adapterRank: rank } satisfies Current
      })
    const firstRank = Math.max(options.adapterRank ?? DEFAULT_ADAPTER_RANK, startAdapter?.weights.rank ?? 0)
    const current = yield* Ref.make(yield* open(firstRank, options.adapter))
    const adapter = yield* Ref.make<Adapter | undefined>(startAdapter)
    const disposed = yield* Ref.make(false)

    const closeCurrent = Effect.flatMap(Ref.get(current), (now) => Scope.close(now.scope, Exit.void))
    const dispose = () => Effect.flatMap(Ref.getAndSet(disposed, true), (was) => (was ? Effect.void : closeCurrent))
    yield* Effect.addFinalizer(dispose)

    /** The model and adapter of the next call; a disposed session refuses. */
    const running = Effect.flatMap(Ref.get(disposed), (gone) =>
      gone
        ? Effect.fail(new ModelLoaderError({ reason: `the session on ${id} was disposed` }))
        : Effect.zip(Ref.get(current), Ref.get(adapter)))

    const generateDetailed = (prompt: string, config?: GenerateConfig) =>
      Effect.flatMap(running, ([now, active]) =>
        inference.generate(now.model.handle, prompt, generateOptionsOf(config, active)))
    const chatDetailed = (messages: ReadonlyArray<ChatMessage>, config?: GenerateConfig) =>
      Effect.flatMap(running, ([now, active]) =>
        inference.chat(now.model.handle, messages, generateOptionsOf(config, active)))

    const loadAdapter = (reference: string) =>
      Effect.gen(function*() {
        const [now] = yield* running
        const next = yield* loader.adapter(reference)
        const fits = next.weights.rank <= now.adapterRank && now.model.handle.adapterLayout !== undefined &&
          Object.keys(next.weights.modules).every((module) =>
            now.model.handle.adapterLayout!.modules[module] !== undefined
          )
        if (next.metadata.baseModelDigest !== now.model.handle.baseModelDigest) {
          return yield* Effect.fail(
            new ModelLoaderError({
              reason:
                `adapter ${next.metadata.id}@${next.metadata.version} was made for base model ${next.metadata.baseModel} (sha256 ${next.metadata.baseModelDigest}), not ${now.model.id}@${now.model.version}`
            })
          )
        }
        if (fits) {
          yield* Ref.set(adapter, next)
          return { reloaded: false }
        }
        // Branches too small (or none): the model again, with room for this adapter.
        const reopened = yield* open(Math.max(now.adapterRank, next.weights.rank), reference)
        yield* Scope.close(now.scope, Exit.void)
        yield* Ref.set(current, reopened)
        yield* Ref.set(adapter, next)
        return { reloaded: true }
      })

    const session: Session = {
      id,
      version: (yield* Ref.get(current)).model.version,
      kind: (yield* Ref.get(current)).model.handle.kind,
      generate: (prompt, config) =>
        Effect.map(generateDetailed(prompt, config), (result) =>
          result.text),
      generateDetailed,
      generateStream: (prompt, config) =>
        Stream.unwrap(
          Effect.map(running, ([now, active]) =>
            inference.generateStream(now.model.handle, prompt, generateOptionsOf(config, active)))
        ),
      chat: (messages, config) =>
        Effect.map(chatDetailed(messages, config), (result) => result.text),
      chatDetailed,
      chatStream: (messages, config) =>
        Stream.unwrap(
          Effect.map(running, ([now, active]) =>
            inference.chatStream(now.model.handle, messages, generateOptionsOf(config, active)))
        ),
      embed: (text) =>
        Effect.flatMap(running, ([now, active]) =>
          Effect.map(
            inference.embedBatch(now.model.handle, [text], active === undefined ? {} : { adapter: active }),
            (vectors) => vectors[0]!
          )),
      embedBatch: (texts) =>
        Effect.flatMap(running, ([now, active]) =>
          inference.embedBatch(now.model.handle, texts, active === undefined ? {} : { adapter: active })),
      similarity: (a, b) =>
        Effect.flatMap(running, ([now, active]) =>
          Effect.map(
            inference.embedBatch(now.model.handle, [a, b], active === undefined ? {} : { adapter: active }),
            ([x, y]) => {
              let dot = 0
              for (let i = 0; i < x!.length; i++) {
                dot += x![i]! * y![i]!
              }
              return dot
            }
          )),
      loadAdapter,
      unloadAdapter: () =>
        Ref.set(adapter, undefined),
      activeAdapter: () =>
        Effect.map(Ref.get(adapter), (active) =>
          active === undefined ? undefined : `${active.metadata.id}@${active.metadata.version}`),
      getMemoryInfo: () =>
        Effect.map(Effect.zip(Ref.get(current), Ref.get(adapter)), ([now, active]) => ({
          modelBytes: now.model.bytes,
          adapterBytes: adapterBytesOf(active),
          kvCacheBytes: 0
        })),
      clearKVCache: () =>
        Effect.succeed(0),
      createTrainer: (config) =>
        Effect.flatMap(running, ([now]) =>
          makeTrainer({
            id: now.model.id,
            modelBytes: loader.modelBytes(now.model.manifest),
            tokenizer: now.model.handle.tokenizer,
            baseModelDigest: now.model.handle.baseModelDigest,
            cacheRoot: loader.cacheRoot
          }, config)),
      dispose
    }
    return session
  })
