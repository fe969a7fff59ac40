/**
 * Inference on a worker thread (seed section 7): the Promise facade's loader and sessions run in a
 * thread of their own (ModelWorkerThread.ts), so the caller's event loop stays free while a model runs.
 *
 * ```js
 * import { ModelWorker } from "edge-net/promise"
 * const worker = await ModelWorker.create({ memory: { maxModels: 2 } })
 * await worker.load("tiny-lm")
 * worker.onToken((piece) => process.stdout.write(piece))
 * await worker.generate("Once upon a time", { maxTokens: 20 })
 * for await (const piece of worker.stream("The sea")) process.stdout.write(piece)
 * await worker.terminate()
 * ```
 *
 * The thread runs requests one at a time, in the order they were made. Errors reject with the thread's
 * error in one line, the text the in-process facade rejects with. Should the thread die (it threw an
 * uncaught error, or ran out of memory), the requests it held reject, a new thread is started and the
 * models loaded so far are loaded again; the requests are not retried, since one of them may be what
 * killed the thread, and a generation's pieces may already have been delivered.
 *
 * @module
 */
import type { Worker } from "node:worker_threads"
import type { ChatMessage, GenerationEvent } from "../compute/inference/Inference.js"
import { moduleWorker } from "../node/ModuleWorker.js"
import type { GenerateConfig } from "./InferenceSession.js"
import type { LoadProgress } from "./ModelLoader.js"
import {
  type FromWorker,
  type ModelChoice,
  type ModelWorkerData,
  ModelWorkerError,
  type ServedEmbeddings,
  type ServedInput,
  type ServedModel,
  type ToWorker,
  type WorkerAnswers,
  type WorkerModel,
  type WorkerRequestBody,
  type WorkerSessionOptions,
  type WorkerValue
} from "./ModelWorkerProtocol.js"
import type { ModelLoaderOptions } from "./Promise.js"

export { ModelWorkerError } from "./ModelWorkerProtocol.js"
export type {
  ModelChoice,
  ServedEmbeddings,
  ServedInput,
  ServedModel,
  WorkerModel,
  WorkerRefusal
} from "./ModelWorkerProtocol.js"

/** The Promise ModelLoader's options: each worker thread opens its own loader with them. */
export type ModelWorkerOptions = ModelLoaderOptions

/** Generation settings, and which loaded model runs them. */
export type WorkerGenerateConfig = GenerateConfig & ModelChoice

export interface WorkerLoadOptions extends WorkerSessionOptions {
  /** Called in the caller's thread as the model downloads and opens. */
  readonly onProgress?: ((progress: LoadProgress) => void) | undefined
}

/** A worker's counters, for diagnostics (and to see a pool spread its requests). */
export interface WorkerStats {
  /** The live thread's id; undefined while none runs (before a restart, after terminate). */
  readonly threadId: number | undefined
  /** Requests sent to this worker since it was created (loads included). */
  readonly requests: number
  /** Requests sent and not yet answered. */
  readonly outstanding: number
  /** Threads started again after one died. */
  readonly restarts: number
}

interface Pending {
  readonly type: WorkerRequestBody["type"]
  readonly resolve: (value: WorkerValue) => void
  readonly reject: (error: ModelWorkerError) => void
  readonly onPiece?: ((text: string) => void) | undefined
  readonly onProgress?: ((progress: LoadProgress) => void) | undefined
}

interface Thread {
  readonly worker: Worker
  /** The requests this thread holds: answered by it, or rejected when it dies. */
  readonly pending: Map<number, Pending>
  /** Set by an uncaught error, just before the thread exits. */
  failure: Error | undefined
  /** Its runtime built and its models loaded: when such a thread dies, another replaces it at once. */
  up: boolean
  readonly exited: Promise<void>
  /** Why it takes no more requests (closing or exited), once it does not. */
  gone: string | undefined
}

const configOf = ({ model: _, ...config }: WorkerGenerateConfig = {}): GenerateConfig => config

