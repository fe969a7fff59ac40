/**
 * Model workers as an Effect service: a ModelWorkerPool (ModelWorkerPool.ts) started with the layer,
 * its models loaded, and stopped when the layer's scope closes. Failures are ModelWorkerError, and a
 * stream is a Stream whose interruption stops the generation in its thread.
 */
import { Context, Effect, Layer, Stream } from "effect"
import type { ChatMessage } from "../compute/inference/Inference.js"
import type { ModelChoice, WorkerGenerateConfig, WorkerLoadOptions, WorkerModel, WorkerStats } from "./ModelWorker.js"
import { ModelWorkerPool, type ModelWorkerPoolOptions } from "./ModelWorkerPool.js"
import { messageOf, ModelWorkerError } from "./ModelWorkerProtocol.js"

export interface ModelWorkersOptions extends ModelWorkerPoolOptions {
  /** Models every worker loads before the layer is built (`id[@version]`, or with session options). */
  readonly models?:
    | ReadonlyArray<string | { readonly reference: string; readonly options?: WorkerLoadOptions | undefined }>
    | undefined
}

export interface ModelWorkersService {
  readonly size: number
  readonly load: (reference: string, options?: WorkerLoadOptions) => Effect.Effect<WorkerModel, ModelWorkerError>
  /** The pieces joined: interrupting it stops the generation in its thread, as a stream's does. */
  readonly generate: (prompt: string, config?: WorkerGenerateConfig) => Effect.Effect<string, ModelWorkerError>
  readonly generateStream: (prompt: string, config?: WorkerGenerateConfig) => Stream.Stream<string, ModelWorkerError>
  readonly chat: (
    messages: ReadonlyArray<ChatMessage>,
    config?: WorkerGenerateConfig
  ) => Effect.Effect<string, ModelWorkerError>
  readonly chatStream: (
    messages: ReadonlyArray<ChatMessage>,
    config?: WorkerGenerateConfig
  ) => Stream.Stream<string, ModelWorkerError>
  /** Each prompt a request of its own, spread over the workers. */
  readonly batch: (
    prompts: ReadonlyArray<string>,
    config?: WorkerGenerateConfig
  ) => Effect.Effect<Array<string>, ModelWorkerError>
  readonly embed: (text: string, choice?: ModelChoice) => Effect.Effect<Float32Array, ModelWorkerError>
  readonly embedBatch: (
    texts: ReadonlyArray<string>,
    choice?: ModelChoice
  ) => Effect.Effect<Array<Float32Array>, ModelWorkerError>
  readonly stats: () => Effect.Effect<Array<WorkerStats>>
}

const workerError = (cause: unknown) =>
  cause instanceof ModelWorkerError ? cause : new ModelWorkerError({ reason: messageOf(cause) })

const attempt = <A>(run: () => Promise<A>) => Effect.tryPromise({ try: run, catch: workerError })

const joined = (pieces: Stream.Stream<string, ModelWorkerError>) =>
  Stream.runFold(pieces, "", (text, piece) => text + piece)

export const makeModelWorkers = (options: ModelWorkersOptions = {}) =>
  Effect.gen(function*() {
    const { models = [], ...poolOptions } = options
    const pool = yield* Effect.acquireRelease(
      attempt(() => ModelWorkerPool.create(poolOptions)),
      (started) => Effect.promise(() => started.terminate())
    )
    for (const model of models) {
      const { options: loadOptions, reference } = typeof model === "string" ? { reference: model, options: {} } : model
      yield* attempt(() => pool.load(reference, loadOptions))
    }
    // Suspended: each run of the stream is a request of its own.
    const generateStream = (prompt: string, config?: WorkerGenerateConfig) =>
      Stream.suspend(() => Stream.fromAsyncIterable(pool.stream(prompt, config), workerError))
    const chatStream = (messages: ReadonlyArray<ChatMessage>, config?: WorkerGenerateConfig) =>
      Stream.suspend(() => Stream.fromAsyncIterable(pool.chatStream(messages, config), workerError))
    return {
      size: pool.size,
      load: (reference, loadOptions) =>
        attempt(() => pool.load(reference, loadOptions)).pipe(Effect.withSpan("ModelWorkers.load")),
      generate: (prompt, config) =>
        joined(generateStream(prompt, config)).pipe(Effect.withSpan("ModelWorkers.generate")),
      generateStream,
      chat: (messages, config) => joined(chatStream(messages, config)).pipe(Effect.withSpan("ModelWorkers.chat")),
      chatStream,
      batch: (prompts, config) =>
        Effect.forEach(prompts, (prompt) => joined(generateStream(prompt, config)), { concurrency: "unbounded" }).pipe(
          Effect.withSpan("ModelWorkers.batch")
        ),
      embed: (text, choice) => attempt(() => pool.embed(text, choice)).pipe(Effect.withSpan("ModelWorkers.embed")),
      embedBatch: (texts, choice) =>
        attempt(() => pool.embedBatch(texts, choice)).pipe(Effect.withSpan("ModelWorkers.embedBatch")),
      stats: () => Effect.sync(() => pool.stats())
    } satisfies ModelWorkersService
  })

export class ModelWorkers extends Context.Tag("edge-net/ModelWorkers")<ModelWorkers, ModelWorkersService>() {
  /** A pool of `size` workers (default 2) with `models` loaded; stopped with the layer. */
  static readonly layer = (options: ModelWorkersOptions = {}) => Layer.scoped(ModelWorkers, makeModelWorkers(options))
}
