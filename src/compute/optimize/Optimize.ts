/**
 * The optimization pipeline: prune, quantize (INT8, dynamic INT8, INT4 round-to-nearest, GPTQ, AWQ,
 * FP16, or an automatic per-layer choice under a size budget), then validate the result against the
 * FP32 model on held-out inputs in ONNX Runtime (output agreement, latency, a language model's
 * perplexity, the caller's task metric), and refuse it when it misses the quality bar.
 */
import { Data } from "effect"
import { promoteConstants } from "../onnx/Graph.js"
import type { OnnxModel } from "../onnx/OnnxModel.js"
import { readModel, writeModel } from "../onnx/OnnxModel.js"
import type { SimplifyReport } from "../onnx/Simplify.js"
import { simplify } from "../onnx/Simplify.js"
import { float32Tensor, tensorToFloat32 } from "../onnx/Tensors.js"
import type { Bits, LayerSensitivity, PrecisionAssignment } from "../quantize/AutoPrecision.js"
import { assignPrecision, layerBytes } from "../quantize/AutoPrecision.js"
import { quantizeInt4Awq } from "../quantize/Awq.js"
import { hessianOf, quantizeInt4Gptq } from "../quantize/Gptq.js"
import type { Int4Blocks } from "../quantize/Int4.js"
import { pruneBlocks, pruneMagnitude } from "../quantize/Prune.js"
import type { RewriteReport, WeightFormat } from "../quantize/Rewrite.js"
import { rewriteWeights, weightSites } from "../quantize/Rewrite.js"
import { compareOutputs, klDivergence, nextTokenNegativeLogLikelihood, perplexity } from "../validate/Metrics.js"
import { modelInputs } from "./Feeds.js"
import { qualityBarMisses } from "./QualityBar.js"
import type { Feeds, Outputs, Runtime } from "./Runner.js"
import { captureActivations, createSession, latencyMs, run } from "./Runner.js"

export type Quantization = "INT8" | "INT8_DYNAMIC" | "INT4" | "GPTQ" | "AWQ" | "FP16" | "auto" | "none"

export interface OptimizeOptions {
  readonly quantization: Quantization
  readonly blockSize?: 32 | 64 | 128
  readonly pruning?: { readonly method: "magnitude" | "block"; readonly sparsity: number; readonly blockSize?: 4 | 8 }
  /** Simplify the graph first (`--onnx-simplify`): fold constants, merge duplicates, drop Identity and dead nodes. */
  readonly simplify?: boolean
  /** Inputs for GPTQ / AWQ statistics and for measuring sensitivities. */
  readonly calibration?: ReadonlyArray<Feeds>
  /** Inputs the report compares FP32 and optimized outputs on (never the calibration ones). */
  readonly heldOut: ReadonlyArray<Feeds>
  /** `auto`: the bytes the optimized model file may take. Default: a quarter of the original file. */
  readonly sizeBudgetBytes?: number
  /**
   * A task metric (e.g. OCR character accuracy), run on the FP32 and on the optimized model: each
   * figure `<name>` is reported with `baseline<Name>` and `<name>Delta` (optimized minus FP32).
   */
  readonly evaluate?: (model: Uint8Array) => Promise<Record<string, number>>
  /**
   * Bounds on reported figures, e.g. `{ cosine: 0.99, maxPerplexityDelta: 0.5 }`; a result that misses
   * any is refused. Each figure is bounded in its own direction (see QualityBar.boundOf).
   */
  readonly qualityBar?: Readonly<Record<string, number>>
  readonly onProgress?: (step: string, done: number, total: number) => void
  /** Where the report validates and times the models: the runtime the model is meant for (default onnxruntime-node). */
  readonly runtime?: Runtime
}

