/**
 * MicroLoRA training in a Web Worker: the page tokenizes a few texts with the model's own tokenizer,
 * and a module worker (LoraWorker.ts, the same training code a node runs in a thread) trains the
 * adapter, posting its loss after every step, so the page stays responsive while it learns.
 */
import type { LoraWeights } from "../compute/lora/Adapter.js"
import type { Objective, Sample } from "../compute/lora/train/Objectives.js"
import { classificationSamples, languageModelWindows } from "../compute/lora/train/TextData.js"
import type { MicroLoRAConfig } from "../compute/lora/train/TrainingConfig.js"
import type { TrainingProgress } from "../compute/lora/train/TrainingLoop.js"
import type { TrainingMessage, TrainingRequest } from "../compute/lora/train/TrainingProtocol.js"
import { Tokenizer } from "../compute/tokenizer/Tokenizer.js"
import type { LoadedModel } from "./ModelLoader.js"

export type { TrainingProgress } from "../compute/lora/train/TrainingLoop.js"

/** What to learn: labelled texts (an encoder learns to classify them) or plain texts (a decoder learns to continue them). */
export type TrainingTexts =
  | {
    readonly kind: "classification"
    readonly items: ReadonlyArray<{ readonly text: string; readonly label: number }>
  }
  | { readonly kind: "causal-lm"; readonly texts: ReadonlyArray<string>; readonly window?: number | undefined }

/** A trained adapter: its factors, and the loss of every step. */
export interface TrainedAdapter {
  readonly weights: LoraWeights
  readonly losses: ReadonlyArray<number>
  readonly steps: number
  readonly durationMs: number
}

/** Options of one training run. */
export interface TrainOptions {
  /** The adapter's shape and schedule (rank 2, every target module, ... by default). */
  readonly config?: MicroLoRAConfig | undefined
  /** Called with every optimizer step's loss. */
  readonly onProgress?: ((progress: TrainingProgress) => void) | undefined
  /** Aborting terminates the worker and rejects. */
  readonly signal?: AbortSignal | undefined
  /** The worker's script; default `sdk-lora-worker.js` beside the SDK. */
  readonly workerUrl?: string | undefined
}

/** A training run that failed (a bad config, texts too short), in one line. */
export class TrainingRunError extends Error {
  override readonly name = "TrainingRunError"
}

const MAX_LENGTH = 64

const samplesOf = (tokenizer: Tokenizer, texts: TrainingTexts): { samples: Array<Sample>; objective: Objective } => {
  if (texts.kind === "classification") {
    const classes = new Set(texts.items.map((item) => item.label)).size
    return {
      samples: classificationSamples(tokenizer, texts.items, MAX_LENGTH),
      objective: { kind: "classification", classes: Math.max(2, classes), padId: tokenizer.specialIds.pad ?? 0 }
    }
  }
  const samples = languageModelWindows(tokenizer, texts.texts, texts.window ?? 16, {
    separator: tokenizer.specialIds.eos
  })
  return { samples, objective: { kind: "causal-lm" } }
}

/** Trains a LoRA adapter on a loaded model in a Web Worker. */
export const trainAdapter = (model: LoadedModel, texts: TrainingTexts, options: TrainOptions = {}) =>
  new Promise<TrainedAdapter>((resolve, reject) => {
    const onnx = model.files.get("model")
    const tokenizerText = model.files.get("tokenizer")
    if (onnx === undefined || tokenizerText === undefined) {
      reject(new TrainingRunError(`${model.id} needs a model and a tokenizer artifact to train on`))
      return
    }
    let request: TrainingRequest
    try {
      const tokenizer = Tokenizer.fromJson(new TextDecoder().decode(tokenizerText))
      const { objective, samples } = samplesOf(tokenizer, texts)
      if (samples.length === 0) throw new TrainingRunError("the texts gave no training sample (too short?)")
      request = { modelBytes: onnx, config: options.config ?? { rank: 2 }, objective, samples }
    } catch (error) {
      reject(error instanceof Error ? error : new TrainingRunError(String(error)))
      return
    }
    const workerUrl = options.workerUrl ?? new URL("./sdk-lora-worker.js", import.meta.url).href
    const worker = new Worker(workerUrl, { type: "module" })
    const losses: Array<number> = []
    const finish = (outcome: () => void) => {
      worker.terminate()
      options.signal?.removeEventListener("abort", abort)
      outcome()
    }
    const abort = () => finish(() => reject(new TrainingRunError("training was interrupted")))
    options.signal?.addEventListener("abort", abort)
    worker.onmessage = (event: MessageEvent<TrainingMessage>) => {
      const message = event.data
      switch (message.type) {
        case "progress":
          losses.push(message.progress.loss)
          options.onProgress?.(message.progress)
          break
        case "done":
          finish(() =>
            resolve({
              weights: message.result.weights,
              losses,
              steps: message.result.steps,
              durationMs: message.result.durationMs
            })
          )
          break
        case "error":
          finish(() => reject(new TrainingRunError(message.message)))
          break
        case "checkpoint":
          break
      }
    }
    worker.onerror = (event) =>
      finish(() => reject(new TrainingRunError(`the training worker failed: ${event.message}`)))
    worker.postMessage(request)
  })
