/**
 * `edge-net-models optimize`: quantize / prune an ONNX model, validate it against the original on
 * held-out inputs, print the report, and record the job (its automatic decisions included) in the
 * node's journal when a node data directory is at hand.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Layer, Option } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { parseCalibrationJsonl, parseNpy } from "../compute/Calibration.js"
import { readModel } from "../compute/onnx/OnnxModel.js"
import { parseByteSize } from "../content/ModelsConfig.js"
import { randomFeeds, textFeeds } from "../compute/optimize/Feeds.js"
import type { OptimizeResult, Quantization } from "../compute/optimize/Optimize.js"
import { optimize } from "../compute/optimize/Optimize.js"
import type { Feeds } from "../compute/optimize/Runner.js"
import { Tokenizer } from "../compute/tokenizer/Tokenizer.js"
import { nodeServices } from "../layers/Node.js"
import { journalFile } from "../node/NodeConfig.js"
import { CliError } from "./CliError.js"
import { formatBytes } from "./Progress.js"
import { dataOption, jsonOption, output, settingsFor } from "./Shared.js"

const fail = (message: string) => new CliError({ message })

/** Held-out and calibration inputs: texts through the model's tokenizer, `.npy` tensors, or seeded random tensors. */
const feedsFor = (modelFile: string, calibration: Option.Option<string>) =>
  Effect.gen(function* () {
    const model = yield* Effect.try({ try: () => readModel(new Uint8Array(fs.readFileSync(modelFile))), catch: (error) => fail(`${modelFile}: ${String((error as Error).message ?? error)}`) })
    const tokenizerFile = [path.join(path.dirname(modelFile), "tokenizer.json"), path.join(path.dirname(modelFile), "..", "tokenizer.json")].find((file) => fs.existsSync(file))
    if (Option.isSome(calibration) && calibration.value.endsWith(".jsonl")) {
      if (tokenizerFile === undefined) return yield* Effect.fail(fail(`text calibration data needs the model's tokenizer.json next to ${modelFile}`))
      const tokenizer = yield* Tokenizer.fromFile(tokenizerFile).pipe(Effect.mapError((error) => fail(error.message)))
      const texts = yield* Effect.try({ try: () => parseCalibrationJsonl(fs.readFileSync(calibration.value, "utf8"), calibration.value), catch: (error) => fail((error as Error).message) })
      // The last fifth (at least one text) is held out for validation, never calibrated on.
      const held = Math.max(1, Math.floor(texts.length / 5))
      const feeds = texts.map((text) => textFeeds(model, tokenizer, text, 128))
      return { calibration: feeds.slice(0, Math.max(1, feeds.length - held)), heldOut: feeds.slice(-held) }
    }
    if (Option.isSome(calibration) && calibration.value.endsWith(".npy")) {
      const tensor = yield* Effect.try({ try: () => parseNpy(new Uint8Array(fs.readFileSync(calibration.value)), calibration.value), catch: (error) => fail((error as Error).message) })
      const input = model.graph.inputs[0]
      if (input === undefined || tensor.dtype !== "float32") return yield* Effect.fail(fail(`${calibration.value}: expected float32 samples for input ${input?.name ?? "?"}`))
      const [samples = 1, ...rest] = tensor.shape
      const size = rest.reduce((a, b) => a * b, 1)
      const feeds: Array<Feeds> = Array.from({ length: samples }, (_, i) => ({
        [input.name]: { type: "float32" as const, data: (tensor.data as Float32Array).slice(i * size, (i + 1) * size), dims: [1, ...rest] }
      }))
      const held = Math.max(1, Math.floor(samples / 5))
      return { calibration: feeds.slice(0, Math.max(1, samples - held)), heldOut: feeds.slice(-held) }
    }
    const sizes = { batch_size: 1, sequence_length: 16, total_sequence_length: 16, past_sequence_length: 0 }
    const random = (seed: number) => randomFeeds(model, seed, sizes)
    return { calibration: [1, 2, 3, 4].map(random), heldOut: [11, 12].map(random) }
  })

const describe = (result: OptimizeResult, file: string) =>
  [
    `${file}: ${formatBytes(result.report.originalBytes)} -> ${formatBytes(result.report.optimizedBytes)} (${(result.report.sizeRatio * 100).toFixed(1)}%)`,
    `  quality vs FP32 on held-out inputs: cosine ${result.report.cosine.toFixed(5)}, max error ${result.report.maxError.toPrecision(3)}, top-1 ${(result.report.top1 * 100).toFixed(1)}%`,
    `  latency ${result.report.latencyMs.toFixed(2)} ms (FP32 ${result.report.baselineLatencyMs.toFixed(2)} ms, ${result.report.latencyRatio.toFixed(2)}x); took ${result.report.quantizationSeconds.toFixed(1)} s`,
    `  quantized ${result.rewrite.quantized.length} weight(s); kept FP32: ${result.rewrite.keptFp32.length === 0 ? "none" : result.rewrite.keptFp32.map((k) => `${k.node} (${k.reason})`).join(", ")}`,
    ...(result.assignment === undefined ? [] : [`  precision per layer (budget ${formatBytes(result.assignment.budgetBytes)}, estimated ${formatBytes(result.assignment.estimatedBytes)}): ` +
      Object.entries(result.assignment.bits).map(([layer, bits]) => `${layer}=${bits}`).join(" ")])
  ].join("\n")

