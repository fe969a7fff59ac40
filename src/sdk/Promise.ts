/**
 * The SDK for programs that do not use Effect (seed section 7): `ModelLoader` and `InferenceSession`
 * as plain classes whose methods return Promises (and async iterables for streams). Each loader runs
 * the Effect services (ModelLoader.ts, InferenceSession.ts) on its own runtime; `close()` ends it,
 * closing every model it opened.
 *
 * ```js
 * import { ModelLoader, InferenceSession } from "edge-net/promise"
 * const loader = new ModelLoader({ memory: { maxModels: 2 } })
 * const session = await InferenceSession.create("tiny-lm", { loader })
 * console.log(await session.generate("Once upon a time", { maxTokens: 20 }))
 * for await (const piece of session.generateStream("The sea")) process.stdout.write(piece)
 * await loader.close()
 * ```
 *
 * @packageDocumentation
 * @module edge-net/promise
 */
import { Cause, Effect, Exit, Layer, ManagedRuntime, Scope, Stream } from "effect"
import * as path from "node:path"
import type { ChatMessage, GenerateResult } from "../compute/inference/Inference.js"
import { Inference } from "../compute/inference/Inference.js"
import type { LoraWeights } from "../compute/lora/Adapter.js"
import type { TrainingProgress } from "../compute/lora/train/TrainingLoop.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import {
  cacheDirectory,
  cacheMaxBytes,
  configFile,
  keysDirectory,
  loadConfig,
  type ModelsConfig
} from "../content/ModelsConfig.js"
import { TrustStore } from "../content/TrustStore.js"
import * as Session from "./InferenceSession.js"
import {
  type CachedModel,
  type ClearReport,
  type CompatibilityReport,
  type EvictionPolicy,
  type LoadProgress,
  ModelLoader as LoaderService,
  type ResidentModel
} from "./ModelLoader.js"
import type { SaveOptions, TrainerConfig, TrainingExample, TrainSummary } from "./SessionTrainer.js"
import type * as SessionTrainer from "./SessionTrainer.js"

export type { SaveOptions, TrainerConfig, TrainingExample, TrainSummary } from "./SessionTrainer.js"

export type { ChatMessage, GenerateResult } from "../compute/inference/Inference.js"
export type { GenerateConfig, MemoryInfo } from "./InferenceSession.js"
export type {
  CachedModel,
  ClearReport,
  CompatibilityReport,
  EvictionPolicy,
  LoadProgress,
  ResidentModel
} from "./ModelLoader.js"
export { ModelLoaderError } from "./ModelLoader.js"
export { ModelWorker, ModelWorkerError } from "./ModelWorker.js"
export type {
  ModelChoice,
  ModelWorkerOptions,
  WorkerGenerateConfig,
  WorkerLoadOptions,
  WorkerModel,
  WorkerStats
} from "./ModelWorker.js"
export { ModelWorkerPool } from "./ModelWorkerPool.js"
export type { ModelWorkerPoolOptions } from "./ModelWorkerPool.js"

export interface ModelLoaderOptions {
  /** models.yaml to read (default: $EDGE_NET_MODELS_CONFIG, else ~/.edge-net/models.yaml). */
  readonly configFile?: string | undefined
  /** The models cache (default: `cache.directory` of the config). */
  readonly cacheDir?: string | undefined
  /** Where to pull models that are not cached (default: `registry` of the config); false: the cache only. */
  readonly registry?: string | false | undefined
  /** onnxruntime-node (default) or onnxruntime-web (WebAssembly). */
  readonly backend?: "node" | "web" | undefined
  /**
   * Threads one model run may use: onnxruntime-node's operator threads (default one per core), or
   * onnxruntime-web's WebAssembly threads (default 1). Small models run fastest on one.
   */
  readonly threads?: number | undefined
  readonly memory?: {
    /** Models open at once (default 3). */
    readonly maxModels?: number | undefined
    /** Bytes of model files open at once (default: no limit). */
    readonly maxBytes?: number | undefined
    /** Which idle model goes first (default "lru"). */
    readonly evictionPolicy?: EvictionPolicy | undefined
  } | undefined
}

type LoaderServices = LoaderService | Inference | BlobStore | TrustStore