/** Models on a worker thread, with the Promise facade's methods. */
export class ModelWorker {
  /** The thread requests go to, once it is up. */
  private thread: Promise<Thread> | undefined
  /** The thread started last, up or still starting. */
  private current: Thread | undefined
  /** Loads to repeat on a new thread, in order (by reference). */
  private readonly models = new Map<string, WorkerSessionOptions>()
  private readonly listeners = new Set<(piece: string) => void>()
  private nextId = 0
  private requests = 0
  private outstandingCount = 0
  private restarts = 0
  private threadId: number | undefined
  private terminated = false

  private constructor(private readonly options: ModelWorkerOptions) {}

  /** Starts the thread and its runtime; rejects when the loader's options cannot be used (a bad config file). */
  static async create(options: ModelWorkerOptions = {}): Promise<ModelWorker> {
    const worker = new ModelWorker(options)
    await worker.live()
    return worker
  }

  /** Opens a model in the thread (the Promise facade's `load`); later requests may name it by `reference`. */
  async load(reference: string, options: WorkerLoadOptions = {}): Promise<WorkerModel> {
    const { onProgress, ...crossing } = options
    const model = await this.request({ type: "load", reference, options: crossing }, { onProgress })
    this.models.delete(reference)
    this.models.set(reference, crossing)
    return model
  }

  /** Closes a model loaded by `reference`. */
  async unload(reference: string): Promise<void> {
    this.models.delete(reference)
    await this.request({ type: "unload", reference })
  }

  /** The models a new thread would load again, in order. */
  get loaded(): ReadonlyArray<{ readonly reference: string; readonly options: WorkerSessionOptions }> {
    return [...this.models].map(([reference, options]) => ({ reference, options }))
  }

  generate(prompt: string, config: WorkerGenerateConfig = {}): Promise<string> {
    return this.request({ type: "generate", model: config.model, prompt, config: configOf(config), stream: false })
  }

  /** The text in pieces, sent by the thread as each is decoded; leaving the loop early stops the generation. */
  stream(prompt: string, config: WorkerGenerateConfig = {}): AsyncIterable<string> {
    return this.pieces({ type: "generate", model: config.model, prompt, config: configOf(config), stream: true })
  }

  chat(messages: ReadonlyArray<ChatMessage>, config: WorkerGenerateConfig = {}): Promise<string> {
    return this.request({ type: "chat", model: config.model, messages, config: configOf(config), stream: false })
  }

  chatStream(messages: ReadonlyArray<ChatMessage>, config: WorkerGenerateConfig = {}): AsyncIterable<string> {
    return this.pieces({ type: "chat", model: config.model, messages, config: configOf(config), stream: true })
  }

  /** Several prompts, generated one after another by the thread; their texts in order. */
  async batch(prompts: ReadonlyArray<string>, config: WorkerGenerateConfig = {}): Promise<Array<string>> {
    const texts = await this.request({ type: "batch", model: config.model, prompts, config: configOf(config) })
    return [...texts]
  }

  async embed(text: string, choice: ModelChoice = {}): Promise<Float32Array> {
    return (await this.embedBatch([text], choice))[0]!
  }

  /** One vector per text; the thread's buffers are moved to the caller, not copied. */
  async embedBatch(texts: ReadonlyArray<string>, choice: ModelChoice = {}): Promise<Array<Float32Array>> {
    const vectors = await this.request({ type: "embed", model: choice.model, texts })
    return [...vectors]
  }

  /**
   * Embeds texts on a model named by its manifest (see ServedModel: how a node serves its registry's
   * models), with each text's token count.
   */
  serveEmbed(served: ServedModel, texts: ReadonlyArray<string>): Promise<ServedEmbeddings> {
    return this.request({ type: "serveEmbed", served, texts })
  }

  /**
   * A generation on a model named by its manifest, as events: its pieces as the thread decodes them
   * (none unless `stream`: a whole reply needs only the result), then the whole result (finish reason,
   * token counts). Leaving the loop early stops it.
   */
  async *serveEvents(
    served: ServedModel,
    input: ServedInput,
    config: GenerateConfig = {},
    stream = true
  ): AsyncIterable<GenerationEvent> {
    let result: GenerationEvent | undefined
    for await (
      const piece of this.pieces({ type: "serveGenerate", served, input, config, stream }, (value) => {
        // The thread answers serveGenerate with the result (ModelWorkerThread.serveGenerate).
        const done = value as WorkerAnswers["serveGenerate"]
        result = done === null ? undefined : { _tag: "Done", result: done }
      })
    ) {
      yield { _tag: "Piece", text: piece }
    }
    if (result !== undefined) yield result
  }

