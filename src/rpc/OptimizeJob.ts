/**
 * A node's optimizer job, as its RPC runs it (`OptimizerRun`): the model's files are found here, in
 * the registry and the store, and a child process (OptimizeJobProcess.ts) reads them, quantizes and
 * measures the model and stores the result in the node's blob store, reporting each step. This process
 * records the job in its journal as the child reports it (Optimizer.recordReport) and streams
 * the progress to the caller. A node that read the model and its result itself kept what they took in
 * its allocator: 95 MB before two INT8 jobs of the reference LM, 142 MB after.
 */
import { Effect, Stream } from "effect"
import type { Optimizer } from "../actors/optimizer/Optimizer.js"
import type { JobSpec } from "../actors/optimizer/OptimizerJob.js"
import type { OptimizeProgress, OptimizeSettings } from "../actors/optimizer/OptimizeRun.js"
import { OptimizeRunFailed } from "../actors/optimizer/OptimizeRun.js"
import type { JobReport } from "../actors/optimizer/RunRecord.js"
import { ModelSourceError } from "../content/ModelSource.js"
import { childReports } from "../node/ChildReports.js"
import { moduleProcess } from "../node/ModuleWorker.js"
import type { ModelFiles } from "./ModelSources.js"

/** What the node asks of the optimizer's process. */
export interface OptimizeJobOrder {
  readonly jobId: string
  readonly files: ModelFiles
  readonly settings: OptimizeSettings
  /** Texts that calibrate and validate a text model (its tokenizer among the files); none: seeded random inputs. */
  readonly calibrationTexts: ReadonlyArray<string>
  readonly calibration?: JobSpec["calibration"]
  /** The node's blob store, where the optimized model is put. */
  readonly blobs: { readonly root: string; readonly maxBytes: number }
}

/**
 * Runs the job in its process, streaming each pipeline step, each recorded job step and the outcome
 * (as `Optimizer.run` tells them). A failure before the job started is the model's (it could not be
 * read), after it the run's.
 */
export const optimizeJobInChild = (
  optimizer: Optimizer,
  order: OptimizeJobOrder
): Stream.Stream<OptimizeProgress, OptimizeRunFailed | ModelSourceError> =>
  Stream.suspend(() => {
    const { jobId } = order
    let started = false
    const reports = childReports<JobReport>(
      () => moduleProcess(import.meta.url, "./OptimizeJobProcess"),
      order,
      "the optimizer's process"
    ).pipe(
      Stream.mapError(({ reason }) =>
        started ? new OptimizeRunFailed({ jobId, reason }) : new ModelSourceError({ reason })
      )
    )
    return Stream.mapConcatEffect(reports, (report) => {
      if (report._tag === "JobStarted") started = true
      const told: Array<OptimizeProgress> = []
      return Effect.as(optimizer.recordReport(report, (progress) => told.push(progress)), told)
    })
  })