const configOf = async (options: ModelLoaderOptions): Promise<ModelsConfig> => {
  const file = options.configFile ?? process.env.EDGE_NET_MODELS_CONFIG ?? configFile()
  return Effect.runPromise(Effect.mapError(loadConfig(file), (error) => new Error(error.message)))
}

/** Models by id from the cache (pulled from a registry when missing), kept open under a memory limit. */
export class ModelLoader {
  /** @internal The runtime every call of this loader and its sessions runs on. */
  readonly runtime: Promise<ManagedRuntime.ManagedRuntime<LoaderServices, Error>>

  constructor(options: ModelLoaderOptions = {}) {
    this.runtime = configOf(options).then((config) => {
      const root = path.resolve(options.cacheDir ?? cacheDirectory(config))
      const registry = options.registry === undefined ? config.registry : options.registry
      const services = LoaderService.layer({
        maxModels: options.memory?.maxModels,
        maxBytes: options.memory?.maxBytes,
        eviction: options.memory?.evictionPolicy,
        pullFrom: registry === false ? undefined : { registry, config }
      }).pipe(
        Layer.provideMerge(
          Layer.mergeAll(
            BlobStore.layer({ root, maxBytes: cacheMaxBytes(config) }),
            TrustStore.Default(keysDirectory(config)),
            options.backend === "web"
              ? Inference.layerWeb({ numThreads: options.threads })
              : Inference.layerNode({ intraOpNumThreads: options.threads })
          )
        ),
        Layer.mapError((error) => new Error(error.message))
      )
      return ManagedRuntime.make(services)
    })
  }

  /** @internal Runs an Effect of the loader's services; a failure rejects with the error itself (one line). */
  async run<A, E extends { readonly message: string }>(effect: Effect.Effect<A, E, LoaderServices>): Promise<A> {
    const runtime = await this.runtime
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }

  /** Opens a model as a session (the seed's `load`): `generate`, `embed` and the rest on it. */
  load(id: string, options: Session.SessionOptions = {}): Promise<InferenceSession> {
    return InferenceSession.create(id, { ...options, loader: this })
  }

  isCached(id: string, version?: string): Promise<boolean> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.isCached(id, version)))
  }

  getCachedModels(): Promise<ReadonlyArray<CachedModel>> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.getCachedModels()))
  }

  getManifest(id: string, version?: string): Promise<ModelManifest> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.getManifest(id, version)))
  }

  /** The cached models of one type and quantization (the seed's `listModels`). */
  async listModels(filter: { readonly type?: string; readonly quantization?: string } = {}) {
    const models = await this.getCachedModels()
    return models.filter((model) =>
      (filter.type === undefined || model.type === filter.type) &&
      (filter.quantization === undefined || model.quantization === filter.quantization.toUpperCase())
    )
  }

  /** Pulls models into the cache without opening them. */
  preload(ids: string | ReadonlyArray<string>, onProgress?: (progress: LoadProgress) => void) {
    const list = typeof ids === "string" ? [ids] : ids
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.preload(list, onProgress)))
  }

  clearCache(id: string): Promise<ClearReport> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.clearCache(id)))
  }

  clearAllCache(): Promise<ClearReport> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.clearAllCache()))
  }

  checkCompatibility(id: string, version?: string): Promise<CompatibilityReport> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.checkCompatibility(id, version)))
  }

  /** The models open in memory now, with how many sessions hold each. */
  resident(): Promise<ReadonlyArray<ResidentModel>> {
    return this.run(Effect.flatMap(LoaderService, (loader) => loader.resident()))
  }

  /** Closes every model and the runtime; the loader and its sessions refuse work afterwards. */
  async close(): Promise<void> {
    await (await this.runtime).dispose()
  }
}

let sharedLoader: ModelLoader | undefined

/** The seed's trainer (SessionTrainer.ts) with Promises. */
export class Trainer {
  /** @internal */
  constructor(private readonly loader: ModelLoader, private readonly trainer: SessionTrainer.Trainer) {}

  /** Trains a fresh adapter on `examples`; resolves with the held-out figures before and after. */
  train(
    examples: ReadonlyArray<TrainingExample>,
    options?: { readonly onProgress?: ((progress: TrainingProgress) => void) | undefined }
  ): Promise<TrainSummary> {
    return this.loader.run(this.trainer.train(examples, options))
  }

