/**
 * An InferenceSession run in a module Web Worker (InferenceWorker.ts): the same calls, answered off
 * the page's thread. The model's bytes are copied to the worker once, when it opens.
 */
import {
  type EmbedConfig,
  type GenerateConfig,
  InferenceSessionError,
  type SessionOptions
} from "./InferenceSession.js"
import type { InferenceReply, InferenceRequest } from "./InferenceWorkerProtocol.js"
import type { LoadedModel } from "./ModelLoader.js"
import { defaultOrtBase } from "./Ort.js"

/** Where the worker's script is; default `sdk-inference-worker.js` beside the SDK. */
export interface WorkerSessionOptions extends SessionOptions {
  readonly workerUrl?: string | undefined
}

interface Pending {
  readonly resolve: (reply: InferenceReply) => void
  readonly reject: (error: Error) => void
}

/** A model open in a Web Worker. */
export class WorkerSession {
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private disposed = false

  private constructor(
    private readonly worker: Worker,
    /** The runtime it runs on. */
    readonly backend: "wasm" | "webgpu",
    /** `encoder` (embeddings) or `decoder` (generation). */
    readonly kind: "encoder" | "decoder",
    /** The model's id and version. */
    readonly model: string
  ) {
    worker.onmessage = (event: MessageEvent<InferenceReply>) => this.settle(event.data)
    worker.onerror = (event) => this.failAll(`the inference worker failed: ${event.message}`)
  }

  /** Starts a worker and opens the model in it. */
  static create(model: LoadedModel, options: WorkerSessionOptions = {}): Promise<WorkerSession> {
    const workerUrl = options.workerUrl ?? new URL("./sdk-inference-worker.js", import.meta.url).href
    const worker = new Worker(workerUrl, { type: "module" })
    const { workerUrl: _, ...sessionOptions } = options
    // The worker resolves relative paths against its own URL: give it the SDK's ORT folder in full.
    const request: InferenceRequest = {
      type: "open",
      model,
      options: { ...sessionOptions, ortBase: options.ortBase ?? defaultOrtBase(import.meta.url) }
    }
    return new Promise((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<InferenceReply>) => {
        const reply = event.data
        if (reply.type === "opened") {
          resolve(new WorkerSession(worker, reply.backend, reply.kind, `${model.id}@${model.version}`))
        } else {
          worker.terminate()
          reject(
            new InferenceSessionError(reply.type === "failed" ? reply.message : "the worker did not open the model")
          )
        }
      }
      worker.onerror = (event) => {
        worker.terminate()
        reject(new InferenceSessionError(`the inference worker failed: ${event.message}`))
      }
      worker.postMessage(request)
    })
  }

  /** L2-normalized sentence embeddings of the texts, in their order (an encoder only). */
  async embed(texts: ReadonlyArray<string>, config: EmbedConfig = {}): Promise<Array<Float32Array>> {
    const reply = await this.call((id) => ({ type: "embed", id, texts: [...texts], config }))
    if (reply.type !== "embedded") throw new InferenceSessionError(`unexpected reply ${reply.type}`)
    return reply.vectors
  }

  /** Text generated after the prompt (a decoder only); greedy unless a temperature is given. */
  async generate(prompt: string, config: GenerateConfig = {}): Promise<string> {
    const reply = await this.call((id) => ({ type: "generate", id, prompt, config }))
    if (reply.type !== "generated") throw new InferenceSessionError(`unexpected reply ${reply.type}`)
    return reply.text
  }

  /** Ends the worker; calls in flight fail and the session refuses work afterwards. */
  dispose(): Promise<void> {
    this.disposed = true
    this.worker.terminate()
    this.failAll(`the session on ${this.model} was disposed`)
    return Promise.resolve()
  }

  private call(request: (id: number) => InferenceRequest): Promise<InferenceReply> {
    if (this.disposed) return Promise.reject(new InferenceSessionError(`the session on ${this.model} was disposed`))
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage(request(id))
    })
  }

  private settle(reply: InferenceReply) {
    if (reply.type === "opened") return
    const id = reply.id
    if (id === undefined) return this.failAll(reply.type === "failed" ? reply.message : "the worker failed")
    const waiting = this.pending.get(id)
    if (waiting === undefined) return
    this.pending.delete(id)
    if (reply.type === "failed") waiting.reject(new InferenceSessionError(reply.message))
    else waiting.resolve(reply)
  }

  private failAll(message: string) {
    for (const waiting of this.pending.values()) waiting.reject(new InferenceSessionError(message))
    this.pending.clear()
  }
}
