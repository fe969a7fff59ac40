/**
 * Entry point of a training thread: one request in, progress and checkpoints out while it trains, then
 * the result. Runs as a Node worker thread (TrainInWorker.ts) or as a browser Web Worker: the
 * training code itself touches no Node API.
 */
import { readModel } from "../../onnx/OnnxModel.js"
import { SeededRandom } from "../Adapter.js"
import { LoraTrainer } from "./LoraTrainer.js"
import { TrainingError } from "./TrainingConfig.js"
import type { ShardHelper } from "./TrainingLoop.js"
import { quadraticPenalty, trainAdapter } from "./TrainingLoop.js"
import type {
  HelperLink,
  HelperStart,
  ShardReply,
  ShardRequest,
  TrainingMessage,
  TrainingRequest
} from "./TrainingProtocol.js"

// Node's worker_threads through process.getBuiltinModule, so that nothing here imports a Node module:
// a bundler makes this file a browser worker as it is.
type Threads = typeof import("node:worker_threads")
const nodeProcess = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process
const threads = nodeProcess?.getBuiltinModule?.("node:worker_threads") as Threads | undefined

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error))

/** The training thread's side of the helper: post a shard, block on the shared flag, take the reply. */
const shardHelper = (link: HelperLink, threads: Threads): ShardHelper => {
  // The link's port is a worker_threads MessagePort (TrainInWorker.ts makes it); its type only describes it.
  const port = link.port as InstanceType<Threads["MessagePort"]>
  const flag = new Int32Array(link.signal)
  return {
    start: (request) => link.port.postMessage(request),
    finish: () => {
      for (;;) {
        Atomics.wait(flag, 0, 0, 1000)
        const received = threads.receiveMessageOnPort(port)
        if (received === undefined) continue
        Atomics.store(flag, 0, 0)
        const reply = received.message as ShardReply
        if (reply.type === "error") throw new TrainingError(reply.message)
        return { ...reply, grads: new Map(Object.entries(reply.grads)) }
      }
    }
  }
}

/** The helper thread: a trainer of its own, which computes the shards it is sent at the parameters sent with them. */
const help = (start: HelperStart) => {
  const flag = new Int32Array(start.link.signal)
  const reply = (message: ShardReply) => {
    start.link.port.postMessage(message)
    Atomics.store(flag, 0, 1)
    Atomics.notify(flag, 0)
  }
  // Made now, while the training thread makes its own, rather than when the first shard comes.
  let trainer: LoraTrainer | string
  try {
    trainer = new LoraTrainer(readModel(start.modelBytes), start.config, start.objective)
  } catch (error) {
    trainer = messageOf(error)
  }
  start.link.port.on("message", (request: ShardRequest) => {
    try {
      if (typeof trainer === "string") throw new TrainingError(trainer)
      const parameters = trainer.parameters()
      for (const [name, value] of Object.entries(request.parameters)) parameters.get(name)?.set(value)
      const dropout = new SeededRandom(request.seed)
      const result = trainer.lossAndGrads(request.samples, request.gradScale, () => dropout.uniform(), request.weights)
      reply({ type: "shard", ...result, grads: Object.fromEntries(result.grads) })
    } catch (error) {
      reply({ type: "error", message: messageOf(error) })
    }
  })
}

const handle = (request: TrainingRequest, post: (message: TrainingMessage) => void) => {
  try {
    const model = readModel(request.modelBytes)
    const trainer = new LoraTrainer(model, request.config, request.objective, request.start)
    const helper = request.helper === undefined || threads === undefined
      ? undefined
      : shardHelper(request.helper, threads)
    const result = trainAdapter(trainer, request.samples, {
      onProgress: (progress) => post({ type: "progress", progress }),
      onCheckpoint: (checkpoint) => post({ type: "checkpoint", checkpoint }),
      ...(request.penalty === undefined ? {} : { regularizer: quadraticPenalty(request.penalty) }),
      ...(request.frozen === undefined ? {} : { frozen: new Set(request.frozen) }),
      helper
    })
    post({ type: "done", result })
  } catch (error) {
    post({ type: "error", message: messageOf(error) })
  }
}

const port = threads?.parentPort
if (port) {
  port.once("message", (request: TrainingRequest | HelperStart) => {
    if ("role" in request) help(request)
    else handle(request, (message) => port.postMessage(message))
  })
} else {
  // eslint-disable-next-line no-restricted-syntax -- a Web Worker's global scope: lib.dom is not in this project's types (the worker also runs in browsers)
  const scope = globalThis as unknown as {
    onmessage: ((event: { data: TrainingRequest }) => void) | null
    postMessage: (message: TrainingMessage) => void
  }
  scope.onmessage = (event) => handle(event.data, (message) => scope.postMessage(message))
}
