/**
 * Entry point of the child process that prepares a node's first-start models (FirstStartModels.ts): it
 * reads each model, quantizes and measures it, stores the files in the node's blob store and describes
 * them in a manifest naming the node as publisher. It reports each step to the node, which records the
 * optimizer jobs, signs the manifests and publishes them: the journal and the key stay with the node.
 * The process then exits, and what reading, quantizing and hashing ten-megabyte models allocated goes
 * with it (in the node, the allocator kept it: 149 to 162 MB after the first start, against 97 MB
 * for a node that published nothing).
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { runReported } from "../actors/optimizer/ReportedRun.js"
import { runOutcomeOf, sha256Hex } from "../actors/optimizer/RunRecord.js"
import { readModel } from "../compute/onnx/OnnxModel.js"
import { randomFeedSets } from "../compute/optimize/Feeds.js"
import { manifestReport } from "../compute/optimize/ManifestReport.js"
import { BlobStore } from "../content/BlobStore.js"
import { describeFiles } from "../content/Publish.js"
import { report, serveOrder } from "../node/ChildReports.js"
import type { FirstStartOrder, FirstStartReport } from "./FirstStartModels.js"
import { FIRST_START_VERSION, firstStartJobId } from "./FirstStartModels.js"

const send: (message: FirstStartReport) => Effect.Effect<void> = report

const prepare = (order: FirstStartOrder) =>
  Effect.gen(function*() {
    for (const entry of order.entries) {
      let model = entry.model
      let measured: ReturnType<typeof manifestReport> | undefined
      if (entry.precision !== "FP32") {
        const original = new Uint8Array(fs.readFileSync(entry.model))
        const settings = { quantization: entry.precision, blockSize: 32 } as const
        const jobId = firstStartJobId(entry.id)
        const feeds = () => randomFeedSets(readModel(original))
        const result = yield* runReported({ jobId, model: original, name: entry.family, settings, feeds }, send)
        yield* send({ _tag: "JobEnded", jobId, outcome: runOutcomeOf(result) })
        measured = manifestReport(result, {
          ...settings,
          optimizerJob: jobId,
          baseModel: { sha256: sha256Hex(original), id: entry.family, version: FIRST_START_VERSION }
        })
        // The ONNX file is named model.onnx in every manifest; the blob store keeps its own copy.
        model = path.join(order.staging, entry.id, "model.onnx")
        fs.mkdirSync(path.dirname(model), { recursive: true })
        fs.writeFileSync(model, result.bytes)
      }
      const manifest = yield* describeFiles({
        files: [model, ...entry.companions],
        name: entry.id,
        id: entry.id,
        family: entry.family,
        version: FIRST_START_VERSION,
        type: entry.type,
        quantization: entry.precision,
        ...(measured === undefined ? {} : { optimization: measured.optimization, benchmarks: measured.benchmarks }),
        license: entry.license,
        expiresInDays: 365,
        publisher: order.publisher
      }).pipe(Effect.mapError((error) => `${entry.id}: ${error.message}`))
      yield* send({ _tag: "Described", id: entry.id, precision: entry.precision, manifest })
    }
    fs.rmSync(order.staging, { recursive: true, force: true })
  }).pipe(Effect.provide(BlobStore.layer(order.blobs)))

serveOrder(prepare)
