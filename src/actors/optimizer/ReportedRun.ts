/**
 * The pipeline run in a process of its own on a node's behalf (the first-start process, an RPC job's
 * process): the job's start, each step and a failure are reported as they happen (RunRecord.JobReport);
 * the caller reports the end once it has kept what it needs of the result.
 */
import { Effect } from "effect"
import type { FeedSets } from "../../compute/optimize/Feeds.js"
import { optimize } from "../../compute/optimize/Optimize.js"
import type { JobSpec } from "./OptimizerJob.js"
import type { OptimizeSettings } from "./OptimizeRun.js"
import type { JobReport } from "./RunRecord.js"
import { firstLine, jobSpecOf, pipelineOptionsOf, sha256Hex } from "./RunRecord.js"

export interface ReportedRun {
  readonly jobId: string
  readonly model: Uint8Array
  /** The model's name, kept in the job's spec. */
  readonly name: string
  readonly settings: OptimizeSettings
  /** Made once the job is recorded as started: a model they cannot be made for fails the job. */
  readonly feeds: () => FeedSets
  readonly calibration?: JobSpec["calibration"]
}

/** Runs the pipeline, reporting the job's start, its steps and (failing with its line) its failure. */
export const runReported = (run: ReportedRun, send: (report: JobReport) => Effect.Effect<void>) =>
  Effect.gen(function*() {
    const { jobId, model, settings } = run
    const spec = jobSpecOf({ sha256: sha256Hex(model), size: model.length, name: run.name }, settings, run.calibration)
    yield* send({ _tag: "JobStarted", jobId, spec })
    return yield* Effect.tryPromise({
      try: () =>
        optimize(model, {
          ...pipelineOptionsOf(settings, run.feeds()),
          onProgress: (step, done, total) => void Effect.runPromise(send({ _tag: "JobStep", jobId, step, done, total }))
        }),
      catch: firstLine
    }).pipe(Effect.tapError((reason) => send({ _tag: "JobFailed", jobId, reason })))
  })
