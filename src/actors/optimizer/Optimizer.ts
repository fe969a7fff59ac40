/**
 * The optimizer service: records each optimization job's steps on its entity (requested, layer
 * sensitivities, precision per layer, completed / refused / failed), and reads a job's state and
 * full history back for audits.
 */
import { Effect } from "effect"
import { makeStreamId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import { Journal } from "../../events/Journal.js"
import type { JobCommand, JobSpec } from "./OptimizerJob.js"
import { OptimizerJob } from "./OptimizerJob.js"

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

    return { request, recordSensitivities, assignPrecision, complete, refuse, fail, job, history } as const
  })
}) {}