export interface QualityReport {
  readonly [figure: string]: number
  readonly originalBytes: number
  readonly optimizedBytes: number
  readonly sizeRatio: number
  readonly latencyMs: number
  readonly baselineLatencyMs: number
  readonly latencyRatio: number
  /** Worst over held-out inputs and outputs. */
  readonly cosine: number
  readonly maxError: number
  readonly top1: number
  readonly quantizationSeconds: number
  /** A causal language model's held-out perplexity (next-token), optimized and FP32, and their difference. */
  readonly perplexity?: number
  readonly baselinePerplexity?: number
  readonly perplexityDelta?: number
  /** Mean KL divergence of the optimized model's next-token distribution from FP32's, in nats per position. */
  readonly klDivergence?: number
}

export interface OptimizeResult {
  readonly bytes: Uint8Array
  readonly report: QualityReport
  readonly rewrite: RewriteReport
  readonly sensitivities?: ReadonlyArray<LayerSensitivity>
  /** What a layer's damage in `sensitivities` measures. */
  readonly sensitivityMetric?: string
  readonly assignment?: {
    readonly bits: Readonly<Record<string, Bits>>
    readonly estimatedBytes: number
    readonly budgetBytes: number
    readonly estimatedDamage: number
  }
  readonly refused?: ReadonlyArray<string>
  /** What simplifying the graph did, when asked to. */
  readonly simplified?: SimplifyReport
  /** The runtime the report's figures were measured in. */
  readonly runtime: Runtime
}

