/**
 * Training off the main thread in Node: the request goes to a worker thread (TrainingWorker.ts), its
 * progress and checkpoints come back through the hooks, and the promise settles with the result or
 * with the thread's one-line error. Interrupting (the signal) terminates the thread.
 */
import { availableParallelism } from "node:os"
import { MessageChannel } from "node:worker_threads"
import { moduleWorker } from "../../../node/ModuleWorker.js"
import { TrainingError } from "./TrainingConfig.js"
import type { TrainingHooks, TrainingResult } from "./TrainingLoop.js"
import type { HelperStart, TrainingMessage, TrainingRequest } from "./TrainingProtocol.js"

/**
 * Trains in a worker thread and, with `threads` 2 (the default where the machine has two cores or
 * more), a helper thread that computes half of every micro-batch: data parallelism whose result is the
 * single thread's (TrainingLoop.ts splits every micro-batch the same way, whoever computes it).
 */
export const trainInWorker = (
  request: TrainingRequest,
  hooks: Omit<TrainingHooks, "helper"> = {},
  signal?: AbortSignal,
  threads = Math.min(2, availableParallelism())
): Promise<TrainingResult> =>
  new Promise((resolve, reject) => {
    const worker = moduleWorker(import.meta.url, "./TrainingWorker")
    const helper = threads >= 2 ? startHelper(request) : undefined
    let settled = false
    const finish = (outcome: () => void) => {
      if (settled) return
      settled = true
      signal?.removeEventListener("abort", abort)
      void worker.terminate()
      void helper?.worker.terminate()
      outcome()
    }
    const abort = () => finish(() => reject(new TrainingError("training was interrupted")))
    signal?.addEventListener("abort", abort)
    worker.on("message", (message: TrainingMessage) => {
      switch (message.type) {
        case "progress":
          hooks.onProgress?.(message.progress)
          break
        case "checkpoint":
          hooks.onCheckpoint?.(message.checkpoint)
          break
        case "done":
          finish(() => resolve(message.result))
          break
        case "error":
          finish(() => reject(new TrainingError(message.message)))
      }
    })
    worker.on("error", (error) => finish(() => reject(error)))
    worker.on("exit", (code) =>
      finish(() => reject(new TrainingError(`the training thread exited (code ${code}) before finishing`))))
    helper?.worker.on("error", (error) =>
      finish(() => reject(error)))
    if (helper === undefined) worker.postMessage(request)
    else worker.postMessage({ ...request, helper: helper.link }, [helper.port])
  })

/** The helper thread, started with the run's model and options, and the link the training thread reaches it by. */
const startHelper = (request: TrainingRequest) => {
  const worker = moduleWorker(import.meta.url, "./TrainingWorker")
  const channel = new MessageChannel()
  const signal = new SharedArrayBuffer(4)
  const start: HelperStart = {
    role: "helper",
    modelBytes: request.modelBytes,
    config: request.config,
    objective: request.objective,
    link: { port: channel.port2, signal }
  }
  worker.postMessage(start, [channel.port2])
  return { worker, port: channel.port1, link: { port: channel.port1, signal } }
}
