/**
 * The optimizer service: runs the optimization pipeline on a model (quantize, prune, validate against
 * the original, refuse below a quality bar) and records each job's steps on its entity (requested,
 * layer sensitivities, precision per layer, completed / refused / failed) as they happen, reporting
 * both to the caller; and reads a job's state and full history back for audits.
 */
import { Effect } from "effect"
import * as crypto from "node:crypto"
import type { FeedSets } from "../../compute/optimize/Feeds.js"
import type { OptimizeResult } from "../../compute/optimize/Optimize.js"
import { optimize } from "../../compute/optimize/Optimize.js"
import { makeStreamId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { Journal } from "../../events/Journal.js"
import type { JobCommand, JobSpec } from "./OptimizerJob.js"
import { OptimizerJob } from "./OptimizerJob.js"
import type { OptimizeFinished, OptimizeProgress, OptimizeSettings } from "./OptimizeRun.js"
import { OptimizeRunFailed } from "./OptimizeRun.js"
import type { JobReport, RunOutcome } from "./RunRecord.js"
import { firstLine, jobSpecOf, pipelineOptionsOf, runOutcomeOf, sha256Hex } from "./RunRecord.js"

/** One run: the model's bytes, what to do, and the inputs that calibrate and validate it. */
export interface OptimizeRequest {
  readonly model: Uint8Array
  /** The model's name, kept in the job's spec. */
  readonly name?: string | undefined
  readonly settings: OptimizeSettings
  readonly feeds: FeedSets
  /** Where the calibration inputs came from (their digest), when the caller gave any. */
  readonly calibration?: { readonly sha256: string; readonly samples: number } | undefined
  /** Default: `optimize-` and 12 random hex digits. */
  readonly jobId?: string | undefined
}

export interface OptimizeOutcome {
  readonly jobId: string
  readonly result: OptimizeResult
  readonly finished: OptimizeFinished
}

export class Optimizer extends Effect.Service<Optimizer>()("edge-net/Optimizer", {
  effect: Effect.gen(function*() {
    const jobs = yield* ActorRunner.make(OptimizerJob, { snapshotEvery: 0 })
    const journal = yield* Journal

    // Each step's command id names the job and the step, so a retried step is recorded once.
    const step = (jobId: string, command: JobCommand) =>
      Effect.map(
        jobs.send(jobId, command, { commandId: `${command._tag}/${jobId}` }),
        (result) => ({ ...result.state, version: result.version })
      )

    const request = Effect.fn("Optimizer.request")((jobId: string, spec: JobSpec) =>
      step(jobId, { _tag: "Request", spec })
    )

    const recordSensitivities = Effect.fn("Optimizer.recordSensitivities")(
      (jobId: string, metric: string, layers: Extract<JobCommand, { _tag: "RecordSensitivities" }>["layers"]) =>
        step(jobId, { _tag: "RecordSensitivities", metric, layers })
    )

    const assignPrecision = Effect.fn("Optimizer.assignPrecision")(
      (jobId: string, assignment: Omit<Extract<JobCommand, { _tag: "AssignPrecision" }>, "_tag">) =>
        step(jobId, { _tag: "AssignPrecision", ...assignment })
    )

    const complete = Effect.fn("Optimizer.complete")(
      (jobId: string, result: Omit<Extract<JobCommand, { _tag: "Complete" }>, "_tag">) =>
        step(jobId, { _tag: "Complete", ...result })
    )

    const refuse = Effect.fn("Optimizer.refuse")((
      jobId: string,
      report: Readonly<Record<string, number>>,
      reasons: ReadonlyArray<string>
    ) => step(jobId, { _tag: "Refuse", report, reasons }))

    const fail = Effect.fn("Optimizer.fail")((jobId: string, reason: string) => step(jobId, { _tag: "Fail", reason }))

    const job = Effect.fn("Optimizer.job")(function*(jobId: string) {
      const { state, version } = yield* jobs.state(jobId)
      return { ...state, version }
    })

    /** Every recorded step of a job with its journal position and hash: what an auditor reads. */
    const history = Effect.fn("Optimizer.history")((jobId: string) =>
      journal.readStream(makeStreamId(OptimizerJob.category, jobId), 1)
    )

    const recordingFailed = (jobId: string) => (error: { readonly message: string }) =>
      new OptimizeRunFailed({ jobId, reason: `recording optimizer job ${jobId}: ${error.message}` })

    /** Records a job's request; `onProgress` sees the recorded step. */
    const begin = Effect.fn("Optimizer.begin")(function*(
      jobId: string,
      spec: JobSpec,
      onProgress: (progress: OptimizeProgress) => void = () => {}
    ) {
      const { status, version } = yield* Effect.mapError(step(jobId, { _tag: "Request", spec }), recordingFailed(jobId))
      onProgress({ _tag: "OptimizeRecorded", jobId, status, version })
    })

    /**
     * Records the end of a job whose pipeline has run (here, or in a process that ran it on the job's
     * behalf): the automatic mode's measurements and choice, then completed or refused. `onProgress`
     * sees each recorded step and the outcome.
     */
    const finish = Effect.fn("Optimizer.finish")(function*(
      jobId: string,
      outcome: RunOutcome,
      onProgress: (progress: OptimizeProgress) => void = () => {}
    ) {
      const record = (command: JobCommand) =>
        step(jobId, command).pipe(
          Effect.tap(({ status, version }) =>
            Effect.sync(() => onProgress({ _tag: "OptimizeRecorded", jobId, status, version }))
          ),
          Effect.mapError(recordingFailed(jobId))
        )
      const { artifact, keptFp32, report } = outcome
      if (outcome.measured !== undefined) yield* record({ _tag: "RecordSensitivities", ...outcome.measured })
      if (outcome.assigned !== undefined) yield* record({ _tag: "AssignPrecision", ...outcome.assigned })
      yield* record(
        outcome.refused !== undefined
          ? { _tag: "Refuse", report, reasons: outcome.refused }
          : { _tag: "Complete", artifact, report, keptFp32 }
      )
      const finished: OptimizeFinished = {
        _tag: "OptimizeFinished",
        jobId,
        status: outcome.refused === undefined ? "completed" : "refused",
        artifact,
        report,
        reasons: outcome.refused ?? [],
        keptFp32,
        ...(outcome.assigned === undefined ? {} : { bits: outcome.assigned.bits })
      }
      onProgress(finished)
      return finished
    })

    /**
     * Runs the pipeline on `request.model`, recording the job as it goes: `onProgress` sees each
     * pipeline step, each recorded job step and the outcome. A refused result succeeds (with
     * `result.refused`); a pipeline error records the job as failed and fails with its one line.
     */
    const run = Effect.fn("Optimizer.run")(function*(
      request: OptimizeRequest,
      onProgress: (progress: OptimizeProgress) => void = () => {}
    ) {
      const jobId = request.jobId ?? `optimize-${crypto.randomBytes(6).toString("hex")}`
      const failed = (reason: string) => new OptimizeRunFailed({ jobId, reason })
      const model = {
        sha256: sha256Hex(request.model),
        size: request.model.length,
        ...(request.name === undefined ? {} : { name: request.name })
      }
      yield* begin(jobId, jobSpecOf(model, request.settings, request.calibration), onProgress)
      const result = yield* Effect.tryPromise({
        try: () =>
          optimize(request.model, {
            ...pipelineOptionsOf(request.settings, request.feeds),
            onProgress: (name, done, total) => onProgress({ _tag: "OptimizeStep", step: name, done, total })
          }),
        catch: (error) => failed(firstLine(error))
      }).pipe(
        Effect.tapError((error) => Effect.ignore(step(jobId, { _tag: "Fail", reason: error.reason })))
      )
      const finished = yield* finish(jobId, runOutcomeOf(result), onProgress)
      return { jobId, result, finished } satisfies OptimizeOutcome
    })

    /**
     * Records what a process running the pipeline on the node's behalf reports of a job (runReported):
     * `onProgress` sees what `run` would tell of it. A failure is recorded, and the caller fails the job.
     */
    const recordReport = (report: JobReport, onProgress: (progress: OptimizeProgress) => void = () => {}) => {
      switch (report._tag) {
        case "JobStarted":
          return begin(report.jobId, report.spec, onProgress)
        case "JobStep":
          return Effect.sync(() =>
            onProgress({ _tag: "OptimizeStep", step: report.step, done: report.done, total: report.total })
          )
        case "JobEnded":
          return Effect.asVoid(finish(report.jobId, report.outcome, onProgress))
        case "JobFailed":
          return Effect.ignore(fail(report.jobId, report.reason))
      }
    }

    return {
      request,
      recordSensitivities,
      assignPrecision,
      complete,
      refuse,
      fail,
      finish,
      run,
      recordReport,
      job,
      history
    } as const
  })
}) {}
