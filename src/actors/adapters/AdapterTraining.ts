/**
 * The adapters service's training: a LoRA adapter trained on a caller's data (a language model's text
 * or labelled JSON lines for a classifier), measured before and after on held-out data, stored in an
 * adapter store, and recorded as a training job in the journal (requested, then completed with its
 * figures or failed with its reason). Callers watch it as a stream of phases, steps, recorded job
 * steps and the outcome; the CLI's `adapters train` and the node's `AdapterTrain` RPC both run it.
 */
import { Effect, Mailbox, Schema, Stream } from "effect"
import * as crypto from "node:crypto"
import * as path from "node:path"
import type { AdapterMetadata, LoraWeights } from "../../compute/lora/Adapter.js"
import { saveLocalAdapter } from "../../compute/lora/LocalAdapters.js"
import type { FileTrainingOutcome } from "../../compute/lora/train/FileTraining.js"
import { trainOnData } from "../../compute/lora/train/FileTraining.js"
import { trainedAdapter } from "../../compute/lora/train/TrainedAdapter.js"
import type { MicroLoRAConfig } from "../../compute/lora/train/TrainingConfig.js"
import type { TrainingDataOptions, TrainingTask } from "../../compute/lora/train/TrainingData.js"
import type { Tokenizer } from "../../compute/tokenizer/Tokenizer.js"
import { makeStreamId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { Journal } from "../../events/Journal.js"
import type { TrainingCommand, TrainingSpec, TrainingState } from "./TrainingJob.js"
import { TrainingCompleted, TrainingJob, TrainingStatus } from "./TrainingJob.js"

/** A training phase began: measuring the base, resuming a checkpoint (at `detail`), training, evaluating. */
export const TrainingPhase = Schema.TaggedStruct("TrainingPhase", {
  phase: Schema.Literal("baseline", "resume", "train", "evaluate"),
  detail: Schema.optional(Schema.Number)
})
/** An optimizer step done. */
export const TrainingStep = Schema.TaggedStruct("TrainingStep", {
  step: Schema.Number,
  totalSteps: Schema.Number,
  loss: Schema.Number,
  learningRate: Schema.Number
})
export const TrainingRecorded = Schema.TaggedStruct("TrainingRecorded", {
  jobId: Schema.String,
  status: TrainingStatus,
  version: Schema.Number
})
/** The outcome: the job's recorded figures (as `TrainingCompleted` holds them), the task, and any resume. */
export const TrainingFinished = Schema.TaggedStruct("TrainingFinished", {
  jobId: Schema.String,
  task: Schema.Literal("causal-lm", "classification"),
  ...Schema.Struct(TrainingCompleted.fields).omit("_tag").fields,
  resumedFrom: Schema.optional(Schema.Number)
})
export type TrainingFinished = typeof TrainingFinished.Type
export const TrainingProgressEvent = Schema.Union(TrainingPhase, TrainingStep, TrainingRecorded, TrainingFinished)
export type TrainingProgressEvent = typeof TrainingProgressEvent.Type

export class AdapterTrainingFailed extends Schema.TaggedError<AdapterTrainingFailed>()("AdapterTrainingFailed", {
  jobId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

/** One training run: the base model, the data, the settings, and the adapter to make and where to keep it. */
export interface TrainRequest {
  readonly base: {
    readonly bytes: Uint8Array
    readonly tokenizer: Tokenizer
    readonly id: string
    /** The model the base was optimized from (Manifest.adapterBaseDigestOf): the adapter is keyed to it. */
    readonly baseModelDigest?: string | undefined
  }
  readonly data: { readonly content: string; readonly name: string }
  /** Default: classification for `.jsonl` data, a causal LM otherwise. */
  readonly task?: TrainingTask | undefined
  readonly config: MicroLoRAConfig
  /** PEFT-style names (`c_attn`): every module whose path ends with one. */
  readonly targetNames?: ReadonlyArray<string> | undefined
  readonly dataOptions?: TrainingDataOptions | undefined
  readonly adapter: {
    readonly id: string
    readonly version: string
    readonly name?: string | undefined
    readonly domain?: string | undefined
    readonly license?: string | undefined
  }
  /** The adapter store's root (adapters go to `<root>/adapters/<id>/<version>`); checkpoints beside them. */
  readonly storeRoot: string
  /** Default: `train-` and 12 random hex digits. */
  readonly jobId?: string | undefined
  /** Factors to start from instead of fresh ones (a federated round's base adapter). */
  readonly startWeights?: LoraWeights | undefined
}

export interface TrainOutcome {
  readonly jobId: string
  readonly metadata: AdapterMetadata
  readonly outcome: FileTrainingOutcome
  readonly finished: TrainingFinished
}

const sha256 = (bytes: Uint8Array | string) => crypto.createHash("sha256").update(bytes).digest("hex")

/** The settings as the job records them: the config's set numbers and strings. */
const settingsOf = (request: TrainRequest): TrainingSpec["settings"] => {
  const settings: Record<string, number | string> = {}
  for (const [key, value] of Object.entries({ ...request.config, ...request.dataOptions })) {
    if (typeof value === "number" || typeof value === "string") settings[key] = value
  }
  if (request.targetNames !== undefined) settings.targetNames = request.targetNames.join(",")
  const replay = request.config.replay
  if (replay !== undefined) {
    settings.replayAlpha = replay.alpha ?? 0.6
    settings.replayBeta = replay.beta ?? 0.4
  }
  return settings
}

export class AdapterTraining extends Effect.Service<AdapterTraining>()("edge-net/AdapterTraining", {
  effect: Effect.gen(function*() {
    const jobs = yield* ActorRunner.make(TrainingJob, { snapshotEvery: 0 })
    const journal = yield* Journal

    const step = (jobId: string, command: TrainingCommand) =>
      Effect.map(
        jobs.send(jobId, command, { commandId: `${command._tag}/${jobId}` }),
        (result) => ({ ...result.state, version: result.version })
      )

    /**
     * Trains, stores and records one adapter; `onProgress` sees phases, steps, recorded job steps and
     * the outcome. A failure is recorded on the job and fails with its one line.
     */
    const train = Effect.fn("AdapterTraining.train")(function*(
      request: TrainRequest,
      onProgress: (progress: TrainingProgressEvent) => void = () => {}
    ) {
      const jobId = request.jobId ?? `train-${crypto.randomBytes(6).toString("hex")}`
      const failed = (reason: string) => new AdapterTrainingFailed({ jobId, reason })
      const recorded = <E extends { readonly message: string }>(
        effect: Effect.Effect<{ readonly status: TrainingState["status"]; readonly version: number }, E>
      ) =>
        effect.pipe(
          Effect.tap(({ status, version }) =>
            Effect.sync(() => onProgress({ _tag: "TrainingRecorded", jobId, status, version }))
          ),
          Effect.mapError((error) => failed(`recording training job ${jobId}: ${error.message}`))
        )
      const { adapter, base, data } = request
      yield* recorded(step(jobId, {
        _tag: "Request",
        spec: {
          base: { sha256: sha256(base.bytes), size: base.bytes.length, id: base.id },
          data: { sha256: sha256(data.content), size: Buffer.byteLength(data.content), name: data.name },
          task: request.task ?? "auto",
          settings: settingsOf(request),
          adapter: { id: adapter.id, version: adapter.version }
        }
      }))
      const whenFailing = <A, R>(effect: Effect.Effect<A, AdapterTrainingFailed, R>) =>
        Effect.tapError(effect, (error) => Effect.ignore(step(jobId, { _tag: "Fail", reason: error.reason })))

      const outcome = yield* whenFailing(Effect.tryPromise({
        try: (signal) =>
          trainOnData({
            modelBytes: base.bytes,
            tokenizer: base.tokenizer,
            content: data.content,
            dataName: data.name,
            task: request.task,
            config: request.config,
            targetNames: request.targetNames,
            data: request.dataOptions,
            startWeights: request.startWeights,
            checkpointDirectory: path.join(
              request.storeRoot,
              "adapters",
              ".training",
              `${adapter.id}@${adapter.version}`
            ),
            onPhase: (phase, detail) =>
              onProgress({ _tag: "TrainingPhase", phase, ...(detail === undefined ? {} : { detail }) }),
            onProgress: (progress) =>
              onProgress({
                _tag: "TrainingStep",
                step: progress.step,
                totalSteps: progress.totalSteps,
                loss: progress.loss,
                learningRate: progress.learningRate
              }),
            signal
          }),
        catch: (error) => failed(error instanceof Error ? error.message.split("\n")[0]! : String(error))
      }))
      const { result } = outcome
      const { classifier, description } = trainedAdapter(outcome, {
        ...adapter,
        baseModel: base.id,
        baseModelDigest: base.baseModelDigest,
        dataName: data.name
      })
      const metadata = yield* whenFailing(
        saveLocalAdapter(request.storeRoot, description, result.weights, { classifier }).pipe(
          Effect.mapError((error) => failed(error.message))
        )
      )
      const figures = {
        adapter: { id: metadata.id, version: metadata.version, checksum: metadata.checksum },
        metric: outcome.metric,
        before: outcome.before,
        after: outcome.after,
        steps: result.steps,
        trainSamples: outcome.trainSamples,
        heldOutSamples: outcome.heldOutSamples,
        durationMs: result.durationMs
      }
      yield* recorded(step(jobId, { _tag: "Complete", outcome: figures }))
      const finished: TrainingFinished = {
        _tag: "TrainingFinished",
        jobId,
        task: outcome.task,
        ...figures,
        ...(outcome.resumedFrom === undefined ? {} : { resumedFrom: outcome.resumedFrom })
      }
      onProgress(finished)
      return { jobId, metadata, outcome, finished } satisfies TrainOutcome
    })

    /** `train` as a stream of its progress, ending with `TrainingFinished`. */
    const trainStream = (request: TrainRequest): Stream.Stream<TrainingProgressEvent, AdapterTrainingFailed> =>
      Stream.unwrapScoped(Effect.gen(function*() {
        const mailbox = yield* Mailbox.make<TrainingProgressEvent, AdapterTrainingFailed>()
        yield* train(request, (progress) => mailbox.unsafeOffer(progress)).pipe(
          Mailbox.into(mailbox),
          Effect.forkScoped
        )
        return Mailbox.toStream(mailbox)
      }))

    const job = Effect.fn("AdapterTraining.job")(function*(jobId: string) {
      const { state, version } = yield* jobs.state(jobId)
      return { ...state, version }
    })

    /** Every recorded step of a job with its journal position and hash. */
    const history = Effect.fn("AdapterTraining.history")((jobId: string) =>
      journal.readStream(makeStreamId(TrainingJob.category, jobId), 1)
    )

    return { train, trainStream, job, history } as const
  })
}) {}
