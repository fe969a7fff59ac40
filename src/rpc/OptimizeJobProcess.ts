/**
 * Entry point of the child process that runs one optimizer job for a node (OptimizeJob.ts): it reads
 * the model and its tokenizer from the node's blob store, makes the calibration and held-out inputs,
 * runs the pipeline, puts the optimized model in the store, and reports each step; then it exits.
 */
import { Effect, Stream } from "effect"
import { runReported } from "../actors/optimizer/ReportedRun.js"
import type { JobReport } from "../actors/optimizer/RunRecord.js"
import { runOutcomeOf } from "../actors/optimizer/RunRecord.js"
import { readModel } from "../compute/onnx/OnnxModel.js"
import { randomFeedSets, textFeedSets } from "../compute/optimize/Feeds.js"
import { BlobStore } from "../content/BlobStore.js"
import { oneLine, report, serveOrder } from "../node/ChildReports.js"
import { loadModel } from "./ModelSources.js"
import type { OptimizeJobOrder } from "./OptimizeJob.js"

const send: (message: JobReport) => Effect.Effect<void> = report

const runJob = (order: OptimizeJobOrder) =>
  Effect.gen(function*() {
    const { calibrationTexts, jobId } = order
    const model = yield* Effect.mapError(loadModel(order.files), (error) => error.reason)
    const graph = yield* Effect.try({
      try: () => readModel(model.bytes),
      catch: (error) => `${model.id}: ${oneLine(error)}`
    })
    const feeds = model.tokenizer === undefined || calibrationTexts.length === 0
      ? randomFeedSets(graph)
      : textFeedSets(graph, model.tokenizer, calibrationTexts)
    const result = yield* runReported({
      jobId,
      model: model.bytes,
      name: model.id,
      settings: order.settings,
      feeds: () => feeds,
      ...(order.calibration === undefined ? {} : { calibration: order.calibration })
    }, send)
    if (result.refused === undefined) {
      const store = yield* BlobStore
      yield* store.put(Stream.make(result.bytes)).pipe(
        Effect.catchAll((error) => {
          const reason = `storing the optimized model: ${error.message}`
          return Effect.zipRight(send({ _tag: "JobFailed", jobId, reason }), Effect.fail(reason))
        })
      )
    }
    yield* send({ _tag: "JobEnded", jobId, outcome: runOutcomeOf(result) })
  }).pipe(Effect.provide(BlobStore.layer(order.blobs)))

serveOrder(runJob)