export class OptimizeError extends Data.TaggedError("OptimizeError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** Applies pruning to every MatMul / Gemm / Conv weight of the main graph. */
const prune = (model: OnnxModel, pruning: NonNullable<OptimizeOptions["pruning"]>): OnnxModel => {
  const { sites } = weightSites(model.graph)
  const targets = new Map(sites.map((site) => [site.weight, site]))
  return {
    ...model,
    graph: {
      ...model.graph,
      initializers: model.graph.initializers.map((tensor) => {
        const site = tensor.name === undefined ? undefined : targets.get(tensor.name)
        if (site === undefined) return tensor
        const values = tensorToFloat32(tensor)
        if (pruning.method === "block" && site.kind === "MatMul") {
          pruneBlocks(values, site.dims[0]!, site.dims[1]!, pruning.blockSize ?? 4, pruning.sparsity)
        } else pruneMagnitude(values, pruning.sparsity)
        return float32Tensor(tensor.name!, tensor.dims, values)
      })
    }
  }
}

/** GPTQ or AWQ blocks for every MatMul weight, from the activations feeding it on calibration inputs. */
const calibratedBlocks = async (model: OnnxModel, method: "GPTQ" | "AWQ", options: OptimizeOptions) => {
  const calibration = options.calibration ?? []
  if (calibration.length === 0) {
    throw new OptimizeError({ reason: `${method} needs calibration data (--calibration-data)` })
  }
  const blockSize = options.blockSize ?? 32
  const sites = weightSites(model.graph).sites.filter((site) =>
    site.kind === "MatMul" && site.dims[0]! * site.dims[1]! >= 1024
  )
  // No MatMul weight to calibrate (a convolutional model): the rewrite falls back per weight and says so.
  if (sites.length === 0) return { blocks: new Map<string, Int4Blocks>(), inputScales: new Map<string, Float32Array>() }
  const activations = await captureActivations(model, sites.map((site) => site.node.inputs[0]!), calibration)
  const initializers = new Map(model.graph.initializers.map((tensor) => [tensor.name, tensor]))
  const blocks = new Map<string, Int4Blocks>()
  const inputScales = new Map<string, Float32Array>()
  for (const [index, site] of sites.entries()) {
    options.onProgress?.(method, index, sites.length)
    const [K, N] = site.dims as [number, number]
    const captured = activations.get(site.node.inputs[0]!)
    if (captured === undefined || captured.width !== K) continue
    const weights = tensorToFloat32(initializers.get(site.weight)!)
    if (method === "GPTQ") {
      blocks.set(site.weight, quantizeInt4Gptq(weights, K, N, blockSize, hessianOf(captured.data, captured.samples, K)))
    } else {
      const awq = quantizeInt4Awq(weights, K, N, blockSize, captured.data, captured.samples)
      blocks.set(site.weight, awq.blocks)
      inputScales.set(site.weight, awq.inputScales)
    }
  }
  options.onProgress?.(method, sites.length, sites.length)
  return { blocks, inputScales }
}

/** A causal language model: fed token ids, it returns next-token logits [batch, seq, vocab]. */
export const isCausalLanguageModel = (model: OnnxModel): boolean =>
  modelInputs(model).some((input) => input.name === "input_ids") &&
  model.graph.outputs.some((output) => output.name === "logits" && output.type?.tensorType?.shape?.length === 3)

/** Next-token NLL of `logits` on the feeds' own `input_ids` (undefined when the outputs have no 3-D logits). */
const nextTokenNll = (outputs: Outputs, feeds: Feeds) => {
  const logits = outputs["logits"]
  const ids = feeds["input_ids"]
  if (logits === undefined || ids === undefined || logits.dims.length !== 3) return undefined
  const mask = feeds["attention_mask"]
  // A mask longer than the ids also covers a past (KV cache); only one as long lines up with the logits.
  const aligned = mask !== undefined && mask.data.length === ids.data.length
    ? Array.from(mask.data as ArrayLike<number | bigint>, Number)
    : undefined
  return nextTokenNegativeLogLikelihood(
    logits.data,
    logits.dims,
    Array.from(ids.data as ArrayLike<number | bigint>, Number),
    aligned
  )
}

/**
 * Worst-case agreement of a candidate's outputs with the reference's, added up input by input; for a
 * language model also both models' next-token perplexity and the KL divergence between them.
 */
const agreementTally = (languageModel: boolean) => {
  let cosine = 1
  let maxError = 0
  let top1 = 1
  const nll = { reference: { total: 0, count: 0 }, candidate: { total: 0, count: 0 } }
  const kl = { total: 0, count: 0 }
  return {
    add: (expected: Outputs, actual: Outputs, feeds: Feeds) => {
      if (languageModel) {
        for (const [side, outputs] of [["reference", expected], ["candidate", actual]] as const) {
          const measured = nextTokenNll(outputs, feeds)
          nll[side].total += measured?.total ?? 0
          nll[side].count += measured?.count ?? 0
        }
        const [logits, other] = [expected["logits"], actual["logits"]]
        if (logits !== undefined && other !== undefined) {
          const moved = klDivergence(logits.data, other.data, logits.dims[logits.dims.length - 1] ?? 1)
          kl.total += moved.total
          kl.count += moved.count
        }
      }
      for (const [name, output] of Object.entries(expected)) {
        const other = actual[name]
        if (other === undefined) continue
        const lastAxis = output.dims[output.dims.length - 1] ?? 1
        const comparison = compareOutputs(name, output.data, other.data, lastAxis)
        cosine = Math.min(cosine, comparison.cosine)
        maxError = Math.max(maxError, comparison.maxError)
        top1 = Math.min(top1, comparison.top1)
      }
    },
    result: () => {
      const perplexities = nll.reference.count === 0
        ? {}
        : {
          baselinePerplexity: perplexity(nll.reference),
          perplexity: perplexity(nll.candidate),
          perplexityDelta: perplexity(nll.candidate) - perplexity(nll.reference),
          klDivergence: kl.total / Math.max(1, kl.count)
        }
      return { cosine, maxError, top1, ...perplexities }
    }
  }
}

interface AgreementOptions {
  /** Also measure both models' next-token perplexity on the inputs. */
  readonly languageModel?: boolean
  readonly onProgress?: OptimizeOptions["onProgress"]
  readonly runtime?: Runtime
}

/** Worst-case agreement of two models' outputs over the held-out inputs, and their latency. */
const agreement = async (
  reference: Uint8Array,
  candidate: Uint8Array,
  heldOut: ReadonlyArray<Feeds>,
  options: AgreementOptions = {}
) => {
  const [left, right] = await Promise.all([
    createSession(reference, options.runtime),
    createSession(candidate, options.runtime)
  ])
  const tally = agreementTally(options.languageModel === true)
  for (const [index, feeds] of heldOut.entries()) {
    options.onProgress?.("validate", index, heldOut.length)
    const [expected, actual] = await Promise.all([run(left, feeds), run(right, feeds)])
    tally.add(expected, actual, feeds)
  }
  const latency = heldOut[0] === undefined
    ? [0, 0]
    : [await latencyMs(left, heldOut[0]), await latencyMs(right, heldOut[0])]
  await Promise.all([left.release(), right.release()])
  options.onProgress?.("validate", heldOut.length, heldOut.length)
  return { ...tally.result(), baselineLatencyMs: latency[0]!, latencyMs: latency[1]! }
}

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1)

