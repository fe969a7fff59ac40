/**
 * Training an adapter on a user's file, as `edge-net-models adapters train` runs it: the data read and
 * split, the base model measured on the held-out part by ONNX Runtime, training in a worker thread with
 * checkpoints on disk (an interrupted run resumes), and the adapter merged into the model (beside its
 * weights, on an INT8 or 4-bit base) and measured again on the same held-out part.
 *
 * The figure is the held-out next-token loss (nats per token) for a language model, and for a classifier
 * the held-out accuracy of the adapter with its head against a linear probe on the frozen model (the
 * probe also starts the head, so training begins from the baseline).
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { readModel } from "../../onnx/OnnxModel.js"
import { createSession } from "../../optimize/Runner.js"
import type { Tokenizer } from "../../tokenizer/Tokenizer.js"
import type { LoraWeights } from "../Adapter.js"
import { loraTargets } from "../GraphLora.js"
import { loadCheckpoint, removeCheckpoint, saveCheckpoint } from "./CheckpointFile.js"
import type { ClassifierHead } from "./ClassifierHead.js"
import { fitLinearProbe } from "./ClassifierHead.js"
import { accuracy, adaptedSession, heldOutLoss, pooledFeatures } from "./Evaluate.js"
import type { MicroLoRAConfig } from "./TrainingConfig.js"
import { resolveConfig } from "./TrainingConfig.js"
import type { TrainingData, TrainingDataOptions, TrainingTask } from "./TrainingData.js"
import { matchTargetModules, taskForFile, trainingData } from "./TrainingData.js"
import type { TrainingProgress, TrainingResult } from "./TrainingLoop.js"
import { trainInWorker } from "./TrainInWorker.js"

export interface FileTrainingRequest {
  readonly modelFile: string
  readonly tokenizer: Tokenizer
  readonly dataFile: string
  /** Default: classification for `.jsonl`, a causal LM otherwise. */
  readonly task?: TrainingTask | undefined
  readonly config: MicroLoRAConfig
  /** PEFT-style names (`c_attn`, `blocks.0.attn.c_proj`): every module whose path ends with one. */
  readonly targetNames?: ReadonlyArray<string> | undefined
  readonly data?: TrainingDataOptions | undefined
  /** Where checkpoints go (removed when training finishes); none when absent. */
  readonly checkpointDirectory?: string | undefined
  /** Factors to start from (a federated round's base adapter), with the config's rank, alpha and modules. */
  readonly startWeights?: LoraWeights | undefined
  readonly onProgress?: ((progress: TrainingProgress) => void) | undefined
  readonly onPhase?: ((phase: "baseline" | "resume" | "train" | "evaluate", detail?: number) => void) | undefined
  readonly signal?: AbortSignal | undefined
}

/** `FileTrainingRequest` with the model and the data in memory (as a service receives them). */
export interface DataTrainingRequest extends Omit<FileTrainingRequest, "modelFile" | "dataFile"> {
  readonly modelBytes: Uint8Array
  readonly content: string
  /** The data's name (its file name): the extension picks the task when none is given, and errors name it. */
  readonly dataName: string
}

export interface FileTrainingOutcome {
  readonly task: TrainingTask
  readonly labels?: ReadonlyArray<string>
  readonly trainSamples: number
  readonly heldOutSamples: number
  readonly baseModelDigest: string
  readonly metric: "heldOutLoss" | "heldOutAccuracy"
  /** The base model's figure (the linear probe's, for a classifier) and the adapter's, on held-out data. */
  readonly before: number
  readonly after: number
  readonly result: TrainingResult
  /** The step a checkpoint resumed from, when one did. */
  readonly resumedFrom?: number
}

const sha256 = (bytes: Uint8Array | string) => crypto.createHash("sha256").update(bytes).digest("hex")

/** A digest of starting factors, so that a checkpoint from another start is not resumed. */
const startDigest = (weights: LoraWeights) => {
  const hash = crypto.createHash("sha256").update(`${weights.rank}/${weights.alpha}`)
  for (const [name, module] of Object.entries(weights.modules).sort(([a], [b]) => a.localeCompare(b))) {
    hash.update(name).update(new Uint8Array(module.A.buffer, module.A.byteOffset, module.A.byteLength))
    hash.update(new Uint8Array(module.B.buffer, module.B.byteOffset, module.B.byteLength))
  }
  return hash.digest("hex")
}