  /**
   * Calls `listener` with each piece of every generation this worker runs, streamed or not, as the
   * thread decodes it; returns the function that stops it.
   */
  onToken(listener: (piece: string) => void): () => void {
    this.listeners.add(listener)
    if (this.listeners.size === 1) this.control({ type: "listen", listening: true })
    return () => {
      if (this.listeners.delete(listener) && this.listeners.size === 0) {
        this.control({ type: "listen", listening: false })
      }
    }
  }

  stats(): WorkerStats {
    return {
      threadId: this.threadId,
      requests: this.requests,
      outstanding: this.outstandingCount,
      restarts: this.restarts
    }
  }

  /** Requests sent and not yet answered: a pool sends the next one to the worker with fewest. */
  get outstanding(): number {
    return this.outstandingCount
  }

  /**
   * Stops the thread; its requests and every later call reject at once. The thread is asked to close
   * (it stops at the end of the model run under way, closes its models and exits) rather than killed:
   * onnxruntime-node runs a model synchronously on the thread, and killing it mid-run aborts the whole
   * process (its binding throws a C++ exception into a torn-down JS context).
   */
  async terminate(): Promise<void> {
    if (this.terminated) return
    this.terminated = true
    const current = this.current
    this.thread = undefined
    this.current = undefined
    this.threadId = undefined
    if (current === undefined) return
    this.rejectAll(current, "the model worker was terminated")
    await this.stop(current)
  }

  /**
   * @internal Tests only: the thread throws an uncaught error, as a crashing thread would. It does so
   * between two model runs, as any error thrown by JavaScript code on the thread is.
   */
  crash(): void {
    this.control({ type: "crash" })
  }

  /** Posted to the current thread at once (Node queues it until the thread listens). */
  private control(message: ToWorker) {
    this.current?.worker.postMessage(message)
  }

  /** The live thread: started now if there is none (the first call, or after one failed to start). */
  private live(): Promise<Thread> {
    if (this.terminated) return Promise.reject(new ModelWorkerError({ reason: "the model worker was terminated" }))
    if (this.thread === undefined) {
      const starting = this.start()
      this.thread = starting
      starting.catch(() => {
        if (this.thread === starting) this.thread = undefined
      })
    }
    return this.thread
  }

  /** A new thread, its runtime built and the models loaded so far loaded again. */
  private async start(): Promise<Thread> {
    const worker = moduleWorker(import.meta.url, "./ModelWorkerThread", {
      workerData: { loader: this.options, listening: this.listeners.size > 0 } satisfies ModelWorkerData
    })
    const thread: Thread = {
      worker,
      pending: new Map(),
      failure: undefined,
      up: false,
      gone: undefined,
      exited: new Promise((resolve) => worker.once("exit", () => resolve()))
    }
    this.current = thread
    const online = new Promise<void>((resolve, reject) => {
      worker.on("message", (message: FromWorker) => {
        switch (message.type) {
          case "ready":
            return resolve()
          case "failed":
            return reject(new ModelWorkerError({ reason: message.message }))
          default:
            return this.receive(thread, message)
        }
      })
      worker.on("error", (error) => (thread.failure = error))
      worker.once("exit", (code) => {
        const why = this.terminated
          ? "the model worker was terminated"
          : `the model worker's thread exited (code ${code}${
            thread.failure === undefined ? "" : `: ${thread.failure.message}`
          })`
        reject(new ModelWorkerError({ reason: why }))
        this.died(thread, why)
      })
    })
    try {
      await online
      this.threadId = worker.threadId
      for (const [reference, options] of this.models) await this.send(thread, { type: "load", reference, options }, {})
    } catch (error) {
      void this.stop(thread)
      throw error
    }
    thread.up = true
    return thread
  }

