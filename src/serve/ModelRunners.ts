/**
 * Where served requests' models run: on model worker threads (ModelWorkerPool), so the node's event
 * loop keeps reading and answering HTTP while models run (onnxruntime-node's `run` holds the thread
 * it is called on); or, with `EDGE_NET_INFERENCE_WORKERS=0`, on the node's own thread.
 *
 * Both open a model by the manifest the request resolved, from the node's blob store, keep a few
 * open, and run a request's adapter with that request only. Neither starts anything before the first
 * request that needs a model, and this module itself (with the loader, the inference code and the
 * chat templates it imports) is loaded by that request (OpenAi.ts): a node that serves no inference
 * pays nothing for it.
 */
import { Context, Effect, Layer, Scope, Stream } from "effect"
import { availableParallelism } from "node:os"
import * as path from "node:path"
import type { GenerationEvent } from "../compute/inference/Inference.js"
import { Inference } from "../compute/inference/Inference.js"
import type { Adapter } from "../compute/lora/AdapterFile.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import { TrustStore } from "../content/TrustStore.js"
import { type GenerateConfig, generateOptionsOf } from "../sdk/InferenceSession.js"
import { type ModelCatalog, ModelLoader } from "../sdk/ModelLoader.js"
import { ModelWorkerError, type ServedInput } from "../sdk/ModelWorker.js"
import { ModelWorkerPool } from "../sdk/ModelWorkerPool.js"
import type { EmbeddedTexts } from "./EmbeddingBatches.js"
import { invalidRequest, type OpenAiError, serverError } from "./OpenAiSchema.js"

/** A resolved request: its model's manifest and the adapter it runs with. */
export interface RunTarget {
  readonly manifest: ModelManifest
  readonly adapter: Adapter | undefined
}

export interface ModelRunner {
  /** What runs the models, for the logs. */
  readonly name: string
  /** Embeds texts on an embedding model, with each text's token count. */
  readonly embed: (target: RunTarget, texts: ReadonlyArray<string>) => Effect.Effect<EmbeddedTexts, OpenAiError>
  /**
   * A generation on a text generation model, as pieces (when `stream`; a whole reply needs only the
   * result) then the result; `endpoint` names the route in refusals.
   */
  readonly generate: (
    target: RunTarget,
    input: ServedInput,
    config: GenerateConfig,
    endpoint: string,
    stream: boolean
  ) => Stream.Stream<GenerationEvent, OpenAiError>
}

const kindNames = { encoder: "an embedding model", decoder: "a text generation model" } as const

/** A model of the other kind than the endpoint needs: the client's mistake. */
const wrongKind = (manifest: ModelManifest, wanted: "encoder" | "decoder", endpoint: string) =>
  invalidRequest(
    `${manifest.id}@${manifest.version} is ${
      kindNames[wanted === "encoder" ? "decoder" : "encoder"]
    }: ${endpoint} needs ${kindNames[wanted]}`,
    "model",
    "model_not_supported"
  )

const inferenceFailure = (error: { readonly _tag: string; readonly message: string }) =>
  error._tag === "InferenceInputError" ? invalidRequest(error.message) : serverError(error.message)

const unavailable = (error: { readonly message: string }) =>
  serverError(`inference is not available on this node: ${error.message}`, 503)

const adapterOptions = (adapter: Adapter | undefined) => (adapter === undefined ? {} : { adapter })

export interface RunnerSettings {
  /** The node's registry, as the in-process loader's catalog (never asked while manifests are given). */
  readonly catalog: ModelCatalog
  readonly store: BlobStore["Type"]
  readonly dataDir: string
  readonly maxModels: number
  readonly workers: number
}

