/**
 * Entry point of a training thread: one request in, progress and checkpoints out while it trains, then
 * the result. Runs as a Node worker thread (TrainInWorker.ts) or as a browser Web Worker: the
 * training code itself touches no Node API.
 */
import { readModel } from "../../onnx/OnnxModel.js"
import { LoraTrainer } from "./LoraTrainer.js"
import { quadraticPenalty, trainAdapter } from "./TrainingLoop.js"
import type { TrainingMessage, TrainingRequest } from "./TrainingProtocol.js"

const handle = (request: TrainingRequest, post: (message: TrainingMessage) => void) => {
  try {
    const model = readModel(request.modelBytes)
    const trainer = new LoraTrainer(model, request.config, request.objective, request.start)
    const result = trainAdapter(trainer, request.samples, {
      onProgress: (progress) => post({ type: "progress", progress }),
      onCheckpoint: (checkpoint) => post({ type: "checkpoint", checkpoint }),
      ...(request.penalty === undefined ? {} : { regularizer: quadraticPenalty(request.penalty) }),
      ...(request.frozen === undefined ? {} : { frozen: new Set(request.frozen) })
    })
    post({ type: "done", result })
  } catch (error) {
    post({ type: "error", message: error instanceof Error ? error.message : String(error) })
  }
}

// Node's worker_threads through process.getBuiltinModule, so that nothing here imports a Node module:
// a bundler makes this file a browser worker as it is.
type Threads = typeof import("node:worker_threads")
const nodeProcess = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process
const threads = nodeProcess?.getBuiltinModule?.("node:worker_threads") as Threads | undefined
const port = threads?.parentPort
if (port) port.once("message", (request: TrainingRequest) => handle(request, (message) => port.postMessage(message)))
else {
  // eslint-disable-next-line no-restricted-syntax -- a Web Worker's global scope: lib.dom is not in this project's types (the worker also runs in browsers)
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: TrainingRequest }) => void) | null
    postMessage: (message: TrainingMessage) => void
  }
  scope.onmessage = (event) => handle(event.data, (message) => scope.postMessage(message))
}
