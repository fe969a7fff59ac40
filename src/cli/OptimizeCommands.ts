/**
 * `edge-net-models optimize`: quantize / prune an ONNX model, validate it against the original on
 * held-out inputs, print the report, record the job in the node's journal when a node data directory
 * is at hand, and with `--publish` sign the result and register it with a registry node.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as v8 from "node:v8"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import type { OptimizeSettings } from "../actors/optimizer/OptimizeRun.js"
import { parseCalibrationJsonl, parseNpy } from "../compute/Calibration.js"
import { readModelFile, writeModelFile } from "../compute/onnx/ExternalData.js"
import type { OnnxModel } from "../compute/onnx/OnnxModel.js"
import { OnnxError, readModel, writeModel } from "../compute/onnx/OnnxModel.js"
import type { SimplifyReport } from "../compute/onnx/Simplify.js"
import { modelInputs, randomFeedSets, sampleFeedSets, textFeedSets } from "../compute/optimize/Feeds.js"
import { manifestReport } from "../compute/optimize/ManifestReport.js"
import type { OptimizeResult, Quantization } from "../compute/optimize/Optimize.js"
import { isCausalLanguageModel } from "../compute/optimize/Optimize.js"
import { tokenizerFromFile } from "../compute/tokenizer/TokenizerFile.js"
import { ManifestId, SemVer } from "../content/Manifest.js"
import { parseByteSize } from "../content/ModelsConfig.js"
import { buildManifest, idFromName, pushToRegistry } from "../content/Publish.js"
import { sha256, toHex } from "../content/Sha256.js"
import { CliError } from "./CliError.js"
import { configOption, registryOption, registryUrl } from "./ModelsContext.js"
import { withTrust } from "./ModelsTrust.js"
import { jobServices } from "./NodeAccess.js"
import { formatBytes, stepReporter } from "./Progress.js"
import { keyOption, signerFor } from "./PublishCommands.js"
import { dataOption, jsonOption, output } from "./Shared.js"

const fail = (message: string) => new CliError({ message })

/** A file next to the model, or one directory up (for the `<model>/onnx/model.onnx` layout). */
const besideModel = (modelFile: string, name: string) =>
  [path.join(path.dirname(modelFile), name), path.join(path.dirname(modelFile), "..", name)].find((file) =>
    fs.existsSync(file)
  )

/**
 * The most one model may take before the optimizer loads it: it holds the original, the rewritten
 * model and two ONNX Runtime sessions at once, so 40% of this machine's memory, and never more than
 * V8's heap limit.
 */
const memoryLimit = () => {
  const share = Math.floor(0.4 * os.totalmem())
  const heap = v8.getHeapStatistics().heap_size_limit
  return share <= heap
    ? { maxBytes: share, limitDescription: `40% of this machine's ${formatBytes(os.totalmem())} of memory` }
    : { maxBytes: heap, limitDescription: "V8's heap limit" }
}

/** The model with its external data, and the one buffer `optimize()` takes (ONNX Runtime loads from it). */
const loadModel = (modelFile: string) =>
  Effect.gen(function*() {
    const model = yield* readModelFile(modelFile, memoryLimit()).pipe(Effect.mapError((error) => fail(error.message)))
    const bytes = yield* Effect.try({
      try: () => writeModel(model),
      catch: (error) =>
        fail(
          error instanceof OnnxError && error.kind === "TooLarge"
            ? `${modelFile}: the model takes over 2 GiB with its external data inlined, and the optimizer validates models in ONNX Runtime from one protobuf buffer, which is limited to 2 GiB`
            : `${modelFile}: ${error instanceof Error ? error.message : String(error)}`
        )
    })
    return { model, bytes }
  })

