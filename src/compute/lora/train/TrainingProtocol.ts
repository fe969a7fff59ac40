/** The messages between a training thread and its host. */
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
}

export type TrainingMessage =
  | { readonly type: "progress"; readonly progress: TrainingProgress }
  | { readonly type: "checkpoint"; readonly checkpoint: TrainingCheckpoint }
  | { readonly type: "done"; readonly result: TrainingResult }
  | { readonly type: "error"; readonly message: string }
