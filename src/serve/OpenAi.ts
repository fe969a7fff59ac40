/**
 * Inference served by the node, as OpenAI's API answers it: a request names a model of this node's
 * registry (and optionally a stored LoRA adapter), waits its turn in a bounded queue, and runs on a
 * ModelRunner (ModelRunners.ts): model worker threads by default, which open models from the node's
 * own BlobStore and keep a few in memory, while this thread goes on answering HTTP.
 *
 * The inference runtime (worker threads, onnxruntime) is built on the first request, never at start:
 * a node that serves no inference pays nothing for it.
 */
import { Effect, Exit, Metric, Option, Scope, Stream } from "effect"
import { AdapterPool } from "../actors/adapters/AdapterPoolService.js"
import { Registry } from "../actors/registry/RegistryService.js"
import type { ChatMessage, GenerationEvent } from "../compute/inference/Inference.js"
import type { Adapter } from "../compute/lora/AdapterFile.js"
import { loadLocalAdapter } from "../compute/lora/LocalAdapters.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import { adapterBaseDigestOf } from "../content/Manifest.js"
import * as Metrics from "../domain/Metrics.js"
import { inferenceSettingsOf, NodeConfig } from "../layers/NodeConfig.js"
import { releaseForWork } from "../node/IdleHeap.js"
import type { GenerateConfig } from "../sdk/InferenceSession.js"
import { parseModelReference } from "../sdk/ModelCatalog.js"
import type { ServedInput } from "../sdk/ModelWorker.js"
import { registryCatalog } from "../sdk/RegistryCatalog.js"
import { makeEmbeddingBatches } from "./EmbeddingBatches.js"
import { makeManifestCache } from "./ManifestCache.js"
import type { ModelRunner, RunnerSettings } from "./ModelRunners.js"
import { embeddingReply, sse, SSE_DONE, streamFrames, wholeReply } from "./OpenAiReplies.js"
import type { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "./OpenAiSchema.js"
import { invalidRequest, notFound, OpenAiError, serverError } from "./OpenAiSchema.js"

/** Completions default to OpenAI's 16 new tokens; chat to 256, so one request cannot hold the queue for long. */
const COMPLETION_DEFAULT_TOKENS = 16
const CHAT_DEFAULT_TOKENS = 256
/** Texts in one batched embeddings run at most: the encoder's own batch (Embedding.ts runs 32 at a time). */
const EMBEDDING_RUN_TEXTS = 32

/** What a request asked for, resolved: the manifest of its model and the adapter it runs with. */
export interface Target {
  readonly manifest: ModelManifest
  readonly adapter: Adapter | undefined
  /** The text the adapter pool chooses an adapter by, when the request named none. */
  readonly task: string | undefined
}

/** `adapter: "none"` runs the base model: no adapter, and none chosen by the pool. */
export const NO_ADAPTER = "none"

/** What ran a request, for the `x-edge-net-adapter` header: the adapter's `id@version`, if any. */
export interface Served<A> {
  readonly value: A
  readonly adapter: string | undefined
}

const adapterKeyOf = (adapter: Adapter | undefined) =>
  adapter === undefined ? undefined : `${adapter.metadata.id}@${adapter.metadata.version}`

/**
 * `model` is `id[@version]`, or `id[@version]:adapter[@version]` for clients that can only name a
 * model (a registry id has no colon, so the split is never ambiguous); `adapter` says the same in a
 * field of its own. Both at once must agree.
 */
export const parseModelField = (model: string, adapterField: string | null | undefined) => {
  const colon = model.indexOf(":")
  const base = colon === -1 ? model : model.slice(0, colon)
  const inModel = colon === -1 ? undefined : model.slice(colon + 1)
  const adapter = adapterField ?? undefined
  if (inModel !== undefined && adapter !== undefined && inModel !== adapter) {
    return Effect.fail(
      invalidRequest(`model names adapter ${inModel} but adapter names ${adapter}: give one`, "adapter", "conflict")
    )
  }
  return Effect.succeed({ model: parseModelReference(base), adapter: inModel ?? adapter })
}

const stopOf = (stop: string | ReadonlyArray<string> | null | undefined) =>
  stop === null || stop === undefined ? undefined : typeof stop === "string" ? [stop] : stop

const configOf = (
  request: CompletionRequest | ChatCompletionRequest,
  maxTokens: number | null | undefined,
  defaultTokens: number
): GenerateConfig => ({
  maxTokens: maxTokens ?? defaultTokens,
  // OpenAI's defaults: temperature 1 and top_p 1 (sampling); 0 asks for greedy decoding.
  temperature: request.temperature ?? 1,
  topP: request.top_p ?? 1,
  stopSequences: stopOf(request.stop)
})

const textOf = (content: string | ReadonlyArray<{ readonly text: string }>) =>
  typeof content === "string" ? content : content.map((part) => part.text).join("")

/** OpenAI's `developer` role is the system role of older templates. */
const chatMessagesOf = (request: ChatCompletionRequest): ReadonlyArray<ChatMessage> =>
  request.messages.map((message) => ({
    role: message.role === "developer" ? "system" : message.role,
    content: textOf(message.content)
  }))

/** A completion or a chat completion, told apart by the endpoint it came to. */
export type GenerationRequest =
  | { readonly kind: "completion"; readonly request: CompletionRequest }
  | { readonly kind: "chat"; readonly request: ChatCompletionRequest }

/** What the adapter pool chooses by: the prompt, or the last thing the user said. */
const taskOf = (asked: GenerationRequest) => {
  if (asked.kind === "completion") {
    return typeof asked.request.prompt === "string" ? asked.request.prompt : asked.request.prompt[0]
  }
  const messages = chatMessagesOf(asked.request)
  return ([...messages].reverse().find((message) => message.role === "user") ?? messages[messages.length - 1])?.content
}

/** A run target's lane of batched embeddings: one model version and adapter. */
const laneOf = (target: Target) =>
  `${target.manifest.id}@${target.manifest.version}#${adapterKeyOf(target.adapter) ?? ""}`

const inputOf = (asked: GenerationRequest): ServedInput =>
  asked.kind === "chat"
    ? { messages: chatMessagesOf(asked.request) }
    : { prompt: typeof asked.request.prompt === "string" ? asked.request.prompt : asked.request.prompt[0] }

/** What a scrape shows of the queue, as vLLM's `num_requests_running` and `num_requests_waiting` do. */
const admittedGauge = Metrics.gauge(
  "edge_net_inference_admitted",
  "Inference requests admitted: running or waiting for a turn (a 429 answers one more than concurrency + queue)"
)

const generateConfigOf = (asked: GenerationRequest) =>
  asked.kind === "chat"
    ? configOf(asked.request, asked.request.max_completion_tokens ?? asked.request.max_tokens, CHAT_DEFAULT_TOKENS)
    : configOf(asked.request, asked.request.max_tokens, COMPLETION_DEFAULT_TOKENS)

/**
 * The model runner (ModelRunners.ts), its module loaded and the runner made by the first request that
 * runs a model: the loader, the inference code and the chat templates stay out of a node that serves
 * none (a few milliseconds more on that first request, which opens a model anyway).
 */
const deferredModelRunner = (settings: RunnerSettings) =>
  Effect.gen(function*() {
    const serviceScope = yield* Effect.scope
    const runner = yield* Effect.cached(
      Effect.promise(() => import("./ModelRunners.js")).pipe(
        Effect.flatMap(({ makeModelRunner }) => makeModelRunner(settings)),
        Scope.extend(serviceScope)
      )
    )
    const embed: ModelRunner["embed"] = (target, texts) =>
      Effect.flatMap(runner, (loaded) => {
        releaseForWork()
        return loaded.embed(target, texts)
      })
    const generate: ModelRunner["generate"] = (target, input, config, endpoint, stream) =>
      Stream.unwrap(Effect.map(runner, (loaded) => {
        releaseForWork()
        return loaded.generate(target, input, config, endpoint, stream)
      }))
    return { embed, generate }
  })

export class InferenceServing extends Effect.Service<InferenceServing>()("edge-net/InferenceServing", {
  scoped: Effect.gen(function*() {
    const registry = yield* Registry
    const pool = yield* AdapterPool
    const store = yield* BlobStore
    const config = yield* NodeConfig
    const settings = inferenceSettingsOf(config)
    const catalog = registryCatalog(registry)
    // Read once per id and version, forgotten when the journal shows that id published or yanked.
    const manifests = yield* makeManifestCache(catalog)
    // Worker threads (or this thread's runtime), started by the first request that needs a model.
    const runner = yield* deferredModelRunner({
      catalog,
      store,
      dataDir: config.dataDir,
      maxModels: settings.maxModels,
      workers: settings.workers
    })

    const permits = yield* Effect.makeSemaphore(settings.concurrency)
    // Requests running or waiting for a permit: the queue is full when all permits are out and `queue` wait.
    let admittedNow = 0
    const capacity = settings.concurrency + settings.queue
    yield* Metric.set(admittedGauge, 0)
    const queueFull = () =>
      new OpenAiError({
        status: 429,
        message: `this node is busy: ${settings.concurrency} running and ${settings.queue} waiting; retry later`,
        type: "rate_limit_error",
        param: null,
        code: "queue_full"
      })

    /** Takes a place in the queue, or refuses with a 429; run uninterruptibly with the release's registration. */
    const enter = Effect.suspend(() => {
      if (admittedNow >= capacity) return Effect.fail(queueFull())
      return Metric.set(admittedGauge, ++admittedNow)
    })
    const leave = Effect.suspend(() => Metric.set(admittedGauge, --admittedNow))

    // Counted and its release registered in one step, so an interruption never loses a place.
    const admit = (scope: Scope.Scope) =>
      Effect.uninterruptible(Effect.zipRight(enter, Scope.addFinalizer(scope, leave)))

    /** `effect` admitted to the queue (or refused with a 429), its place given back when it ends. */
    const whileAdmitted = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<A, E | OpenAiError> =>
      Effect.uninterruptibleMask((restore) => Effect.zipRight(enter, Effect.ensuring(restore(effect), leave)))

    /** Waits for a permit, interruptibly; it goes back when `scope` closes. */
    const takePermit = (scope: Scope.Scope) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(restore(permits.take(1)), Scope.addFinalizer(scope, permits.release(1)))
      )

    const manifestOf = (id: string, version: string | undefined) =>
      manifests.manifest(id, version).pipe(Effect.mapError((error) => serverError(error.message)))

    const resolve = (model: string, adapterField: string | null | undefined, task: string | undefined) =>
      Effect.gen(function*() {
        const parsed = yield* parseModelField(model, adapterField)
        const { id, version } = parsed.model
        const found = yield* manifestOf(id, version)
        if (Option.isNone(found)) {
          return yield* notFound(
            `model ${model} is not published to this node (GET /v1/models lists what is)`,
            "model",
            "model_not_found"
          )
        }
        const manifest = found.value
        if (parsed.adapter === NO_ADAPTER) return { manifest, adapter: undefined, task: undefined } satisfies Target
        if (parsed.adapter === undefined) return { manifest, adapter: undefined, task } satisfies Target
        const reference = parseModelReference(parsed.adapter)
        const adapter = yield* loadLocalAdapter(store.root, reference.id, reference.version).pipe(
          Effect.mapError((error) =>
            error.message.startsWith("no adapter")
              ? notFound(`adapter ${parsed.adapter} is not stored on this node`, "adapter", "adapter_not_found")
              : serverError(`adapter ${parsed.adapter} cannot be read: ${error.message}`)
          )
        )
        if (adapterBaseDigestOf(manifest) !== adapter.metadata.baseModelDigest) {
          return yield* invalidRequest(
            `adapter ${adapter.metadata.id}@${adapter.metadata.version} was made for base model ${adapter.metadata.baseModel}, not ${manifest.id}@${manifest.version}`,
            "adapter",
            "adapter_model_mismatch"
          )
        }
        return { manifest, adapter, task: undefined } satisfies Target
      })

    /**
     * The adapter the pool chooses for a request that named none: the task encoder embeds the request's
     * text, and the nearest resident adapter made for this base model runs it, its use recorded in the
     * pool's log. Nothing is chosen (the base model runs) when no task encoder is set, no resident
     * adapter has a task embedding, or none fits this model.
     */
    const chooseAdapter = (manifest: ModelManifest, task: string) =>
      Effect.gen(function*() {
        const encoder = settings.taskEncoder
        if (encoder === undefined || task.trim() === "") return undefined
        const view = yield* pool.state()
        if (!view.residents.some((resident) => resident.dimensions !== null)) return undefined
        const encoderRef = parseModelReference(encoder)
        const encoderManifest = yield* manifestOf(encoderRef.id, encoderRef.version)
        if (Option.isNone(encoderManifest)) {
          return yield* serverError(`the task encoder ${encoder} is not published to this node`)
        }
        const embedded = yield* runner.embed({ manifest: encoderManifest.value, adapter: undefined }, [task]).pipe(
          Effect.mapError((error) => serverError(`the task encoder ${encoder} failed: ${error.message}`))
        )
        const matches = yield* pool.nearest(Array.from(embedded.vectors[0] ?? [])).pipe(
          Effect.catchAll((refused) =>
            Effect.as(Effect.logWarning(`adapter pool: no choice by task: ${refused.message}`), [])
          )
        )
        const digest = adapterBaseDigestOf(manifest)
        for (const match of matches) {
          const { id, version } = parseModelReference(match.key)
          const stored = yield* Effect.option(loadLocalAdapter(store.root, id, version))
          if (Option.isNone(stored) || stored.value.metadata.baseModelDigest !== digest) continue
          const recorded = yield* Effect.either(pool.use(match.key))
          if (recorded._tag === "Right") return stored.value
        }
        return undefined
      }).pipe(Effect.withSpan("InferenceServing.chooseAdapter"))

    /**
     * Admits a generation and waits its turn, both held by `scope` (a stream closes it when its last
     * event is written), then settles its adapter: named, or chosen by the pool.
     */
    const lease = (target: Target, scope: Scope.Scope) =>
      Effect.gen(function*() {
        yield* admit(scope)
        yield* takePermit(scope)
        const adapter = target.adapter ??
          (target.task === undefined ? undefined : yield* chooseAdapter(target.manifest, target.task))
        return { manifest: target.manifest, adapter }
      })

    /** Concurrent embedding requests for one model and adapter share a run, which holds one permit. */
    const batches = yield* makeEmbeddingBatches({
      maxTexts: EMBEDDING_RUN_TEXTS,
      runsAtOnce: settings.concurrency,
      turn: permits.withPermits(1),
      run: runner.embed
    })

    // Called once per request, so untraced: a traced Effect.fn captures a stack and copies the fiber's
    // context for its span on every call (about 11 µs, as much as the rest of the request's Effect work).
    const embeddings = Effect.fnUntraced(function*(request: EmbeddingRequest) {
      const texts = typeof request.input === "string" ? [request.input] : request.input
      // Embeddings run the adapter they name, or none: a pool's adapters are chosen for generation tasks.
      const target = yield* resolve(request.model, request.adapter, undefined)
      const embedded = yield* whileAdmitted(batches.submit(laneOf(target), target, texts))
      const tokens = embedded.tokens.reduce((sum, count) => sum + count, 0)
      return {
        value: embeddingReply(request.model, embedded.vectors, request.encoding_format ?? "float", tokens),
        adapter: adapterKeyOf(target.adapter)
      } satisfies Served<ReturnType<typeof embeddingReply>>
    })

    /** The generation a completion or chat request runs, as a stream of events. */
    const generation = (
      asked: GenerationRequest,
      leased: { manifest: ModelManifest; adapter: Adapter | undefined },
      stream: boolean
    ) =>
      runner.generate(
        leased,
        inputOf(asked),
        generateConfigOf(asked),
        asked.kind === "chat" ? "/v1/chat/completions" : "/v1/completions",
        stream
      )

    const resultOf = (events: Stream.Stream<GenerationEvent, OpenAiError>) =>
      Effect.flatMap(
        Stream.runLast(Stream.filter(events, (event) => event._tag === "Done")),
        (last) =>
          Option.isSome(last) && last.value._tag === "Done"
            ? Effect.succeed(last.value.result)
            : Effect.fail(serverError("the generation ended without a result"))
      )

    const complete = Effect.fn("InferenceServing.complete")(function*(asked: GenerationRequest) {
      const { kind, request } = asked
      const target = yield* resolve(request.model, request.adapter, taskOf(asked))
      const served = yield* Effect.scoped(
        Effect.flatMap(
          Effect.scope,
          (scope) =>
            Effect.flatMap(
              lease(target, scope),
              (leased) =>
                Effect.map(resultOf(generation(asked, leased, false)), (value) => ({
                  value,
                  adapter: adapterKeyOf(leased.adapter)
                }))
            )
        )
      )
      return { value: wholeReply(kind, request.model, served.value), adapter: served.adapter }
    })

    /**
     * The reply as OpenAI streams it: server-sent events of chunks, the last one with the finish
     * reason, then `data: [DONE]`. The request is admitted (or refused) before the first byte is sent;
     * a failure after it is sent as an `error` event.
     */
    const completeStream = Effect.fn("InferenceServing.completeStream")(function*(asked: GenerationRequest) {
      const { kind, request } = asked
      const target = yield* resolve(request.model, request.adapter, taskOf(asked))
      const frames = streamFrames(kind, request.model)
      const scope = yield* Scope.make()
      const leased = yield* lease(target, scope).pipe(Effect.tapError(() => Scope.close(scope, Exit.void)))
      const events = Stream.concat(
        Stream.fromIterable(frames.first),
        Stream.map(
          generation(asked, leased, true),
          (event) => event._tag === "Piece" ? frames.piece(event.text) : frames.last(event.result)
        )
      ).pipe(
        Stream.catchAll((error) => Stream.make(sse(error.body))),
        Stream.concat(Stream.make(SSE_DONE)),
        Stream.ensuring(Scope.close(scope, Exit.void))
      )
      return { value: events, adapter: adapterKeyOf(leased.adapter) } satisfies Served<Stream.Stream<string>>
    })

    return { resolve, embeddings, complete, completeStream } as const
  })
}) {}