/** Held-out and calibration inputs: texts through the model's tokenizer, `.npy` tensors, or seeded random tensors. */
const feedsFor = (model: OnnxModel, modelFile: string, calibration: Option.Option<string>) =>
  Effect.gen(function*() {
    if (Option.isNone(calibration)) return { feeds: randomFeedSets(model), calibration: undefined }
    const file = calibration.value
    const bytes = new Uint8Array(fs.readFileSync(file))
    const digest = crypto.createHash("sha256").update(bytes).digest("hex")
    if (file.endsWith(".jsonl")) {
      const tokenizerFile = besideModel(modelFile, "tokenizer.json")
      if (tokenizerFile === undefined) {
        return yield* Effect.fail(fail(`text calibration data needs the model's tokenizer.json next to ${modelFile}`))
      }
      const tokenizer = yield* tokenizerFromFile(tokenizerFile).pipe(Effect.mapError((error) => fail(error.message)))
      const texts = yield* Effect.try({
        try: () => parseCalibrationJsonl(new TextDecoder().decode(bytes), file),
        catch: (error) => fail((error as Error).message)
      })
      return { feeds: textFeedSets(model, tokenizer, texts), calibration: { sha256: digest, samples: texts.length } }
    }
    if (file.endsWith(".npy")) {
      const tensor = yield* Effect.try({
        try: () => parseNpy(bytes, file),
        catch: (error) => fail((error as Error).message)
      })
      const input = modelInputs(model)[0]
      if (tensor.dtype !== "float32") {
        return yield* Effect.fail(fail(`${file}: expected float32 samples for input ${input?.name ?? "?"}`))
      }
      const feeds = sampleFeedSets(model, tensor.data as Float32Array, tensor.shape)
      if (typeof feeds === "string") return yield* Effect.fail(fail(`${file}: ${feeds}`))
      return { feeds, calibration: { sha256: digest, samples: tensor.shape[0] ?? 1 } }
    }
    return yield* Effect.fail(fail(`${file}: calibration data is a .jsonl of texts or a .npy of samples`))
  })

const describeSimplified = (simplified: SimplifyReport) =>
  `  simplified the graph: ${simplified.nodesBefore} -> ${simplified.nodesAfter} nodes (${simplified.constantsPromoted} Constant nodes made initializers, ` +
  `${simplified.folded} folded, ${simplified.duplicateNodes} duplicate nodes and ${simplified.duplicateInitializers} duplicate initializers merged, ` +
  `${simplified.identitiesRemoved} Identity and ${simplified.deadNodesRemoved} dead nodes dropped, ${simplified.unusedInitializersRemoved} unused initializers)`

const signed = (value: number, digits: number) => `${value >= 0 ? "+" : ""}${value.toFixed(digits)}`

const describe = (result: OptimizeResult, file: string) => {
  const { report } = result
  return [
    `${file}: ${formatBytes(report.originalBytes)} -> ${formatBytes(report.optimizedBytes)} (${
      (report.sizeRatio * 100).toFixed(1)
    }%)`,
    `  quality vs FP32 on held-out inputs: cosine ${report.cosine.toFixed(5)}, max error ${
      report.maxError.toPrecision(3)
    }, top-1 ${(report.top1 * 100).toFixed(1)}%`,
    ...(report.perplexity === undefined || report.baselinePerplexity === undefined ||
        report.perplexityDelta === undefined
      ? []
      : [
        `  held-out perplexity ${report.perplexity.toFixed(3)} (FP32 ${report.baselinePerplexity.toFixed(3)}, ${
          signed(report.perplexityDelta, 4)
        })`
      ]),
    `  latency in ${result.runtime} ${report.latencyMs.toFixed(2)} ms (FP32 ${
      report.baselineLatencyMs.toFixed(2)
    } ms, ${report.latencyRatio.toFixed(2)}x); took ${report.quantizationSeconds.toFixed(1)} s`,
    ...(result.simplified === undefined ? [] : [describeSimplified(result.simplified)]),
    `  quantized ${result.rewrite.quantized.length} weight(s); kept FP32: ${
      result.rewrite.keptFp32.length === 0
        ? "none"
        : result.rewrite.keptFp32.map((k) => `${k.node} (${k.reason})`).join(", ")
    }`,
    ...(result.assignment === undefined ?
      [] :
      [
        `  precision per layer (budget ${formatBytes(result.assignment.budgetBytes)}, estimated ${
          formatBytes(result.assignment.estimatedBytes)
        }): ` +
        Object.entries(result.assignment.bits).map(([layer, bits]) => `${layer}=${bits}`).join(" ")
      ])
  ].join("\n")
}

/** The manifest type of a model: text-generation for a causal LM, embedding for other token-id models. */
const inferredType = (model: OnnxModel): string | undefined =>
  isCausalLanguageModel(model)
    ? "text-generation"
    : modelInputs(model).some((input) => input.name === "input_ids")
    ? "embedding"
    : undefined

/** `tiny-lm-int8` for models/reference/tiny-lm/model.onnx: the file's name, or its folder's when the file is just `model`. */
const defaultName = (modelFile: string, quantization: Quantization) => {
  const folder = path.resolve(path.dirname(modelFile))
  const base = path.basename(modelFile).replace(/\.onnx$/, "")
  const named = base !== "model"
    ? base
    : path.basename(folder) === "onnx"
    ? path.basename(path.dirname(folder))
    : path.basename(folder)
  return `${named}-${quantization.toLowerCase()}`
}