/** The caller's task metric on the FP32 and the optimized model, as `<name>`, `baseline<Name>`, `<name>Delta`. */
const taskFigures = async (
  evaluate: NonNullable<OptimizeOptions["evaluate"]>,
  original: Uint8Array,
  optimized: Uint8Array,
  options: OptimizeOptions
) => {
  const measure = async (model: Uint8Array, step: number) => {
    options.onProgress?.("evaluate", step, 2)
    try {
      return await evaluate(model)
    } catch (error) {
      throw new OptimizeError({ reason: `evaluate: ${error instanceof Error ? error.message : String(error)}` })
    }
  }
  const baseline = await measure(original, 0)
  const measured = await measure(optimized, 1)
  options.onProgress?.("evaluate", 2, 2)
  return Object.fromEntries(
    Object.entries(measured).flatMap(([name, value]) => {
      const before = baseline[name]
      return before === undefined
        ? [[name, value]]
        : [[name, value], [`baseline${capitalize(name)}`, before], [`${name}Delta`, value - before]]
    })
  )
}

const formatFor = (quantization: Quantization): WeightFormat =>
  quantization === "GPTQ" || quantization === "AWQ"
    ? "INT4"
    : quantization === "auto"
    ? "FP32"
    : quantization === "none"
    ? "FP32"
    : quantization

const widthFormat = (
  bits: Bits
): WeightFormat => (bits === 4 ? "INT4" : bits === 8 ? "INT8" : bits === 16 ? "FP16" : "FP32")

/**
 * Damage of quantizing one weight at a time to 4, 8 and 16 bits, on calibration inputs: for a language
 * model the mean KL divergence of its next-token predictions from FP32's, else 1 - worst output cosine.
 * A weight's 4-bit version is the one the final model would get (its GPTQ blocks when given).
 */
const sensitivityMetricOf = (model: OnnxModel) =>
  isCausalLanguageModel(model) ? "mean next-token KL divergence from FP32 (nats)" : "1 - output cosine"

/** The weights `auto` chooses a width for: every one of at least 1,024 parameters. */
const autoSites = (model: OnnxModel) =>
  weightSites(model.graph).sites.filter((site) => site.dims.reduce((a, b) => a * b, 1) >= 1024)

