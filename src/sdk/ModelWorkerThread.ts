/**
 * Entry point of a model worker thread (see ModelWorker.ts): a Promise-facade ModelLoader of its own,
 * the sessions loaded on it by reference, and the caller's requests run one at a time in their order.
 *
 * One at a time, because a thread's model runs already use onnxruntime's operator threads: two at once
 * would only take turns on them, and the pieces of one generation would interleave with another's.
 * Cancelling and listening are acted on at once, between two pieces of the running generation.
 */
import { Effect, Stream } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import type { ChatMessage, GenerateResult } from "../compute/inference/Inference.js"
import { Inference } from "../compute/inference/Inference.js"
import type { Adapter } from "../compute/lora/AdapterFile.js"
import { type GenerateConfig, generateOptionsOf } from "./InferenceSession.js"
import { ModelLoader as LoaderService, type ModelLoaderError } from "./ModelLoader.js"
import {
  type FromWorker,
  messageOf,
  type ModelWorkerData,
  type ServedModel,
  type ToWorker,
  transferable,
  type WorkerModel,
  type WorkerRefusal,
  type WorkerRequest,
  type WorkerValue
} from "./ModelWorkerProtocol.js"
import { type InferenceSession, ModelLoader } from "./Promise.js"

const port = parentPort
if (port === null) throw new Error("ModelWorkerThread runs in a Node worker thread")
const settings = workerData as ModelWorkerData
const post = (message: FromWorker, transfer: ReadonlyArray<ArrayBuffer> = []) => port.postMessage(message, transfer)

const loader = new ModelLoader(settings.loader)
let listening = settings.listening
/** Requests queued or running; a cancelled one stops at its next piece, or is skipped when its turn comes. */
const accepted = new Set<number>()
const cancelled = new Set<number>()
let closing = false

interface Loaded {
  readonly model: WorkerModel
  readonly session: InferenceSession
}
/** By reference, in load order (a reload moves it to the end). */
const loaded = new Map<string, Loaded>()

const sessionFor = (model: string | undefined, kind: "encoder" | "decoder"): InferenceSession => {
  if (model !== undefined) {
    const named = loaded.get(model) ?? [...loaded.values()].find((entry) => entry.model.id === model)
    if (named === undefined) {
      throw new Error(
        `${model} is not loaded in this worker (load it first; loaded: ${[...loaded.keys()].join(", ") || "none"})`
      )
    }
    return named.session
  }
  const all = [...loaded.values()]
  const chosen = all.findLast((entry) => entry.model.kind === kind) ?? all[all.length - 1]
  if (chosen === undefined) throw new Error("no model is loaded in this worker: call load(id) first")
  return chosen.session
}

/** Runs a generation as pieces, sent when streamed or listened to; the text is their concatenation. */
const generation = async (id: number, pieces: AsyncIterable<string>, stream: boolean): Promise<string> => {
  let text = ""
  for await (const piece of pieces) {
    if (cancelled.has(id)) break
    text += piece
    if (stream || listening) post({ type: "piece", id, text: piece })
  }
  return text
}

const generate = (id: number, model: string | undefined, prompt: string, config: GenerateConfig, stream: boolean) =>
  generation(id, sessionFor(model, "decoder").generateStream(prompt, config), stream)

const chat = (
  id: number,
  model: string | undefined,
  messages: ReadonlyArray<ChatMessage>,
  config: GenerateConfig,
  stream: boolean
) => generation(id, sessionFor(model, "decoder").chatStream(messages, config), stream)

const load = async (request: Extract<WorkerRequest, { type: "load" }>): Promise<WorkerModel> => {
  const session = await loader.load(request.reference, {
    ...request.options,
    onProgress: (progress) => post({ type: "progress", id: request.id, progress })
  })
  const previous = loaded.get(request.reference)
  loaded.delete(request.reference)
  const model: WorkerModel = {
    reference: request.reference,
    id: session.id,
    version: session.version,
    kind: session.kind
  }
  loaded.set(request.reference, { model, session })
  await previous?.session.dispose()
  return model
}

/** A request refused for what it asked (see WorkerRefusal), not failed. */
class Refused extends Error {
  constructor(message: string, readonly refusal: WorkerRefusal) {
    super(message)
  }
}

const refusalOf = (error: unknown): WorkerRefusal | undefined =>
  error instanceof Refused
    ? error.refusal
    : typeof error === "object" && error !== null && "_tag" in error && error._tag === "InferenceInputError"
    ? "input"
    : undefined

/** Adapters of served requests, by `id@version` (a stored version does not change), the last few used. */
const adapters = new Map<string, Adapter>()
const ADAPTERS_KEPT = 8

const servedAdapter = (
  reference: string | undefined
): Effect.Effect<Adapter | undefined, ModelLoaderError, LoaderService> =>
  Effect.suspend(() => {
    if (reference === undefined) return Effect.succeed(undefined)
    const known = adapters.get(reference)
    if (known !== undefined) {
      adapters.delete(reference)
      adapters.set(reference, known)
      return Effect.succeed(known)
    }
    return Effect.tap(
      Effect.flatMap(LoaderService, (models) => models.adapter(reference)),
      (read) =>
        Effect.sync(() => {
          adapters.set(reference, read)
          if (adapters.size > ADAPTERS_KEPT) adapters.delete(adapters.keys().next().value!)
        })
    )
  })

