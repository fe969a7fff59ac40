/**
 * The seed's `session.createTrainer(config)` (section 7.2): train a MicroLoRA adapter on the session's
 * model from examples in memory, then keep it in the loader's cache, where `loadAdapter` finds it.
 *
 * Examples are prompt/completion pairs (`{ input, output }`) or texts (`{ text }`) for a causal LM, or
 * labelled texts (`{ text, label }`) for a classifier with its own head. Training runs on a worker
 * thread (the compute layer's trainer, the same one the node's AdapterTraining service runs), and
 * measures the base and the adapter on held-out examples. Each `train` makes a fresh adapter.
 */
import { Data, Effect, Either, Ref } from "effect"
import type { LoraWeights } from "../compute/lora/Adapter.js"
import { saveLocalAdapter } from "../compute/lora/LocalAdapters.js"
import type { FileTrainingOutcome } from "../compute/lora/train/FileTraining.js"
import { trainOnData } from "../compute/lora/train/FileTraining.js"
import { trainedAdapter } from "../compute/lora/train/TrainedAdapter.js"
import type { TrainingProgress } from "../compute/lora/train/TrainingLoop.js"
import type { Tokenizer } from "../compute/tokenizer/Tokenizer.js"

export class SessionTrainingError extends Data.TaggedError("SessionTrainingError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** The seed's trainer settings (MicroLoRAConfig's names), with how examples become samples. */
export interface TrainerConfig {
  /** Default 4. */
  readonly rank?: number | undefined
  readonly alpha?: number | undefined
  readonly learningRate?: number | undefined
  readonly batchSize?: number | undefined
  readonly epochs?: number | undefined
  readonly maxSteps?: number | undefined
  readonly dropout?: number | undefined
  readonly seed?: number | undefined
  /** PEFT-style module names (`c_attn`, `blocks.0.attn.c_proj`); default every target. */
  readonly targetModules?: ReadonlyArray<string> | undefined
  /** Tokens per language-model window (default 128). */
  readonly window?: number | undefined
  /** Tokens a classification example is cut to (default 64). */
  readonly maxTokens?: number | undefined
  /** Share of examples (or windows) held out to measure before and after (default 0.1). */
  readonly heldOut?: number | undefined
}

export type TrainingExample =
  | { readonly input: string; readonly output: string }
  | { readonly text: string; readonly label?: string | number | undefined }

/** What a training run measured: the held-out figure of the base model and of the adapter. */
export interface TrainSummary {
  readonly task: "causal-lm" | "classification"
  /** Held-out loss (nats per token) for a causal LM; held-out accuracy for a classifier. */
  readonly metric: "heldOutLoss" | "heldOutAccuracy"
  readonly before: number
  readonly after: number
  readonly steps: number
  readonly finalLoss: number
  readonly trainSamples: number
  readonly heldOutSamples: number
  readonly durationMs: number
}

export interface SaveOptions {
  /** Default 1.0.0. */
  readonly version?: string | undefined
  readonly name?: string | undefined
  readonly domain?: string | undefined
  readonly license?: string | undefined
}

export interface TrainedAdapter {
  readonly weights: LoraWeights
  readonly summary: TrainSummary
  /** Keeps the adapter in the loader's cache as `id@version`; `session.loadAdapter(id)` then runs it. */
  readonly save: (
    id: string,
    options?: SaveOptions
  ) => Effect.Effect<{ readonly id: string; readonly version: string; readonly checksum: string }, SessionTrainingError>
}

export interface Trainer {
  readonly train: (
    examples: ReadonlyArray<TrainingExample>,
    options?: { readonly onProgress?: ((progress: TrainingProgress) => void) | undefined }
  ) => Effect.Effect<TrainSummary, SessionTrainingError>
  /** The adapter of the last `train`. */
  readonly getAdapter: () => Effect.Effect<TrainedAdapter, SessionTrainingError>
}

/** What the trainer needs of its session: the model's bytes and tokenizer, and where adapters are kept. */
export interface TrainerBase {
  readonly id: string
  readonly modelBytes: Effect.Effect<Uint8Array, { readonly message: string }>
  readonly tokenizer: Tokenizer
  /** What adapters of this model are keyed to (its manifest's lineage). */
  readonly baseModelDigest: string
  readonly cacheRoot: string
}

const fail = (reason: string) => new SessionTrainingError({ reason })

/** The examples as the training file they stand for: JSON lines for labelled texts, paragraphs otherwise. */
export const examplesAsData = (examples: ReadonlyArray<TrainingExample>) => {
  if (examples.length === 0) return Either.left("no training examples")
  const labelled = examples.flatMap((example) =>
    "label" in example && example.label !== undefined ? [{ text: example.text, label: example.label }] : []
  )
  if (labelled.length > 0 && labelled.length < examples.length) {
    return Either.left(`${labelled.length} of ${examples.length} examples have a label: label all of them or none`)
  }
  if (labelled.length > 0) {
    return Either.right({
      content: labelled.map((line) => JSON.stringify(line)).join("\n") + "\n",
      name: "examples.jsonl"
    })
  }
  const documents = examples.map((
    example
  ) => ("input" in example ? `${example.input}\n${example.output}` : example.text))
  return Either.right({ content: documents.join("\n\n") + "\n", name: "examples.txt" })
}

const summaryOf = (outcome: FileTrainingOutcome): TrainSummary => ({
  task: outcome.task,
  metric: outcome.metric,
  before: outcome.before,
  after: outcome.after,
  steps: outcome.result.steps,
  finalLoss: outcome.result.finalLoss,
  trainSamples: outcome.trainSamples,
  heldOutSamples: outcome.heldOutSamples,
  durationMs: outcome.result.durationMs
})

export const makeTrainer = (base: TrainerBase, config: TrainerConfig = {}) =>
  Effect.map(Ref.make<{ outcome: FileTrainingOutcome; dataName: string } | undefined>(undefined), (last): Trainer => ({
    train: (examples, options = {}) =>
      Effect.gen(function*() {
        const data = examplesAsData(examples)
        if (Either.isLeft(data)) return yield* Effect.fail(fail(data.left))
        const modelBytes = yield* Effect.mapError(base.modelBytes, (error) => fail(error.message))
        const { heldOut, maxTokens, targetModules, window, ...training } = config
        const outcome = yield* Effect.tryPromise({
          try: (signal) =>
            trainOnData({
              modelBytes,
              tokenizer: base.tokenizer,
              content: data.right.content,
              dataName: data.right.name,
              config: { ...training, rank: training.rank ?? 4 },
              targetNames: targetModules,
              data: {
                ...(window === undefined ? {} : { windowLength: window }),
                ...(maxTokens === undefined ? {} : { maxTokens }),
                ...(heldOut === undefined ? {} : { heldOutFraction: heldOut })
              },
              onProgress: options.onProgress,
              signal
            }),
          catch: (error) => fail(error instanceof Error ? error.message.split("\n")[0]! : String(error))
        })
        yield* Ref.set(last, { outcome, dataName: data.right.name })
        return summaryOf(outcome)
      }),
    getAdapter: () =>
      Effect.flatMap(Ref.get(last), (trained) => {
        if (trained === undefined) return Effect.fail(fail("nothing trained yet: call train(examples) first"))
        const { dataName, outcome } = trained
        const adapter: TrainedAdapter = {
          weights: outcome.result.weights,
          summary: summaryOf(outcome),
          save: (id, options = {}) => {
            const { classifier, description } = trainedAdapter(outcome, {
              id,
              version: options.version ?? "1.0.0",
              name: options.name,
              domain: options.domain,
              license: options.license,
              baseModel: base.id,
              baseModelDigest: base.baseModelDigest,
              dataName
            })
            return saveLocalAdapter(base.cacheRoot, description, outcome.result.weights, { classifier }).pipe(
              Effect.map((metadata) => ({ id: metadata.id, version: metadata.version, checksum: metadata.checksum })),
              Effect.mapError((error) => fail(error.message))
            )
          }
        }
        return Effect.succeed(adapter)
      })
  }))