const measureSensitivities = async (
  model: OnnxModel,
  original: Uint8Array,
  options: OptimizeOptions,
  int4Blocks: ReadonlyMap<string, Int4Blocks> | undefined
): Promise<Array<LayerSensitivity>> => {
  const sites = autoSites(model)
  const probe = (options.calibration ?? options.heldOut).slice(0, 4)
  const languageModel = isCausalLanguageModel(model)
  // The FP32 model's outputs once, not once per candidate; a candidate is run on the probe, not timed.
  const reference = await createSession(original)
  const expected: Array<Outputs> = []
  for (const feeds of probe) expected.push(await run(reference, feeds))
  await reference.release()
  const layers: Array<LayerSensitivity> = []
  for (const [index, site] of sites.entries()) {
    options.onProgress?.("sensitivity", index, sites.length)
    const parameters = site.dims.reduce((a, b) => a * b, 1)
    const damage: Partial<Record<Bits, number>> = {}
    // The file with only this layer changed, against the original, says exactly what the layer costs.
    const bytes: Partial<Record<Bits, number>> = { 32: layerBytes(parameters, 32) }
    for (const bits of [4, 8, 16] as const) {
      const { model: single } = rewriteWeights(model, {
        defaultFormat: "FP32",
        formats: { [site.weight]: widthFormat(bits) },
        blockSize: options.blockSize ?? 32,
        ...(int4Blocks === undefined ? {} : { int4Blocks })
      })
      const written = writeModel(single)
      const candidate = await createSession(written)
      const tally = agreementTally(languageModel)
      for (const [index, feeds] of probe.entries()) tally.add(expected[index]!, await run(candidate, feeds), feeds)
      await candidate.release()
      const measured = tally.result()
      damage[bits] = languageModel ? measured.klDivergence ?? 0 : Math.max(0, 1 - measured.cosine)
      bytes[bits] = written.length - original.length + layerBytes(parameters, 32)
    }
    layers.push({ layer: site.weight, parameters, damage, bytes })
  }
  options.onProgress?.("sensitivity", sites.length, sites.length)
  return layers
}

/**
 * `auto`: bits per layer so the written file fits `budget` bytes. The weights get what the rest of the
 * file leaves; the layers' measured sizes add up to within a few bytes of the written file, and an
 * overshoot is taken off the weights' share and the choice made again (at most three times).
 */
const fitToBudget = (
  sensitivities: ReadonlyArray<LayerSensitivity>,
  budget: number,
  fileBytes: number,
  rewrite: (formats: Record<string, WeightFormat>) => Uint8Array
) => {
  const fp32Weights = sensitivities.reduce(
    (sum, layer) => sum + (layer.bytes?.[32] ?? layerBytes(layer.parameters, 32)),
    0
  )
  let weightBudget = budget - (fileBytes - fp32Weights)
  let attempt: { chosen: PrecisionAssignment; bytes: Uint8Array; formats: Record<string, WeightFormat> } | undefined
  for (let round = 0; round < 3; round++) {
    const chosen = assignPrecision(sensitivities, weightBudget)
    const formats = Object.fromEntries(Object.entries(chosen.bits).map(([weight, bits]) => [weight, widthFormat(bits)]))
    attempt = { chosen, formats, bytes: rewrite(formats) }
    if (attempt.bytes.length <= budget || !chosen.fits) break
    weightBudget -= attempt.bytes.length - budget
  }
  return attempt!
}

