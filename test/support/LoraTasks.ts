/**
 * The two adapter training tasks of issue 5, shared by the slow tests and `npm run bench -- lora`:
 *
 * - domain adaptation: tiny-lm (trained on State of the Union addresses, Moby-Dick and the Brown
 *   corpus) learns the language of 2002 mailing-list mail (SpamAssassin's ham), judged by the
 *   next-token loss on held-out messages;
 * - spam detection: tiny-encoder (trained on WordNet glosses) with a linear head learns spam from ham,
 *   judged by accuracy on held-out messages against a linear probe on the frozen encoder.
 *
 * Training runs in a worker thread through the TypeScript executor; every figure is measured by ONNX
 * Runtime on the base model and on the adapter merged into it.
 */
import { readFileSync } from "node:fs"
import path from "node:path"
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { mergeAdapter } from "../../src/compute/lora/GraphLora.js"
import type { ClassifierHead } from "../../src/compute/lora/train/ClassifierHead.js"
import { fitLinearProbe } from "../../src/compute/lora/train/ClassifierHead.js"
import { accuracy, heldOutLoss, pooledFeatures } from "../../src/compute/lora/train/Evaluate.js"
import type { CausalLmSample } from "../../src/compute/lora/train/Objectives.js"
import { classificationSamples, languageModelWindows } from "../../src/compute/lora/train/TextData.js"
import type { MicroLoRAConfig } from "../../src/compute/lora/train/TrainingConfig.js"
import type { TrainingProgress } from "../../src/compute/lora/train/TrainingLoop.js"
import { trainInWorker } from "../../src/compute/lora/train/TrainInWorker.js"
import type { OnnxModel } from "../../src/compute/onnx/OnnxModel.js"
import { readModel, writeModel } from "../../src/compute/onnx/OnnxModel.js"
import { createSession } from "../../src/compute/optimize/Runner.js"
import { Tokenizer } from "../../src/compute/tokenizer/Tokenizer.js"
import { everyNth, plainBody, spamAssassin } from "./Corpora.js"

const referenceDirectory = path.resolve(import.meta.dirname, "../../models/reference")

export const referenceModel = (name: "tiny-lm" | "tiny-encoder") => {
  const bytes = new Uint8Array(readFileSync(path.join(referenceDirectory, name, "onnx", "model.onnx")))
  const tokenizer = Tokenizer.fromJson(
    JSON.parse(readFileSync(path.join(referenceDirectory, name, "tokenizer.json"), "utf8"))
  )
  return { bytes, model: readModel(bytes), tokenizer }
}

const mergedSession = (model: OnnxModel, weights: LoraWeights) =>
  createSession(writeModel(mergeAdapter(model, weights)))

export interface DomainAdaptationOptions {
  readonly trainWindows?: number
  readonly heldOutWindows?: number
  readonly windowLength?: number
  readonly config?: Partial<MicroLoRAConfig>
  readonly onProgress?: (progress: TrainingProgress) => void
}

export interface DomainAdaptationResult {
  readonly trainWindows: number
  readonly heldOutWindows: number
  readonly windowLength: number
  readonly baseLoss: number
  readonly adaptedLoss: number
  readonly baseTrainLoss: number
  readonly adaptedTrainLoss: number
  readonly trainMs: number
  readonly steps: number
  readonly weights: LoraWeights
  /** What was trained on and measured with, for a baseline to repeat the run. */
  readonly windows: { readonly train: ReadonlyArray<CausalLmSample>; readonly heldOut: ReadonlyArray<CausalLmSample> }
  readonly config: MicroLoRAConfig
}