const labelsOf = (samples: ReadonlyArray<{ readonly label: number }>) => samples.map((sample) => sample.label)

export const trainOnFile = (request: FileTrainingRequest): Promise<FileTrainingOutcome> => {
  const { dataFile, modelFile, ...rest } = request
  return trainOnData({
    ...rest,
    modelBytes: new Uint8Array(fs.readFileSync(modelFile)),
    content: fs.readFileSync(dataFile, "utf8"),
    dataName: dataFile
  })
}

export const trainOnData = async (request: DataTrainingRequest): Promise<FileTrainingOutcome> => {
  const { content, modelBytes } = request
  const model = readModel(modelBytes)
  const task = request.task ?? taskForFile(request.dataName)
  const targetModules = request.targetNames === undefined
    ? request.config.targetModules
    : matchTargetModules(loraTargets(model).map((target) => target.module), request.targetNames)
  const config: MicroLoRAConfig = { ...request.config, ...(targetModules === undefined ? {} : { targetModules }) }
  // Bad options fail here, before any data is read or measured.
  const resolved = resolveConfig(model, config)
  const separator = request.tokenizer.specialIds.eos
  const data: TrainingData = trainingData(content, request.dataName, task, request.tokenizer, {
    separator,
    ...request.data
  })
  const baseModelDigest = sha256(modelBytes)
  const fingerprint = sha256(
    JSON.stringify({
      baseModelDigest,
      data: sha256(content),
      task,
      config: resolved,
      options: request.data ?? {},
      ...(request.startWeights === undefined ? {} : { start: startDigest(request.startWeights) })
    })
  )
  const checkpoint = request.checkpointDirectory === undefined
    ? undefined
    : loadCheckpoint(request.checkpointDirectory, fingerprint)

  request.onPhase?.("baseline")
  const base = await createSession(modelBytes)
  let before: number
  let probe: ClassifierHead | undefined
  if (data.task === "causal-lm") {
    before = await heldOutLoss(base, model, data.heldOut)
  } else {
    const trainFeatures = await pooledFeatures(base, model, data.train)
    probe = fitLinearProbe(trainFeatures, labelsOf(data.train), data.labels.length, { epochs: 500, learningRate: 1e-2 })
    before = accuracy(probe, await pooledFeatures(base, model, data.heldOut), labelsOf(data.heldOut))
  }
  await base.release()

  if (checkpoint !== undefined) request.onPhase?.("resume", checkpoint.step)
  request.onPhase?.("train")
  const start = checkpoint !== undefined
    ? {
      weights: checkpoint.weights,
      optimizer: checkpoint.optimizer,
      ...(checkpoint.head === undefined ? {} : { head: checkpoint.head })
    }
    : probe === undefined && request.startWeights === undefined
    ? undefined
    : {
      ...(probe === undefined ? {} : { head: probe }),
      ...(request.startWeights === undefined ? {} : { weights: request.startWeights })
    }
  const directory = request.checkpointDirectory
  const result = await trainInWorker(
    {
      modelBytes,
      config,
      objective: data.task === "causal-lm"
        ? { kind: "causal-lm" }
        : { kind: "classification", classes: data.labels.length },
      samples: data.train,
      ...(start === undefined ? {} : { start })
    },
    {
      onProgress: request.onProgress,
      onCheckpoint: directory === undefined ? undefined : (taken) => saveCheckpoint(directory, fingerprint, taken)
    },
    request.signal
  )

  request.onPhase?.("evaluate")
  const adapted = await adaptedSession(model, result.weights)
  const after = data.task === "causal-lm"
    ? await heldOutLoss(adapted, model, data.heldOut)
    : accuracy(result.head!, await pooledFeatures(adapted, model, data.heldOut), labelsOf(data.heldOut))
  await adapted.session.release()
  if (directory !== undefined) removeCheckpoint(directory)
  return {
    task,
    ...(data.task === "classification" ? { labels: data.labels } : {}),
    trainSamples: data.train.length,
    heldOutSamples: data.heldOut.length,
    baseModelDigest,
    metric: data.task === "causal-lm" ? "heldOutLoss" : "heldOutAccuracy",
    before,
    after,
    result,
    ...(checkpoint === undefined ? {} : { resumedFrom: checkpoint.step })
  }
}