  /**
   * Rejects what the thread held. A thread that had come up (its models loaded) is replaced at once, so
   * that the next is warm when requests come; one that died while starting is started again only by the
   * next request, so a setup that always fails cannot loop.
   */
  private died(thread: Thread, why: string) {
    const restarting = thread.up && !this.terminated && this.current === thread
    thread.gone ??= why
    this.rejectAll(thread, why, restarting ? "; restarting it" : "")
    if (this.current !== thread) return
    this.current = undefined
    this.threadId = undefined
    this.thread = undefined
    if (restarting) {
      this.restarts++
      void this.live().catch(() => undefined)
    }
  }

  private rejectAll(thread: Thread, why: string, after = "") {
    for (const [, pending] of thread.pending) {
      pending.reject(new ModelWorkerError({ reason: `${why} before answering ${pending.type}${after}` }))
    }
    thread.pending.clear()
  }

  /** Asks the thread to close, and kills it only if it has not exited after `graceMs`. */
  private async stop(thread: Thread, graceMs = 10_000) {
    thread.gone ??= "the model worker was terminated"
    thread.worker.postMessage({ type: "close" } satisfies ToWorker)
    const timer = setTimeout(() => void thread.worker.terminate(), graceMs)
    await thread.exited
    clearTimeout(timer)
  }

  private receive(thread: Thread, message: Exclude<FromWorker, { type: "ready" | "failed" }>) {
    const pending = thread.pending.get(message.id)
    if (pending === undefined) return
    switch (message.type) {
      case "piece":
        pending.onPiece?.(message.text)
        for (const listener of this.listeners) listener(message.text)
        return
      case "progress":
        pending.onProgress?.(message.progress)
        return
      case "done":
        thread.pending.delete(message.id)
        return pending.resolve(message.value)
      case "error":
        thread.pending.delete(message.id)
        return pending.reject(new ModelWorkerError({ reason: message.message, refusal: message.refusal }))
    }
  }

  private send(
    thread: Thread,
    body: WorkerRequestBody,
    hooks: Pick<Pending, "onPiece" | "onProgress">,
    id = this.nextId++
  ): Promise<WorkerValue> {
    return new Promise((resolve, reject) => {
      if (thread.gone !== undefined) return reject(new ModelWorkerError({ reason: thread.gone }))
      thread.pending.set(id, { type: body.type, resolve, reject, ...hooks })
      thread.worker.postMessage({ ...body, id } satisfies ToWorker)
    })
  }

  /** Sends a request once the thread is up (and its models loaded again after a restart). */
  private async request<K extends keyof WorkerAnswers>(
    body: Extract<WorkerRequestBody, { readonly type: K }>,
    hooks: Pick<Pending, "onPiece" | "onProgress"> = {},
    id = this.nextId++
  ): Promise<WorkerAnswers[K]> {
    this.requests++
    this.outstandingCount++
    try {
      // The thread answers each type of request with that type's value (ModelWorkerThread.handle).
      return (await this.send(await this.live(), body, hooks, id)) as WorkerAnswers[K]
    } finally {
      this.outstandingCount--
    }
  }

  private async *pieces(body: WorkerRequestBody, answered?: (value: WorkerValue) => void): AsyncIterable<string> {
    const id = this.nextId++
    const queue: Array<string> = []
    let wake: (() => void) | undefined
    let outcome: { readonly error: ModelWorkerError | undefined } | undefined
    this.request(body, {
      onPiece: (text) => {
        queue.push(text)
        wake?.()
      }
    }, id).then(
      (value) => {
        answered?.(value)
        outcome = { error: undefined }
      },
      (error: ModelWorkerError) => (outcome = { error })
    ).finally(() => wake?.())
    try {
      let next = 0
      while (true) {
        if (next < queue.length) {
          yield queue[next++]!
        } else if (outcome !== undefined) {
          if (outcome.error !== undefined) throw outcome.error
          return
        } else {
          await new Promise<void>((resolve) => (wake = resolve))
          wake = undefined
        }
      }
    } finally {
      if (outcome === undefined) this.control({ type: "cancel", id })
    }
  }
}
