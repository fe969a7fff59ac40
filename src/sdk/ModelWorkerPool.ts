/**
 * Several model workers on the same models (seed section 7): each request goes to the worker with the
 * fewest requests outstanding (ties in turn), so a pool of N runs N requests at once, one per thread.
 *
 * ```js
 * import { ModelWorkerPool } from "edge-net/promise"
 * const pool = await ModelWorkerPool.create({ size: 2 })
 * await pool.load("tiny-encoder")
 * const vectors = await Promise.all(texts.map((text) => pool.embed(text)))
 * await pool.terminate()
 * ```
 *
 * A worker whose thread dies is restarted with its models, as ModelWorker does; the requests it held
 * reject with one line and the others go on (see ModelWorker.ts for why they are not retried).
 *
 * @module
 */
import { availableParallelism } from "node:os"
import type { ChatMessage, GenerationEvent } from "../compute/inference/Inference.js"
import type { GenerateConfig } from "./InferenceSession.js"
import {
  type ModelChoice,
  ModelWorker,
  type ModelWorkerOptions,
  type ServedEmbeddings,
  type ServedInput,
  type ServedModel,
  type WorkerGenerateConfig,
  type WorkerLoadOptions,
  type WorkerModel,
  type WorkerStats
} from "./ModelWorker.js"

export interface ModelWorkerPoolOptions extends ModelWorkerOptions {
  /** Worker threads (default 2). Each model is open once per worker. */
  readonly size?: number | undefined
  /**
   * Threads each worker's model runs may use (default: the cores shared among the workers, at least
   * one), so that the workers' runs together do not ask for more threads than there are cores.
   */
  readonly threads?: number | undefined
}

/** A pool of model workers with one worker's methods. */
export class ModelWorkerPool {
  private turn = 0

  private constructor(private readonly workers: ReadonlyArray<ModelWorker>) {}

  /** Starts every worker; rejects (and stops those started) when one cannot start. */
  static async create(options: ModelWorkerPoolOptions = {}): Promise<ModelWorkerPool> {
    const { size = 2, ...loader } = options
    const workers = Math.max(1, Math.floor(size))
    const threads = options.threads ?? Math.max(1, Math.floor(availableParallelism() / workers))
    const started = await Promise.allSettled(
      Array.from({ length: workers }, () => ModelWorker.create({ ...loader, threads }))
    )
    const up = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []))
    const failed = started.find((result) => result.status === "rejected")
    if (failed !== undefined) {
      await Promise.all(up.map((worker) => worker.terminate()))
      throw failed.reason
    }
    return new ModelWorkerPool(up)
  }

  get size(): number {
    return this.workers.length
  }

  /** Opens a model in every worker. */
  async load(reference: string, options: WorkerLoadOptions = {}): Promise<WorkerModel> {
    const [model] = await Promise.all(this.workers.map((worker) => worker.load(reference, options)))
    return model!
  }

  async unload(reference: string): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.unload(reference)))
  }

  generate(prompt: string, config?: WorkerGenerateConfig): Promise<string> {
    return this.next().generate(prompt, config)
  }

  stream(prompt: string, config?: WorkerGenerateConfig): AsyncIterable<string> {
    return this.lazily((worker) => worker.stream(prompt, config))
  }

  chat(messages: ReadonlyArray<ChatMessage>, config?: WorkerGenerateConfig): Promise<string> {
    return this.next().chat(messages, config)
  }

  chatStream(messages: ReadonlyArray<ChatMessage>, config?: WorkerGenerateConfig): AsyncIterable<string> {
    return this.lazily((worker) => worker.chatStream(messages, config))
  }

  /** Each prompt is a request of its own, spread over the workers; the texts in order. */
  batch(prompts: ReadonlyArray<string>, config?: WorkerGenerateConfig): Promise<Array<string>> {
    return Promise.all(prompts.map((prompt) => this.generate(prompt, config)))
  }

  embed(text: string, choice?: ModelChoice): Promise<Float32Array> {
    return this.next().embed(text, choice)
  }

  embedBatch(texts: ReadonlyArray<string>, choice?: ModelChoice): Promise<Array<Float32Array>> {
    return this.next().embedBatch(texts, choice)
  }

  /** ModelWorker.serveEmbed on the least busy worker (each worker opens the model on its first request). */
  serveEmbed(served: ServedModel, texts: ReadonlyArray<string>): Promise<ServedEmbeddings> {
    return this.next().serveEmbed(served, texts)
  }

  /** ModelWorker.serveEvents on the least busy worker when first read. */
  serveEvents(
    served: ServedModel,
    input: ServedInput,
    config?: GenerateConfig,
    stream?: boolean
  ): AsyncIterable<GenerationEvent> {
    return this.lazily((worker) => worker.serveEvents(served, input, config, stream))
  }

  /** Every worker's pieces, as ModelWorker.onToken; returns the function that stops listening. */
  onToken(listener: (piece: string) => void): () => void {
    const stops = this.workers.map((worker) => worker.onToken(listener))
    return () => stops.forEach((stop) => stop())
  }

  /** Per worker: its thread, requests sent, outstanding, restarts. */
  stats(): Array<WorkerStats> {
    return this.workers.map((worker) => worker.stats())
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()))
  }

  /** @internal Tests only: worker `index`'s thread throws an uncaught error. */
  crash(index: number): void {
    this.workers[index]?.crash()
  }

  /** The worker with the fewest requests outstanding; among equals, the one after the last chosen. */
  private next(): ModelWorker {
    let best: ModelWorker | undefined
    for (let i = 0; i < this.workers.length; i++) {
      const worker = this.workers[(this.turn + i) % this.workers.length]!
      if (best === undefined || worker.outstanding < best.outstanding) best = worker
    }
    this.turn = (this.workers.indexOf(best!) + 1) % this.workers.length
    return best!
  }

  /** A stream's worker is chosen when it is first read, as a request is when it is made. */
  private async *lazily<A>(open: (worker: ModelWorker) => AsyncIterable<A>): AsyncIterable<A> {
    yield* open(this.next())
  }
}