export const domainAdaptation = async (options: DomainAdaptationOptions = {}): Promise<DomainAdaptationResult> => {
  const { bytes, model, tokenizer } = referenceModel("tiny-lm")
  const windowLength = options.windowLength ?? 128
  const ham = spamAssassin().filter((email) => !email.spam).map((email) => plainBody(email.body).slice(0, 2000)).filter(
    (text) => text.length > 200
  )
  const separator = 3071
  const train = languageModelWindows(tokenizer, everyNth(ham, 2, 0), windowLength, {
    separator,
    maxWindows: options.trainWindows ?? 100
  })
  const heldOut = languageModelWindows(tokenizer, everyNth(ham, 2, 1), windowLength, {
    separator,
    maxWindows: options.heldOutWindows ?? 40
  })
  const config: MicroLoRAConfig = {
    rank: 4,
    alpha: 8,
    learningRate: 2e-3,
    epochs: 3,
    batchSize: 8,
    warmupSteps: 3,
    schedule: "cosine",
    seed: 7,
    ...options.config
  }
  const base = await createSession(bytes)
  const baseLoss = await heldOutLoss(base, model, heldOut)
  const baseTrainLoss = await heldOutLoss(base, model, train)
  const began = performance.now()
  const result = await trainInWorker({ modelBytes: bytes, config, objective: { kind: "causal-lm" }, samples: train }, {
    onProgress: options.onProgress
  })
  const trainMs = performance.now() - began
  const adapted = await mergedSession(model, result.weights)
  return {
    trainWindows: train.length,
    heldOutWindows: heldOut.length,
    windowLength,
    baseLoss,
    adaptedLoss: await heldOutLoss(adapted, model, heldOut),
    baseTrainLoss,
    adaptedTrainLoss: await heldOutLoss(adapted, model, train),
    trainMs,
    steps: result.steps,
    weights: result.weights,
    windows: { train, heldOut },
    config
  }
}

export interface SpamDetectionOptions {
  readonly perClass?: number
  readonly maxTokens?: number
  readonly config?: Partial<MicroLoRAConfig>
  readonly onProgress?: (progress: TrainingProgress) => void
}

export interface SpamDetectionResult {
  readonly train: number
  readonly test: number
  readonly probeAccuracy: number
  readonly probeTrainAccuracy: number
  readonly adaptedAccuracy: number
  readonly adaptedTrainAccuracy: number
  readonly trainMs: number
  readonly steps: number
  readonly head: ClassifierHead
}

const messageText = (subject: string, body: string) => `${subject}\n${plainBody(body).slice(0, 600)}`

export const spamDetection = async (options: SpamDetectionOptions = {}): Promise<SpamDetectionResult> => {
  const { bytes, model, tokenizer } = referenceModel("tiny-encoder")
  const perClass = options.perClass ?? 200
  const maxTokens = options.maxTokens ?? 64
  const emails = spamAssassin()
  const pick = (spam: boolean, offset: number) =>
    everyNth(emails.filter((email) => email.spam === spam), 2, offset).slice(0, perClass).map((email) => ({
      text: messageText(email.subject, email.body),
      label: spam ? 1 : 0
    }))
  const interleave = <T>(a: ReadonlyArray<T>, b: ReadonlyArray<T>) =>
    a.flatMap((item, index) => (b[index] === undefined ? [item] : [item, b[index]!]))
  const train = classificationSamples(tokenizer, interleave(pick(false, 0), pick(true, 0)), maxTokens)
  const test = classificationSamples(tokenizer, interleave(pick(false, 1), pick(true, 1)), maxTokens)
  const labels = (samples: ReadonlyArray<{ label: number }>) => samples.map((sample) => sample.label)
  const base = await createSession(bytes)
  const trainFeatures = await pooledFeatures(base, model, train)
  const testFeatures = await pooledFeatures(base, model, test)
  const probe = fitLinearProbe(trainFeatures, labels(train), 2, { epochs: 500, learningRate: 1e-2 })
  const config: MicroLoRAConfig = {
    rank: 4,
    alpha: 8,
    learningRate: 1e-3,
    epochs: 2,
    batchSize: 16,
    warmupSteps: 2,
    schedule: "cosine",
    seed: 11,
    ...options.config
  }
  const began = performance.now()
  const result = await trainInWorker(
    {
      modelBytes: bytes,
      config,
      objective: { kind: "classification", classes: 2 },
      samples: train,
      start: { head: probe }
    },
    { onProgress: options.onProgress }
  )
  const trainMs = performance.now() - began
  const adapted = await mergedSession(model, result.weights)
  const head = result.head!
  return {
    train: train.length,
    test: test.length,
    probeAccuracy: accuracy(probe, testFeatures, labels(test)),
    probeTrainAccuracy: accuracy(probe, trainFeatures, labels(train)),
    adaptedAccuracy: accuracy(head, await pooledFeatures(adapted, model, test), labels(test)),
    adaptedTrainAccuracy: accuracy(head, await pooledFeatures(adapted, model, train), labels(train)),
    trainMs,
    steps: result.steps,
    head
  }
}
