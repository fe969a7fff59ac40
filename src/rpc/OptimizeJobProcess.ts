/**
 * Entry point of the child process that runs one optimizer job for a node (OptimizeJob.ts): it reads
 * the model and its tokenizer from the node's blob store, makes the calibration and held-out inputs,
 * runs the pipeline, puts the optimized model in the store, and reports each step; then it exits.
 */
import { Effect, Stream } from "effect"
import { jobSpecOf, pipelineOptionsOf, runOutcomeOf, sha256Hex } from "../actors/optimizer/RunRecord.js"
import { readModel } from "../compute/onnx/OnnxModel.js"
import { randomFeedSets, textFeedSets } from "../compute/optimize/Feeds.js"
import { optimize } from "../compute/optimize/Optimize.js"
import { BlobStore } from "../content/BlobStore.js"
import { oneLine, report, serveOrder } from "../node/ChildReports.js"
import { loadModel } from "./ModelSources.js"
import type { OptimizeJobOrder, OptimizeJobReport } from "./OptimizeJob.js"

const send: (message: OptimizeJobReport) => Effect.Effect<void> = report

const runJob = (order: OptimizeJobOrder) =>
  Effect.gen(function*() {
    const { calibrationTexts, settings } = order
    const model = yield* Effect.mapError(loadModel(order.files), (error) => error.reason)
    const graph = yield* Effect.try({
      try: () => readModel(model.bytes),
      catch: (error) => `${model.id}: ${oneLine(error)}`
    })
    const feeds = model.tokenizer === undefined || calibrationTexts.length === 0
      ? randomFeedSets(graph)
      : textFeedSets(graph, model.tokenizer, calibrationTexts)
    const spec = jobSpecOf(
      { sha256: sha256Hex(model.bytes), size: model.bytes.length, name: model.id },
      settings,
      order.calibration
    )
    yield* send({ _tag: "JobStarted", spec })
    const failed = (reason: string) => Effect.zipRight(send({ _tag: "JobFailed", reason }), Effect.fail(reason))
    const result = yield* Effect.tryPromise({
      try: () =>
        optimize(model.bytes, {
          ...pipelineOptionsOf(settings, feeds),
          onProgress: (step, done, total) => void Effect.runPromise(send({ _tag: "Step", step, done, total }))
        }),
      catch: oneLine
    }).pipe(Effect.catchAll(failed))
    if (result.refused === undefined) {
      const store = yield* BlobStore
      yield* store.put(Stream.make(result.bytes)).pipe(
        Effect.catchAll((error) => failed(`storing the optimized model: ${error.message}`))
      )
    }
    yield* send({ _tag: "JobEnded", outcome: runOutcomeOf(result) })
  }).pipe(Effect.provide(BlobStore.layer(order.blobs)))

serveOrder(runJob)