  /** The last trained adapter: its weights, its figures, and `save(id)` into the loader's cache. */
  async getAdapter(): Promise<{
    readonly weights: LoraWeights
    readonly summary: TrainSummary
    readonly save: (id: string, options?: SaveOptions) => Promise<{ id: string; version: string; checksum: string }>
  }> {
    const adapter = await this.loader.run(this.trainer.getAdapter())
    return {
      weights: adapter.weights,
      summary: adapter.summary,
      save: (id, options) => this.loader.run(adapter.save(id, options))
    }
  }
}

/** A session on one model: generation, chat, embeddings, adapters. */
export class InferenceSession {
  private constructor(
    private readonly loader: ModelLoader,
    private readonly session: Session.Session,
    private readonly scope: Scope.CloseableScope
  ) {}

  /** Opens `id` (`id[@version]`) with `options.loader`, or a loader with the default settings shared by such calls. */
  static async create(
    id: string,
    options: Session.SessionOptions & { readonly loader?: ModelLoader | undefined } = {}
  ): Promise<InferenceSession> {
    const loader = options.loader ?? (sharedLoader ??= new ModelLoader())
    const scope = Effect.runSync(Scope.make())
    const session = await loader.run(
      Session.create(id, options).pipe(
        Scope.extend(scope),
        Effect.tapError(() => Scope.close(scope, Exit.void))
      )
    )
    return new InferenceSession(loader, session, scope)
  }

  get id(): string {
    return this.session.id
  }

  get version(): string {
    return this.session.version
  }

  get kind(): "encoder" | "decoder" {
    return this.session.kind
  }

  generate(prompt: string, config?: Session.GenerateConfig): Promise<string> {
    return this.loader.run(this.session.generate(prompt, config))
  }

  /** With the token ids, the prompt's length in tokens and why generation stopped. */
  generateDetailed(prompt: string, config?: Session.GenerateConfig): Promise<GenerateResult> {
    return this.loader.run(this.session.generateDetailed(prompt, config))
  }

  /** The text in pieces as it is decoded; a multi-byte character is never split. */
  async *generateStream(prompt: string, config?: Session.GenerateConfig): AsyncIterable<string> {
    yield* await this.streamOf(this.session.generateStream(prompt, config))
  }

  chat(messages: ReadonlyArray<ChatMessage>, config?: Session.GenerateConfig): Promise<string> {
    return this.loader.run(this.session.chat(messages, config))
  }

  async *chatStream(messages: ReadonlyArray<ChatMessage>, config?: Session.GenerateConfig): AsyncIterable<string> {
    yield* await this.streamOf(this.session.chatStream(messages, config))
  }

  embed(text: string): Promise<Float32Array> {
    return this.loader.run(this.session.embed(text))
  }

  embedBatch(texts: ReadonlyArray<string>): Promise<Array<Float32Array>> {
    return this.loader.run(this.session.embedBatch(texts))
  }

  similarity(a: string, b: string): Promise<number> {
    return this.loader.run(this.session.similarity(a, b))
  }

  /** Runs with this stored adapter from now on (swapped in place when the model's branches fit it). */
  loadAdapter(reference: string): Promise<{ readonly reloaded: boolean }> {
    return this.loader.run(this.session.loadAdapter(reference))
  }

  unloadAdapter(): Promise<void> {
    return this.loader.run(this.session.unloadAdapter())
  }

  async getMemoryInfo(): Promise<Session.MemoryInfo> {
    return this.loader.run(this.session.getMemoryInfo())
  }

  async clearKVCache(): Promise<number> {
    return this.loader.run(this.session.clearKVCache())
  }

  /** A trainer of MicroLoRA adapters on this session's model: `train(examples)`, `getAdapter()`, `adapter.save(id)`. */
  async createTrainer(config?: TrainerConfig): Promise<Trainer> {
    return new Trainer(this.loader, await this.loader.run(this.session.createTrainer(config)))
  }

  /** Gives the model back to the loader, which may then close it. */
  dispose(): Promise<void> {
    return this.loader.run(Scope.close(this.scope, Exit.void))
  }

  private async streamOf<E extends { readonly message: string }>(
    stream: Stream.Stream<string, E, never>
  ): Promise<AsyncIterable<string>> {
    const runtime = await (await this.loader.runtime).runtime()
    return Stream.toAsyncIterableRuntime(stream, runtime)
  }
}
