/**
 * Optimize a model with the library, then publish the result to a node's registry, signed.
 *
 *   node --import tsx examples/optimize-then-publish.ts NODE_URL MODEL_FOLDER KEY_FILE [INT8|INT4|...]
 *
 * The `Optimizer` service runs here, on an in-memory journal: it quantizes the model, calibrates and
 * validates it on texts through the model's tokenizer, and refuses a result whose output cosine
 * against FP32 falls under 0.98. The optimized file, with the folder's tokenizer and configs, becomes
 * a manifest (its quality report included) signed with the key in KEY_FILE (made on first use), and
 * is pushed to the node, which stores the blobs and lists `<folder>-<mode>` version 1.0.0.
 */
import { memoryKernel, Optimizer, OptimizeSettings, textFeedSets } from "edge-net"
import { manifestReport, readModel, tokenizerFromFile } from "edge-net/compute"
import { BlobStore, buildManifest, NodeKey, pushToRegistry } from "edge-net/models"
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const [url, folder, keyFile, mode = "INT8"] = process.argv.slice(2)
if (url === undefined || folder === undefined || keyFile === undefined) {
  console.error("usage: optimize-then-publish.ts NODE_URL MODEL_FOLDER KEY_FILE [INT8|INT4|GPTQ|AWQ|FP16]")
  process.exit(2)
}

const calibrationTexts = [
  "The ship sailed out of the harbour at dawn, its sails full of the morning wind.",
  "A small model runs at the edge of the network, close to the people who use it.",
  "She opened the old book and read the first page aloud to the children.",
  "Rain fell on the city all night, and in the morning the streets were clean.",
  "The committee will meet on Tuesday to decide the budget for the coming year."
]

const Quantization = OptimizeSettings.fields.quantization
// A mode that is not one of the optimizer's fails here, in one line, before any work.
if (!Schema.is(Quantization)(mode)) {
  console.error(`unknown quantization ${mode}: expected one of ${Quantization.literals.join(", ")}`)
  process.exit(2)
}
const settings: OptimizeSettings = { quantization: mode, qualityBar: { cosine: 0.98 } }

const program = Effect.gen(function*() {
  const modelFile = ["onnx/model.onnx", "model.onnx"].map((file) => path.join(folder, file)).find((file) =>
    fs.existsSync(file)
  )
  if (modelFile === undefined) return yield* Effect.dieMessage(`no model.onnx or onnx/model.onnx in ${folder}`)
  const bytes = new Uint8Array(fs.readFileSync(modelFile))
  const tokenizer = yield* tokenizerFromFile(path.join(folder, "tokenizer.json"))
  const optimizer = yield* Optimizer
  const { jobId, result } = yield* optimizer.run(
    {
      model: bytes,
      name: path.basename(folder),
      settings,
      feeds: textFeedSets(readModel(bytes), tokenizer, calibrationTexts)
    },
    (progress) => {
      if (progress._tag === "OptimizeRecorded") console.log(`job ${progress.jobId}: ${progress.status}`)
    }
  )
  if (result.refused !== undefined) return yield* Effect.dieMessage(`refused: ${result.refused.join("; ")}`)

  const out = fs.mkdtempSync(path.join(os.tmpdir(), "optimized-"))
  fs.mkdirSync(path.join(out, "onnx"))
  fs.writeFileSync(path.join(out, "onnx", "model.onnx"), result.bytes)
  const key = yield* NodeKey
  const measured = manifestReport(result, { quantization: settings.quantization, optimizerJob: jobId })
  const name = `${path.basename(path.resolve(folder))}-${settings.quantization.toLowerCase()}`
  const manifest = yield* buildManifest({
    files: [
      path.join(out, "onnx", "model.onnx"),
      ...["tokenizer.json", "tokenizer_config.json", "config.json"].map((file) => path.join(folder, file))
        .filter((file) => fs.existsSync(file))
    ],
    name,
    version: "1.0.0",
    type: "text-generation",
    license: "MIT",
    optimization: measured.optimization,
    benchmarks: measured.benchmarks,
    expiresInDays: 365,
    signer: { keyId: path.basename(keyFile, ".key"), publicKey: key.publicKey, sign: (message) => key.sign(message) }
  })
  const uploaded = yield* pushToRegistry(url, manifest)
  console.log(
    `published ${manifest.id}@${manifest.version}: ${result.report.originalBytes} -> ${result.report.optimizedBytes} bytes, ` +
      `cosine ${result.report.cosine.toFixed(5)}, ${uploaded.length} file(s) uploaded`
  )
})

const runtime = Layer.mergeAll(
  Optimizer.Default.pipe(Layer.provide(memoryKernel)),
  NodeKey.fromFile(keyFile),
  BlobStore.layer({ root: fs.mkdtempSync(path.join(os.tmpdir(), "publish-store-")) })
)

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(runtime))).catch((error: unknown) => {
  console.error(String(error))
  process.exit(1)
})
