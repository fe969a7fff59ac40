/**
 * The two ends of an optimizer run that the job's record needs, shared by the optimizer service and by
 * a process that runs the pipeline on its behalf (a node's first-start publisher): the job's spec and
 * the pipeline's options from the run's settings, and what the record keeps of the pipeline's result.
 * Nothing here touches the journal or loads the pipeline.
 */
import * as crypto from "node:crypto"
import type { FeedSets } from "../../compute/optimize/Feeds.js"
import type { OptimizeOptions, OptimizeResult } from "../../compute/optimize/Optimize.js"
import type { JobCommand, JobSpec } from "./OptimizerJob.js"
import type { OptimizeSettings } from "./OptimizeRun.js"

export const sha256Hex = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest("hex")

/** A pipeline error as the job records it: its first line. */
export const firstLine = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]!

/** The job's spec: `settings` asked of the model named by its digest and size. */
export const jobSpecOf = (
  model: JobSpec["model"],
  settings: OptimizeSettings,
  calibration?: JobSpec["calibration"]
): JobSpec => ({
  model,
  quantization: settings.quantization,
  ...(settings.blockSize === undefined ? {} : { blockSize: settings.blockSize }),
  ...(settings.pruning === undefined ? {} : { pruning: settings.pruning }),
  ...(calibration === undefined ? {} : { calibration }),
  ...(settings.target === undefined ? {} : { target: settings.target }),
  ...(settings.sizeBudgetBytes === undefined ? {} : { sizeBudgetBytes: settings.sizeBudgetBytes }),
  ...(settings.qualityBar === undefined ? {} : { qualityBar: settings.qualityBar })
})

/** The pipeline's options for `settings` and `feeds`; the progress callback is the caller's to add. */
export const pipelineOptionsOf = (
  settings: OptimizeSettings,
  feeds: FeedSets
): Omit<OptimizeOptions, "onProgress" | "evaluate"> => ({
  quantization: settings.quantization,
  blockSize: settings.blockSize ?? 32,
  simplify: settings.simplify ?? false,
  ...(settings.pruning === undefined ? {} : { pruning: settings.pruning }),
  calibration: feeds.calibration,
  heldOut: feeds.heldOut,
  ...(settings.sizeBudgetBytes === undefined ? {} : { sizeBudgetBytes: settings.sizeBudgetBytes }),
  ...(settings.qualityBar === undefined ? {} : { qualityBar: settings.qualityBar }),
  runtime: settings.target === "browser" ? "onnxruntime-web" : "onnxruntime-node"
})

type Step<Tag extends JobCommand["_tag"]> = Omit<Extract<JobCommand, { _tag: Tag }>, "_tag">

/** What the job's record keeps of a result: everything but the optimized bytes, named by their digest. */
export interface RunOutcome {
  readonly artifact: { readonly sha256: string; readonly size: number }
  /** The report's finite figures (a figure the run could not measure is left out). */
  readonly report: Readonly<Record<string, number>>
  readonly keptFp32: ReadonlyArray<string>
  /** Why the quality bar refused the result; absent when it passed. */
  readonly refused?: ReadonlyArray<string> | undefined
  /** The automatic mode's measurements and choice. */
  readonly measured?: Step<"RecordSensitivities"> | undefined
  readonly assigned?: Step<"AssignPrecision"> | undefined
}

const finiteFigures = (report: object): Record<string, number> =>
  Object.fromEntries(
    Object.entries(report).filter((entry): entry is [string, number] =>
      typeof entry[1] === "number" && Number.isFinite(entry[1])
    )
  )

export const runOutcomeOf = (result: OptimizeResult): RunOutcome => ({
  artifact: { sha256: sha256Hex(result.bytes), size: result.bytes.length },
  report: finiteFigures(result.report),
  keptFp32: result.rewrite.keptFp32.map((kept) => kept.node),
  ...(result.refused === undefined ? {} : { refused: result.refused }),
  ...(result.sensitivities === undefined || result.assignment === undefined ? {} : {
    measured: {
      metric: result.sensitivityMetric ?? "1 - output cosine",
      layers: result.sensitivities.map((layer) => ({
        ...layer,
        damage: Object.fromEntries(Object.entries(layer.damage).map(([bits, damage]) => [bits, damage ?? 0]))
      }))
    },
    assigned: result.assignment
  })
})

/**
 * What a process running the pipeline on a node's behalf reports of one job, in order: its start, each
 * pipeline step, then its end or its failure. The node records it (Optimizer.recordReport).
 */
export type JobReport =
  | { readonly _tag: "JobStarted"; readonly jobId: string; readonly spec: JobSpec }
  | {
    readonly _tag: "JobStep"
    readonly jobId: string
    readonly step: string
    readonly done: number
    readonly total: number
  }
  | { readonly _tag: "JobEnded"; readonly jobId: string; readonly outcome: RunOutcome }
  | { readonly _tag: "JobFailed"; readonly jobId: string; readonly reason: string }