/** Models on the node's own thread: the ModelLoader and onnxruntime built by the first request. */
const inProcessRunner = (settings: RunnerSettings) =>
  Effect.gen(function*() {
    const serviceScope = yield* Effect.scope
    const runtime = yield* Effect.cached(
      Layer.buildWithScope(
        ModelLoader.layer({ catalog: settings.catalog, maxModels: settings.maxModels }).pipe(
          Layer.provideMerge(
            Layer.mergeAll(
              // The node's thread reads and answers every request while a model runs: onnxruntime gets
              // the other cores (measured on 2: one operator thread serves more than two, docs/serving.md).
              Inference.layerNode({ intraOpNumThreads: Math.max(1, availableParallelism() - 1) }),
              Layer.succeed(BlobStore, settings.store),
              // Only pulls consult the trust store, and the node's loader never pulls.
              TrustStore.Default(path.join(settings.dataDir, "keys"))
            )
          )
        ),
        serviceScope
      ).pipe(
        Effect.map((context) => ({
          loader: Context.get(context, ModelLoader),
          inference: Context.get(context, Inference)
        })),
        Effect.mapError(unavailable)
      )
    )

    /** The target's model, lent to the scope; a model of the other kind is refused. */
    const open = (target: RunTarget, kind: "encoder" | "decoder", endpoint: string) =>
      Effect.gen(function*() {
        const { inference, loader } = yield* runtime
        // The manifest resolved for this request: the loader asks the registry nothing more.
        const loaded = yield* loader.load(target.manifest.id, {
          version: target.manifest.version,
          manifest: target.manifest,
          adapterRank: target.adapter?.weights.rank
        }).pipe(Effect.mapError((error) => serverError(error.message)))
        if (loaded.handle.kind !== kind) return yield* Effect.fail(wrongKind(target.manifest, kind, endpoint))
        return { inference, handle: loaded.handle }
      })

    return {
      name: "the node's thread",
      embed: (target, texts) =>
        Effect.scoped(Effect.gen(function*() {
          const { handle, inference } = yield* open(target, "encoder", "/v1/embeddings")
          // Tokenized once: the run embeds these encodings, and usage counts their tokens.
          const encodings = yield* inference.encodeForEmbedding(handle, texts).pipe(Effect.mapError(inferenceFailure))
          const vectors = yield* inference.embedEncodings(handle, encodings, adapterOptions(target.adapter)).pipe(
            Effect.mapError(inferenceFailure)
          )
          return { vectors, tokens: encodings.map((encoding) => encoding.ids.length) }
        })),
      generate: (target, input, config, endpoint) =>
        Stream.unwrapScoped(Effect.map(open(target, "decoder", endpoint), ({ handle, inference }) => {
          const options = generateOptionsOf(config, target.adapter)
          const events = "prompt" in input
            ? inference.generateEvents(handle, input.prompt, options)
            : inference.chatEvents(handle, input.messages, options)
          return Stream.mapError(events, inferenceFailure)
        }))
    } satisfies ModelRunner
  })

/** Models on `workers` model worker threads of one operator thread each or more, started by the first request. */
const workerRunner = (settings: RunnerSettings) =>
  Effect.gen(function*() {
    const serviceScope = yield* Effect.scope
    // The node's thread reads and answers requests: the workers share the other cores.
    const threads = Math.max(1, Math.floor((availableParallelism() - 1) / settings.workers))
    const pool = yield* Effect.cached(
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () =>
            ModelWorkerPool.create({
              size: settings.workers,
              threads,
              cacheDir: settings.store.root,
              registry: false,
              // The workers read no models.yaml: models come by manifest from this store, never pulled.
              configFile: path.join(settings.dataDir, "keys", "inference-workers.yaml"),
              memory: { maxModels: settings.maxModels }
            }),
          catch: (cause) => unavailable({ message: cause instanceof Error ? cause.message : String(cause) })
        }),
        (started) => Effect.promise(() => started.terminate())
      ).pipe(Scope.extend(serviceScope))
    )

    const served = (target: RunTarget, kind: "encoder" | "decoder") => ({
      manifest: target.manifest,
      kind,
      adapterRank: target.adapter?.weights.rank,
      adapter: target.adapter === undefined
        ? undefined
        : `${target.adapter.metadata.id}@${target.adapter.metadata.version}`
    })

    const failure = (target: RunTarget, kind: "encoder" | "decoder", endpoint: string) => (cause: unknown) =>
      !(cause instanceof ModelWorkerError)
        ? serverError(cause instanceof Error ? cause.message : String(cause))
        : cause.refusal === "kind"
        ? wrongKind(target.manifest, kind, endpoint)
        : cause.refusal === "input"
        ? invalidRequest(cause.message)
        : serverError(cause.message)

    return {
      name: `${settings.workers} model worker thread(s) of ${threads} operator thread(s)`,
      embed: (target, texts) =>
        Effect.flatMap(pool, (workers) =>
          Effect.tryPromise({
            try: () => workers.serveEmbed(served(target, "encoder"), texts),
            catch: failure(target, "encoder", "/v1/embeddings")
          })),
      generate: (target, input, config, endpoint, stream) =>
        Stream.unwrap(Effect.map(pool, (workers) =>
          Stream.fromAsyncIterable(
            workers.serveEvents(served(target, "decoder"), input, config, stream),
            failure(target, "decoder", endpoint)
          )))
    } satisfies ModelRunner
  })

/** Worker threads when `workers` > 0, else the node's own thread; scoped to the serving service. */
export const makeModelRunner = (settings: RunnerSettings) =>
  settings.workers > 0 ? workerRunner(settings) : inProcessRunner(settings)
