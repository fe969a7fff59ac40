/**
 * Training off the main thread in Node: the request goes to a worker thread (TrainingWorker.ts), its
 * progress and checkpoints come back through the hooks, and the promise settles with the result or
 * with the thread's one-line error. Interrupting (the signal) terminates the thread.
 */
import { moduleWorker } from "../../../node/ModuleWorker.js"
import { TrainingError } from "./TrainingConfig.js"
import type { TrainingHooks, TrainingResult } from "./TrainingLoop.js"
import type { TrainingMessage, TrainingRequest } from "./TrainingProtocol.js"

export const trainInWorker = (
  request: TrainingRequest,
  hooks: TrainingHooks = {},
  signal?: AbortSignal
): Promise<TrainingResult> =>
  new Promise((resolve, reject) => {
    const worker = moduleWorker(import.meta.url, "./TrainingWorker")
    let settled = false
    const finish = (outcome: () => void) => {
      if (settled) return
      settled = true
      signal?.removeEventListener("abort", abort)
      void worker.terminate()
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
    worker.postMessage(request)
  })
