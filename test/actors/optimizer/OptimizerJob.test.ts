import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Optimizer } from "../../../src/actors/optimizer/Optimizer.js"
import {
  JobCompleted,
  JobRefused,
  JobRequested,
  OptimizerJob,
  PrecisionAssigned,
  SensitivitiesMeasured
} from "../../../src/actors/optimizer/OptimizerJob.js"
import type { JobSpec } from "../../../src/actors/optimizer/OptimizerJob.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import { memoryKernel } from "../../support/Layers.js"

const spec = DeciderSpecification.for(OptimizerJob.decider)
const model = { sha256: "ab".repeat(32), size: 1_000_000 }
const auto: JobSpec = { model, quantization: "auto", sizeBudgetBytes: 400_000 }
const int8: JobSpec = { model, quantization: "INT8", qualityBar: { cosine: 0.99 } }
const layers = [{ layer: "fc1", parameters: 1000, damage: { "4": 0.1, "8": 0.01 } }]
const assigned = PrecisionAssigned.make({
  bits: { fc1: 8 },
  estimatedBytes: 1004,
  budgetBytes: 2000,
  estimatedDamage: 0.01
})
const artifact = { sha256: "cd".repeat(32), size: 300_000 }

describe("optimizer job decider", () => {
  it.effect("records an automatic job step by step: request, sensitivities, precision, result", () =>
    spec
      .given([JobRequested.make({ spec: auto }), SensitivitiesMeasured.make({ metric: "1-cosine", layers })])
      .when({
        _tag: "AssignPrecision",
        bits: { fc1: 8 },
        estimatedBytes: 1004,
        budgetBytes: 2000,
        estimatedDamage: 0.01
      })
      .then([assigned]))

  it.effect("an automatic job cannot complete before its precision is assigned", () =>
    spec
      .given([JobRequested.make({ spec: auto })])
      .when({ _tag: "Complete", artifact, report: { sizeRatio: 0.3 }, keptFp32: [] })
      .thenFails((e) => e._tag === "JobStepRejected" && e.status === "requested"))

  it.effect("a fixed-mode job completes directly with its digests and report", () =>
    spec
      .given([JobRequested.make({ spec: int8 })])
      .when({ _tag: "Complete", artifact, report: { sizeRatio: 0.26, cosine: 0.999 }, keptFp32: ["Conv_0"] })
      .then([JobCompleted.make({ artifact, report: { sizeRatio: 0.26, cosine: 0.999 }, keptFp32: ["Conv_0"] })]))

  it.effect("sensitivities belong to automatic jobs only", () =>
    spec.given([JobRequested.make({ spec: int8 })]).when({ _tag: "RecordSensitivities", metric: "1-cosine", layers })
      .thenFails())

  it.effect("a finished job takes no more steps", () =>
    spec
      .given([
        JobRequested.make({ spec: int8 }),
        JobRefused.make({ report: { cosine: 0.9 }, reasons: ["cosine 0.900 < 0.99"] })
      ])
      .when({ _tag: "Fail", reason: "late" })
      .thenFails((e) => e.message === "optimizer job: cannot Fail a job that is refused"))

  it.effect("a job id is requested once", () =>
    spec.given([JobRequested.make({ spec: int8 })]).when({ _tag: "Request", spec: int8 }).thenFails())
})

describe("optimizer service", () => {
  it.effect("keeps an automatic job's decisions in the log, in order, and a retried step once", () =>
    Effect.gen(function*() {
      const optimizer = yield* Optimizer
      yield* optimizer.request("job-1", auto)
      yield* optimizer.recordSensitivities("job-1", "1-cosine", layers)
      yield* optimizer.assignPrecision("job-1", {
        bits: { fc1: 8 },
        estimatedBytes: 1004,
        budgetBytes: 2000,
        estimatedDamage: 0.01
      })
      yield* optimizer.assignPrecision("job-1", {
        bits: { fc1: 8 },
        estimatedBytes: 1004,
        budgetBytes: 2000,
        estimatedDamage: 0.01
      })
      const done = yield* optimizer.complete("job-1", {
        artifact,
        report: { sizeRatio: 0.3, cosine: 0.995 },
        keptFp32: []
      })
      expect(done.status).toBe("completed")
      const history = yield* optimizer.history("job-1")
      expect(history.map((envelope) => envelope.eventType)).toEqual([
        "JobRequested",
        "SensitivitiesMeasured",
        "PrecisionAssigned",
        "JobCompleted"
      ])
      expect((yield* optimizer.job("job-1")).bits).toEqual({ fc1: 8 })
    }).pipe(Effect.provide(Optimizer.Default.pipe(Layer.provideMerge(memoryKernel())))))
})