const isSemVer = Schema.is(SemVer)
const isManifestId = Schema.is(ManifestId)

export const optimizeCommand = Command.make(
  "optimize",
  {
    model: Args.file({ name: "model.onnx", exists: "yes" }),
    quantization: Options.choice("quantization", [
      "INT8",
      "INT8_DYNAMIC",
      "INT4",
      "GPTQ",
      "AWQ",
      "FP16",
      "auto",
      "none"
    ]).pipe(Options.withDefault("INT8" as const)),
    blockSize: Options.choice("block-size", ["32", "64", "128"]).pipe(Options.withDefault("32" as const)),
    calibration: Options.file("calibration-data", { exists: "yes" }).pipe(
      Options.withDescription("JSONL of {\"text\": ...} (with the model's tokenizer.json) or a .npy of input samples"),
      Options.optional
    ),
    pruning: Options.choice("pruning", ["magnitude", "block"]).pipe(Options.optional),
    simplify: Options.boolean("onnx-simplify").pipe(
      Options.withDescription(
        "simplify the graph first: Constant nodes to initializers, constants folded, duplicate nodes and initializers merged, Identity and dead nodes dropped"
      )
    ),
    sparsity: Options.float("sparsity").pipe(Options.withDefault(0.3)),
    sizeBudget: Options.text("size-budget").pipe(
      Options.withDescription("auto: the size the optimized file may take, e.g. 2MB"),
      Options.optional
    ),
    minCosine: Options.float("min-cosine").pipe(
      Options.withDescription("refuse a result whose output cosine vs FP32 is lower"),
      Options.optional
    ),
    maxPerplexityDelta: Options.float("max-perplexity-delta").pipe(
      Options.withDescription(
        "language models: refuse a result whose held-out perplexity rises more than this over FP32"
      ),
      Options.optional
    ),
    target: Options.choice("target", ["browser", "node"]).pipe(
      Options.withDescription(
        "where the model will run: the report validates and times it in onnxruntime-web (browser) or onnxruntime-node"
      ),
      Options.withDefault("node" as const)
    ),
    output: Options.file("output").pipe(Options.optional),
    publish: Options.boolean("publish").pipe(
      Options.withDescription(
        "sign the result and register it with a registry node, as `publish` does (needs --version)"
      )
    ),
    name: Options.text("name").pipe(
      Options.withDescription(
        "--publish: model name (default: the source's file or folder name plus the mode, e.g. tiny-lm-int8)"
      ),
      Options.optional
    ),
    version: Options.text("model-version").pipe(
      Options.withDescription("--publish: semantic version of this release (also --version)"),
      Options.optional
    ),
    type: Options.text("type").pipe(
      Options.withDescription(
        "--publish: text-generation, embedding, vision, ... (default: text-generation for input_ids + logits, embedding for other input_ids models)"
      ),
      Options.optional
    ),
    id: Options.text("id").pipe(
      Options.withDescription("--publish: model id (default: from --name)"),
      Options.optional
    ),
    license: Options.text("license").pipe(Options.withDefault("unknown")),
    key: keyOption,
    registry: registryOption,
    config: configOption,
    data: dataOption,
    json: jsonOption
  },
  (args) =>
    Effect.gen(function*() {
      const quantization = args.quantization as Quantization
      const name = Option.getOrElse(args.name, () => defaultName(args.model, quantization))
      const id = Option.getOrElse(args.id, () => idFromName(name))
      const version = Option.getOrUndefined(args.version)
      // Everything --publish needs is checked before any work, so a bad release line writes nothing.
      if (args.publish) {
        if (version === undefined) {
          return yield* Effect.fail(
            fail("optimize --publish needs --version (the release's semantic version, e.g. 1.0.0)")
          )
        }
        if (!isSemVer(version)) {
          return yield* Effect.fail(
            fail(`invalid --version "${version}": expected a semantic version such as 1.0.0 or 1.0.0-rc.1`)
          )
        }
        if (!isManifestId(id)) {
          return yield* Effect.fail(
            fail(
              `invalid model id "${id}": 1-128 lowercase letters, digits or . _ -, starting with a letter or digit (pass --id)`
            )
          )
        }
      }
      const budget = Option.map(args.sizeBudget, (text) => parseByteSize(text) ?? Number.NaN)
      if (Option.isSome(budget) && !Number.isFinite(budget.value)) {
        return yield* Effect.fail(
          fail(`invalid --size-budget "${Option.getOrElse(args.sizeBudget, () => "")}": expected e.g. 2MB or 512KiB`)
        )
      }
      const { model, bytes } = yield* loadModel(args.model)
      const type = Option.getOrUndefined(args.type) ?? inferredType(model)
      if (args.publish && type === undefined) {
        return yield* Effect.fail(
          fail(`cannot tell what kind of model ${args.model} is: pass --type (vision, ocr, audio, ...)`)
        )
      }
      const release = args.publish && version !== undefined && type !== undefined ? { version, type } : undefined
      const qualityBar = {
        ...(Option.isSome(args.minCosine) ? { cosine: args.minCosine.value } : {}),
        ...(Option.isSome(args.maxPerplexityDelta) ? { maxPerplexityDelta: args.maxPerplexityDelta.value } : {})
      }
      const settings: OptimizeSettings = {
        quantization,
        blockSize: Number(args.blockSize) as 32 | 64 | 128,
        simplify: args.simplify,
        target: args.target,
        ...(Option.isSome(args.pruning) ? { pruning: { method: args.pruning.value, sparsity: args.sparsity } } : {}),
        ...(Option.isSome(budget) ? { sizeBudgetBytes: budget.value } : {}),
        ...(Object.keys(qualityBar).length === 0 ? {} : { qualityBar })
      }

      const run = Effect.gen(function*() {
        const { calibration, feeds } = yield* feedsFor(model, args.model, args.calibration)
        const progress = stepReporter(args.json)
        const { layer, recorded } = yield* jobServices(args.data)
        const { jobId, result } = yield* Effect.flatMap(
          Optimizer,
          (optimizer) =>
            optimizer.run({ model: bytes, name: path.basename(args.model), settings, feeds, calibration }, (event) => {
              if (event._tag === "OptimizeStep") progress.update(event.step, event.done, event.total)
            })
        ).pipe(
          Effect.provide(layer),
          Effect.mapError((error) => fail(error.message)),
          Effect.ensuring(Effect.sync(progress.done))
        )
        const target = Option.getOrElse(args.output, () =>
          args.model.replace(/\.onnx$/, "") + `.${quantization.toLowerCase()}.onnx`)
        if (result.refused !== undefined) {
          return yield* Effect.fail(
            fail(
              `refused: ${result.refused.join("; ")} (size ${(result.report.sizeRatio * 100).toFixed(1)}%, cosine ${
                result.report.cosine.toFixed(5)
              })`
            )
          )
        }
        yield* writeModelFile(target, readModel(result.bytes)).pipe(Effect.mapError((error) =>
          fail(error.message)
        ))
        return { result, target, ...(recorded ? { jobId } : {}) }
      })

      const view = ({ result, target, jobId }: Effect.Effect.Success<typeof run>) => {
        const { bytes: _, ...rest } = result
        return { event: "done", output: target, jobId, ...rest }
      }
      const text = ({ result, target, jobId }: Effect.Effect.Success<typeof run>) =>
        `${describe(result, target)}${jobId === undefined ? "" : `\n  recorded as optimizer job ${jobId}`}`

      if (release === undefined) {
        const done = yield* run
        return yield* output(args.json, view(done), () => text(done))
      }
      yield* withTrust(
        args.config,
        Effect.gen(function*() {
          const signer = yield* signerFor(args.key)
          const registry = yield* registryUrl(args.registry)
          const done = yield* run
          const measured = manifestReport(done.result, {
            quantization,
            blockSize: Number(args.blockSize) as 32 | 64 | 128,
            ...(settings.pruning === undefined ? {} : { pruning: settings.pruning }),
            ...(done.jobId === undefined ? {} : { optimizerJob: done.jobId }),
            baseModel: { sha256: toHex(sha256(bytes)) }
          })
          const files = [
            done.target,
            ...["tokenizer.json", "config.json"].flatMap((file) => besideModel(args.model, file) ?? [])
          ]
          const manifest = yield* buildManifest({
            files,
            name,
            id,
            version: release.version,
            type: release.type,
            license: args.license,
            optimization: measured.optimization,
            benchmarks: measured.benchmarks,
            expiresInDays: 365,
            signer
          })
          const uploaded = yield* pushToRegistry(registry, manifest)
          const line =
            `published ${manifest.id}@${manifest.version} to ${registry} (signed by ${signer.keyId}; uploaded ${uploaded.length} of ${
              Object.keys(manifest.artifacts).length
            } file(s))`
          yield* output(args.json, { ...view(done), published: { registry, uploaded, manifest } }, () =>
            `${text(done)}\n  ${line}`)
        })
      )
    })
).pipe(
  Command.withDescription("quantize / prune an ONNX model, validate it against the original, and optionally publish it")
)
