/**
 * The two adapter training tasks of issue 5, shared by the slow tests and `npm run bench -- lora`:
 *
 * - domain adaptation: tiny-lm (trained on State of the Union addresses, Moby-Dick and the Brown
 *   corpus) learns the language of 2002 mailing-list mail (SpamAssassin's ham), judged by the
 *   next-token loss on held-out messages;
 * - spam detection: tiny-encoder (trained on WordNet glosses) with a linear head learns spam from ham,
 *   judged by accuracy on held-out messages against a linear probe on the frozen encoder;
 *
 * and domain adaptation on tiny-lm's 4-bit form (issue 16): the adapter trained on FP32 and the one
 * trained through the INT4 base (QLoRA), each judged on both bases.
 *
 * Training runs through the TypeScript executor (in a worker thread for the first two); every figure is
 * measured by ONNX Runtime on the base model and on the adapter merged into it, or beside its 4-bit weights.
 */
import { readFileSync } from "node:fs"
import path from "node:path"
import type * as ort from "onnxruntime-node"
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { mergeAdapter } from "../../src/compute/lora/GraphLora.js"
import type { ClassifierHead } from "../../src/compute/lora/train/ClassifierHead.js"
import { fitLinearProbe } from "../../src/compute/lora/train/ClassifierHead.js"
import type { AdaptedSession } from "../../src/compute/lora/train/Evaluate.js"
import { accuracy, adaptedSession, heldOutLoss, pooledFeatures } from "../../src/compute/lora/train/Evaluate.js"
import { LoraTrainer } from "../../src/compute/lora/train/LoraTrainer.js"
import type { CausalLmSample } from "../../src/compute/lora/train/Objectives.js"
import { classificationSamples, languageModelWindows } from "../../src/compute/lora/train/TextData.js"
import type { MicroLoRAConfig } from "../../src/compute/lora/train/TrainingConfig.js"
import type { TrainingProgress } from "../../src/compute/lora/train/TrainingLoop.js"
import { trainAdapter } from "../../src/compute/lora/train/TrainingLoop.js"
import { trainInWorker } from "../../src/compute/lora/train/TrainInWorker.js"
import type { OnnxModel } from "../../src/compute/onnx/OnnxModel.js"
import { readModel, writeModel } from "../../src/compute/onnx/OnnxModel.js"
import { createSession } from "../../src/compute/optimize/Runner.js"
import { rewriteWeights } from "../../src/compute/quantize/Rewrite.js"
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
  /** The training loop alone, as a baseline times its own: without starting threads and reading the model. */
  readonly loopMs: number
  readonly steps: number
  readonly weights: LoraWeights
  /** What was trained on and measured with, for a baseline to repeat the run. */
  readonly windows: { readonly train: ReadonlyArray<CausalLmSample>; readonly heldOut: ReadonlyArray<CausalLmSample> }
  readonly config: MicroLoRAConfig
}

/** Windows of ham mail for tiny-lm: even messages to train on, odd ones held out; and the task's adapter config. */
const mailTask = (tokenizer: Tokenizer, options: DomainAdaptationOptions) => {
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
  return { windowLength, train, heldOut, config }
}

export const domainAdaptation = async (options: DomainAdaptationOptions = {}): Promise<DomainAdaptationResult> => {
  const { bytes, model, tokenizer } = referenceModel("tiny-lm")
  const { windowLength, train, heldOut, config } = mailTask(tokenizer, options)
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
    loopMs: result.durationMs,
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

export const messageText = (subject: string, body: string) => `${subject}\n${plainBody(body).slice(0, 600)}`

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

export interface Int4AdaptationOptions extends DomainAdaptationOptions {
  /**
   * Train on this thread, not a worker: the same trainer without a worker's start-up seconds, for short
   * runs (a long one blocks the thread long enough for the test runner's calls to it to time out).
   */
  readonly inThisThread?: boolean
}

export interface Int4AdaptationResult {
  readonly trainWindows: number
  readonly heldOutWindows: number
  readonly windowLength: number
  /** Held-out perplexity (exp of the mean next-token loss), measured by ONNX Runtime. */
  readonly perplexity: {
    readonly fp32Base: number
    readonly int4Base: number
    /** The adapter trained on the FP32 base, merged into it. */
    readonly fp32Adapter: number
    /** The same adapter as a branch beside the 4-bit weights. */
    readonly fp32AdapterOnInt4: number
    /** The adapter trained through the 4-bit base (QLoRA), as a branch beside its weights. */
    readonly int4Adapter: number
    /** That adapter merged into the FP32 base. */
    readonly int4AdapterOnFp32: number
  }
  readonly trainMs: { readonly fp32: number; readonly int4: number }
  readonly steps: number
  readonly weights: { readonly fp32: LoraWeights; readonly int4: LoraWeights }
  readonly models: { readonly fp32: OnnxModel; readonly int4: OnnxModel }
  readonly heldOut: ReadonlyArray<CausalLmSample>
}

/**
 * The mail task on tiny-lm and on its 4-bit form (our INT4 quantizer: MatMul weights in MatMulNBits
 * blocks of 32, embeddings INT8, as `optimize --quantization INT4` writes it): one adapter config trained
 * on each base, each adapter measured on both.
 */
export const int4Adaptation = async (options: Int4AdaptationOptions = {}): Promise<Int4AdaptationResult> => {
  const { bytes, model, tokenizer } = referenceModel("tiny-lm")
  const { windowLength, train, heldOut, config } = mailTask(tokenizer, options)
  const int4 = rewriteWeights(model, { defaultFormat: "INT4", blockSize: 32 }).model
  const int4Bytes = writeModel(int4)
  const perplexityOf = async (base: OnnxModel, opening: Promise<ort.InferenceSession | AdaptedSession>) => {
    const opened = await opening
    const loss = await heldOutLoss(opened, base, heldOut)
    await ("session" in opened ? opened.session : opened).release()
    return Math.exp(loss)
  }
  const trainOn = async (base: OnnxModel, modelBytes: Uint8Array) => {
    const began = performance.now()
    const hooks = { onProgress: options.onProgress }
    const result = options.inThisThread === true
      ? trainAdapter(new LoraTrainer(base, config, { kind: "causal-lm" }), train, hooks)
      : await trainInWorker({ modelBytes, config, objective: { kind: "causal-lm" }, samples: train }, hooks)
    return { result, ms: performance.now() - began }
  }
  const fp32Run = await trainOn(model, bytes)
  const int4Run = await trainOn(int4, int4Bytes)
  return {
    trainWindows: train.length,
    heldOutWindows: heldOut.length,
    windowLength,
    perplexity: {
      fp32Base: await perplexityOf(model, createSession(bytes)),
      int4Base: await perplexityOf(int4, createSession(int4Bytes)),
      fp32Adapter: await perplexityOf(model, adaptedSession(model, fp32Run.result.weights)),
      fp32AdapterOnInt4: await perplexityOf(int4, adaptedSession(int4, fp32Run.result.weights)),
      int4Adapter: await perplexityOf(int4, adaptedSession(int4, int4Run.result.weights)),
      int4AdapterOnFp32: await perplexityOf(model, adaptedSession(model, int4Run.result.weights))
    },
    trainMs: { fp32: fp32Run.ms, int4: int4Run.ms },
    steps: fp32Run.result.steps,
    weights: { fp32: fp32Run.result.weights, int4: int4Run.result.weights },
    models: { fp32: model, int4 },
    heldOut
  }
}
