/** The messages between a training thread and its host, and between it and its helper thread. */
import type { LoraWeights } from "../Adapter.js"
import type { AdamWState } from "./AdamW.js"
import type { ClassifierHead } from "./ClassifierHead.js"
import type { TrainingCheckpoint } from "./LoraTrainer.js"
import type { Objective, Sample } from "./Objectives.js"
import type { MicroLoRAConfig } from "./TrainingConfig.js"
import type { QuadraticPenalty, TrainingProgress, TrainingResult } from "./TrainingLoop.js"

export interface TrainingRequest {
  /** The base model's ONNX bytes (weights inline). */
  readonly modelBytes: Uint8Array
  readonly config: MicroLoRAConfig
  readonly objective: Objective
  readonly samples: ReadonlyArray<Sample>
  /** Continue from an adapter, a head, or a checkpoint's optimizer state. */
  readonly start?: { readonly weights?: LoraWeights; readonly head?: ClassifierHead; readonly optimizer?: AdamWState }
  /** A proximal (FedProx) or EWC term added to the objective: plain data, as a function cannot cross threads. */
  readonly penalty?: QuadraticPenalty
  /** Parameters kept as they start (FFA-LoRA's shared A). */
  readonly frozen?: ReadonlyArray<string>
  /** A second thread computing half of every micro-batch (TrainInWorker.ts starts it). */
  readonly helper?: HelperLink
}

/**
 * How a training thread reaches its helper: a port for requests and results, and a shared flag the
 * helper raises when a result is posted, so that the training thread, whose loop is synchronous, can
 * block on it (Atomics.wait) and then take the result off the port.
 */
export interface HelperLink {
  readonly port: ShardPort
  readonly signal: SharedArrayBuffer
}

/**
 * A MessageChannel port as the two threads use it: Node's worker_threads MessagePort, described here
 * rather than imported, since this module's types are also compiled for browsers (the dashboard's and
 * the SDK's type-checks), which have no Node types.
 */
export interface ShardPort {
  postMessage(message: unknown): void
  on(event: "message", listener: (message: ShardRequest) => void): unknown
}

/** What the helper thread is started with: the model and the options of the run it helps. */
export interface HelperStart {
  readonly role: "helper"
  readonly modelBytes: Uint8Array
  readonly config: MicroLoRAConfig
  readonly objective: Objective
  readonly link: HelperLink
}

/** One shard: its samples and, as plain arrays, the trainable parameters as they are at this step. */
export interface ShardRequest {
  readonly samples: ReadonlyArray<Sample>
  readonly gradScale: number
  /** Seed of the shard's dropout draws. */
  readonly seed: number
  readonly weights?: ReadonlyArray<number> | undefined
  readonly parameters: Readonly<Record<string, Float32Array>>
}

export type ShardReply =
  | {
    readonly type: "shard"
    readonly total: number
    readonly count: number
    readonly grads: Readonly<Record<string, Float32Array>>
    readonly sampleLosses: Float64Array
  }
  | { readonly type: "error"; readonly message: string }

export type TrainingMessage =
  | { readonly type: "progress"; readonly progress: TrainingProgress }
  | { readonly type: "checkpoint"; readonly checkpoint: TrainingCheckpoint }
  | { readonly type: "done"; readonly result: TrainingResult }
  | { readonly type: "error"; readonly message: string }