/** Records the job on the node's optimizer actor when a node data directory exists. */
const record = (data: Option.Option<string>, jobId: string, modelBytes: Uint8Array, quantization: Quantization, result: OptimizeResult, blockSize: number) =>
  Effect.gen(function* () {
    const settings = settingsFor(data)
    if (!fs.existsSync(journalFile(settings))) return false
    yield* Effect.gen(function* () {
      const optimizer = yield* Optimizer
      const sha256 = crypto.createHash("sha256").update(modelBytes).digest("hex")
      yield* optimizer.request(jobId, { model: { sha256, size: modelBytes.length }, quantization: quantization === "none" ? "FP16" : quantization, blockSize })
      if (result.sensitivities !== undefined && result.assignment !== undefined) {
        yield* optimizer.recordSensitivities(jobId, "1 - output cosine", result.sensitivities.map((layer) => ({ ...layer, damage: Object.fromEntries(Object.entries(layer.damage).map(([bits, damage]) => [bits, damage ?? 0])) })))
        yield* optimizer.assignPrecision(jobId, result.assignment)
      }
      const report = Object.fromEntries(Object.entries(result.report).filter(([, value]) => Number.isFinite(value)))
      if (result.refused !== undefined) yield* optimizer.refuse(jobId, report, result.refused)
      else {
        yield* optimizer.complete(jobId, {
          artifact: { sha256: crypto.createHash("sha256").update(result.bytes).digest("hex"), size: result.bytes.length },
          report, keptFp32: result.rewrite.keptFp32.map((kept) => kept.node)
        })
      }
    }).pipe(Effect.provide(nodeServices(settings).pipe(Layer.orDie)), Effect.mapError((error) => fail(`recording the job: ${String(error)}`)))
    return true
  })

export const optimizeCommand = Command.make(
  "optimize",
  {
    model: Args.file({ name: "model.onnx", exists: "yes" }),
    quantization: Options.choice("quantization", ["INT8", "INT8_DYNAMIC", "INT4", "GPTQ", "AWQ", "FP16", "auto", "none"]).pipe(Options.withDefault("INT8" as const)),
    blockSize: Options.choice("block-size", ["32", "64", "128"]).pipe(Options.withDefault("32" as const)),
    calibration: Options.file("calibration-data", { exists: "yes" }).pipe(Options.withDescription("JSONL of {\"text\": ...} (with the model's tokenizer.json) or a .npy of input samples"), Options.optional),
    pruning: Options.choice("pruning", ["magnitude", "block"]).pipe(Options.optional),
    sparsity: Options.float("sparsity").pipe(Options.withDefault(0.3)),
    sizeBudget: Options.text("size-budget").pipe(Options.withDescription("auto: bytes the weights may take, e.g. 2MB"), Options.optional),
    minCosine: Options.float("min-cosine").pipe(Options.withDescription("refuse a result whose output cosine vs FP32 is lower"), Options.optional),
    target: Options.choice("target", ["browser", "node"]).pipe(Options.withDefault("node" as const)),
    output: Options.file("output").pipe(Options.optional),
    data: dataOption,
    json: jsonOption
  },
  (args) =>
    Effect.gen(function* () {
      const bytes = new Uint8Array(fs.readFileSync(args.model))
      const { calibration, heldOut } = yield* feedsFor(args.model, args.calibration)
      const quantization = args.quantization as Quantization
      const budget = Option.map(args.sizeBudget, (text) => parseByteSize(text) ?? Number.NaN)
      if (Option.isSome(budget) && !Number.isFinite(budget.value)) return yield* Effect.fail(fail(`invalid --size-budget "${Option.getOrElse(args.sizeBudget, () => "")}": expected e.g. 2MB or 512KiB`))
      const result = yield* Effect.tryPromise({
        try: () =>
          optimize(bytes, {
            quantization,
            blockSize: Number(args.blockSize) as 32 | 64 | 128,
            calibration,
            heldOut,
            ...(Option.isSome(args.pruning) ? { pruning: { method: args.pruning.value, sparsity: args.sparsity } } : {}),
            ...(Option.isSome(budget) && Number.isFinite(budget.value) ? { sizeBudgetBytes: budget.value } : {}),
            ...(Option.isSome(args.minCosine) ? { qualityBar: { cosine: args.minCosine.value } } : {}),
            onProgress: (step, done, total) => {
              if (!args.json && process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${step} ${done}/${total}`)
            }
          }),
        catch: (error) => fail(error instanceof Error ? error.message : String(error))
      })
      if (!args.json && process.stderr.isTTY) process.stderr.write("\r\x1b[2K")
      const target = Option.getOrElse(args.output, () => args.model.replace(/\.onnx$/, "") + `.${quantization.toLowerCase()}.onnx`)
      const jobId = `optimize-${crypto.randomBytes(6).toString("hex")}`
      const recorded = yield* record(args.data, jobId, bytes, quantization, result, Number(args.blockSize))
      if (result.refused !== undefined) {
        return yield* Effect.fail(fail(`refused: ${result.refused.join("; ")} (size ${(result.report.sizeRatio * 100).toFixed(1)}%, cosine ${result.report.cosine.toFixed(5)})`))
      }
      fs.writeFileSync(target, result.bytes)
      const { bytes: _, ...view } = result
      yield* output(args.json, { output: target, jobId: recorded ? jobId : undefined, ...view }, () =>
        `${describe(result, target)}${recorded ? `\n  recorded as optimizer job ${jobId}` : ""}`)
    })
).pipe(Command.withDescription("quantize / prune an ONNX model and validate it against the original"))