/**
 * A served model, open for the request's scope (and kept open by the loader afterwards, under its
 * limit), with the request's adapter; a model of the other kind is refused.
 */
const opened = (served: ServedModel) =>
  Effect.gen(function*() {
    const models = yield* LoaderService
    const model = yield* models.load(served.manifest.id, {
      version: served.manifest.version,
      manifest: served.manifest,
      adapterRank: served.adapterRank
    })
    if (model.handle.kind !== served.kind) return yield* Effect.fail(new Refused(model.handle.kind, "kind"))
    return { handle: model.handle, adapter: yield* servedAdapter(served.adapter) }
  })

const serveEmbed = (served: ServedModel, texts: ReadonlyArray<string>) =>
  loader.run(Effect.scoped(Effect.gen(function*() {
    const inference = yield* Inference
    const { adapter, handle } = yield* opened(served)
    // Tokenized once: the run embeds these encodings, and the caller counts their tokens.
    const encodings = yield* inference.encodeForEmbedding(handle, texts)
    const vectors = yield* inference.embedEncodings(handle, encodings, adapter === undefined ? {} : { adapter })
    return { vectors, tokens: encodings.map((encoding) => encoding.ids.length) }
  })))

const serveGenerate = (request: Extract<WorkerRequest, { type: "serveGenerate" }>) =>
  loader.run(Effect.scoped(Effect.gen(function*() {
    const inference = yield* Inference
    const { adapter, handle } = yield* opened(request.served)
    const options = generateOptionsOf(request.config, adapter)
    const events = "prompt" in request.input
      ? inference.generateEvents(handle, request.input.prompt, options)
      : inference.chatEvents(handle, request.input.messages, options)
    let result: GenerateResult | null = null
    yield* Stream.runForEach(
      Stream.takeWhile(events, () => !cancelled.has(request.id)),
      (event) =>
        Effect.sync(() => {
          if (event._tag === "Done") result = event.result
          else if (request.stream) post({ type: "piece", id: request.id, text: event.text })
        })
    )
    return result
  })))

/** The answer to a request, with the buffers it moves to the caller (embeddings). */
const handle = async (request: WorkerRequest): Promise<{ value: WorkerValue; transfer?: Array<ArrayBuffer> }> => {
  switch (request.type) {
    case "load":
      return { value: await load(request) }
    case "unload": {
      const entry = loaded.get(request.reference)
      loaded.delete(request.reference)
      await entry?.session.dispose()
      return { value: null }
    }
    case "generate":
      return { value: await generate(request.id, request.model, request.prompt, request.config, request.stream) }
    case "chat":
      return { value: await chat(request.id, request.model, request.messages, request.config, request.stream) }
    case "batch": {
      const texts: Array<string> = []
      for (const prompt of request.prompts) {
        if (cancelled.has(request.id)) break
        texts.push(await generate(request.id, request.model, prompt, request.config, false))
      }
      return { value: texts }
    }
    case "embed": {
      const embedded = await sessionFor(request.model, "encoder").embedBatch(request.texts)
      const { buffers, vectors } = transferable(embedded)
      return { value: vectors, transfer: buffers }
    }
    case "serveEmbed": {
      const embedded = await serveEmbed(request.served, request.texts)
      const { buffers, vectors } = transferable(embedded.vectors)
      return { value: { vectors, tokens: embedded.tokens }, transfer: buffers }
    }
    case "serveGenerate":
      return { value: await serveGenerate(request) }
  }
}

const answer = async (request: WorkerRequest) => {
  try {
    // A request whose caller went away before its turn (a stream closed early) is not run at all.
    if (cancelled.has(request.id)) return
    const { transfer, value } = await handle(request)
    post({ type: "done", id: request.id, value }, transfer)
  } catch (error) {
    post({ type: "error", id: request.id, message: messageOf(error), refusal: refusalOf(error) })
  } finally {
    accepted.delete(request.id)
    cancelled.delete(request.id)
  }
}

let queue: Promise<void> = Promise.resolve()

port.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "cancel":
      if (accepted.has(message.id)) cancelled.add(message.id)
      return
    case "listen":
      listening = message.listening
      return
    case "crash":
      setImmediate(() => {
        throw new Error("the model worker thread was crashed on purpose (a test's crash())")
      })
      return
    case "close":
      closing = true
      for (const id of accepted) cancelled.add(id)
      queue = queue.then(() => loader.close()).finally(() => process.exit(0))
      return
    default:
      if (closing) return
      accepted.add(message.id)
      queue = queue.then(() => answer(message))
  }
})

// Built before the caller sends work, so a bad config or a missing onnxruntime fails `create` itself.
loader.runtime.then((runtime) => runtime.runtime()).then(
  () => post({ type: "ready" }),
  (error: unknown) => {
    post({ type: "failed", message: messageOf(error) })
    port.close()
  }
)
