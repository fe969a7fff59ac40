/**
 * A node's optimizer job, as its RPC runs it (`OptimizerRun`): the model's files are found here, in
 * the registry and the store, and a child process (OptimizeJobProcess.ts) reads them, quantizes and
 * measures the model and stores the result in the node's blob store, reporting each step. This process
 * records the job in its journal as the child reports it (Optimizer.request / finish / fail) and streams
 * the progress to the caller. A node that read the model and its result itself kept what they took in
 * its allocator: 95 MB before two INT8 jobs of the reference LM, 142 MB after.
 */
import { Effect, Stream } from "effect"
import type { Optimizer } from "../actors/optimizer/Optimizer.js"
import type { JobSpec } from "../actors/optimizer/OptimizerJob.js"
import type { OptimizeProgress, OptimizeSettings } from "../actors/optimizer/OptimizeRun.js"
import { OptimizeRunFailed } from "../actors/optimizer/OptimizeRun.js"
import type { RunOutcome } from "../actors/optimizer/RunRecord.js"
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

/** What the optimizer's process reports, in order (then `Done`, or `Failed` with its line). */
export type OptimizeJobReport =
  | { readonly _tag: "JobStarted"; readonly spec: JobSpec }
  | { readonly _tag: "Step"; readonly step: string; readonly done: number; readonly total: number }
  /** The optimized model is in the store (unless refused). */
  | { readonly _tag: "JobEnded"; readonly outcome: RunOutcome }
  | { readonly _tag: "JobFailed"; readonly reason: string }

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
    const reports = childReports<OptimizeJobReport>(
      () => moduleProcess(import.meta.url, "./OptimizeJobProcess"),
      order,
      "the optimizer's process"
    ).pipe(
      Stream.mapError(({ reason }) =>
        started ? new OptimizeRunFailed({ jobId, reason }) : new ModelSourceError({ reason })
      )
    )
    return Stream.mapConcatEffect(reports, (report) =>
      Effect.gen(function*() {
        const told: Array<OptimizeProgress> = []
        switch (report._tag) {
          case "JobStarted": {
            started = true
            const requested = yield* Effect.mapError(
              optimizer.request(jobId, report.spec),
              (error) => new OptimizeRunFailed({ jobId, reason: `recording optimizer job ${jobId}: ${error.message}` })
            )
            told.push({ _tag: "OptimizeRecorded", jobId, status: requested.status, version: requested.version })
            break
          }
          case "Step":
            told.push({ _tag: "OptimizeStep", step: report.step, done: report.done, total: report.total })
            break
          case "JobEnded":
            yield* optimizer.finish(jobId, report.outcome, (progress) => told.push(progress))
            break
          case "JobFailed":
            yield* Effect.ignore(optimizer.fail(jobId, report.reason))
        }
        return told
      }))
  })