export const optimize = async (original: Uint8Array, options: OptimizeOptions): Promise<OptimizeResult> => {
  const started = performance.now()
  let model: OnnxModel
  let simplified: SimplifyReport | undefined
  try {
    model = readModel(original)
    if (options.simplify === true) {
      options.onProgress?.("simplify", 0, 1)
      ;({ model, report: simplified } = simplify(model))
      options.onProgress?.("simplify", 1, 1)
    } else model = promoteConstants(model)
  } catch (error) {
    throw new OptimizeError({ reason: error instanceof Error ? error.message : String(error) })
  }
  if (options.heldOut.length === 0) {
    throw new OptimizeError({ reason: "no held-out inputs to validate the optimized model on" })
  }
  if (options.pruning !== undefined) {
    options.onProgress?.("prune", 0, 1)
    model = prune(model, options.pruning)
    options.onProgress?.("prune", 1, 1)
  }
  const pruned = writeModel(model)
  let sensitivities: Array<LayerSensitivity> | undefined
  let assignment: OptimizeResult["assignment"]
  let int4Blocks: Map<string, Int4Blocks> | undefined
  let inputScales: Map<string, Float32Array> | undefined
  const rewriteWith = (formats: Record<string, WeightFormat> | undefined) =>
    rewriteWeights(model, {
      defaultFormat: formatFor(options.quantization),
      blockSize: options.blockSize ?? 32,
      ...(formats === undefined ? {} : { formats }),
      ...(int4Blocks === undefined ? {} : { int4Blocks }),
      ...(inputScales === undefined ? {} : { inputScales })
    })
  if (options.quantization === "auto") {
    // A budget below the file with every weight at 4 bits cannot be met: said before any layer is measured.
    const budget = options.sizeBudgetBytes ?? Math.floor(original.length / 4)
    const narrowest = writeModel(
      rewriteWith(Object.fromEntries(autoSites(model).map((site) => [site.weight, widthFormat(4)]))).model
    ).length
    if (narrowest > budget) {
      throw new OptimizeError({
        reason:
          `a size budget of ${budget} bytes cannot be met: with every layer at 4 bits the model takes ${narrowest} bytes`
      })
    }
  }
  // auto quantizes its 4-bit layers with GPTQ when it has calibration data to do so.
  const calibratedMethod = options.quantization === "auto"
    ? ((options.calibration ?? []).length > 0 ? "GPTQ" : undefined)
    : options.quantization
  if (calibratedMethod === "GPTQ" || calibratedMethod === "AWQ") {
    const calibrated = await calibratedBlocks(model, calibratedMethod, options)
    int4Blocks = calibrated.blocks
    inputScales = calibrated.inputScales
  }
  let bytes: Uint8Array
  let rewrite: RewriteReport
  const budgetMisses: Array<string> = []
  if (options.quantization === "auto") {
    sensitivities = await measureSensitivities(model, pruned, options, int4Blocks)
    const budget = options.sizeBudgetBytes ?? Math.floor(original.length / 4)
    options.onProgress?.("quantize", 0, 1)
    let lastReport: RewriteReport | undefined
    const fitted = fitToBudget(sensitivities, budget, pruned.length, (formats) => {
      const { model: rewritten, report } = rewriteWith(formats)
      lastReport = report
      return writeModel(rewritten)
    })
    bytes = fitted.bytes
    rewrite = lastReport!
    assignment = {
      bits: fitted.chosen.bits,
      estimatedBytes: fitted.chosen.bytes,
      budgetBytes: budget,
      estimatedDamage: fitted.chosen.damage
    }
    if (bytes.length > budget) {
      // Rare since the check above: the layers' sizes, measured one at a time, did not add up to the file's.
      budgetMisses.push(`size ${bytes.length} bytes > budget ${budget} bytes`)
    }
  } else {
    options.onProgress?.("quantize", 0, 1)
    const rewritten = rewriteWith(undefined)
    bytes = writeModel(rewritten.model)
    rewrite = rewritten.report
  }
  options.onProgress?.("quantize", 1, 1)
  const quantizationSeconds = (performance.now() - started) / 1000
  const runtime = options.runtime ?? "onnxruntime-node"
  const quality = await agreement(original, bytes, options.heldOut, {
    languageModel: isCausalLanguageModel(model),
    runtime,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress })
  })
  const measured: QualityReport = {
    originalBytes: original.length,
    optimizedBytes: bytes.length,
    sizeRatio: bytes.length / original.length,
    ...quality,
    latencyRatio: quality.baselineLatencyMs === 0 ? 1 : quality.latencyMs / quality.baselineLatencyMs,
    quantizationSeconds
  }
  const task = options.evaluate === undefined ? {} : await taskFigures(options.evaluate, original, bytes, options)
  const clash = Object.keys(task).find((figure) => measured[figure] !== undefined)
  if (clash !== undefined) {
    throw new OptimizeError({ reason: `evaluate returned "${clash}", a figure the report already has: rename it` })
  }
  const report: QualityReport = { ...measured, ...task }
  const refused = [...budgetMisses, ...qualityBarMisses(report, options.qualityBar ?? {})]
  return {
    bytes,
    report,
    rewrite,
    runtime,
    ...(sensitivities === undefined ? {} : { sensitivities, sensitivityMetric: sensitivityMetricOf(model) }),
    ...(assignment === undefined ? {} : { assignment }),
    ...(simplified === undefined ? {} : { simplified }),
    ...(refused.length === 0 ? {} : { refused })
  }
}
