/**
 * What the optimizer measured, in a model manifest's words: `optimization` (precision, format, sizes,
 * pruning, quality against FP32, weights kept FP32, bits per layer, the job) and `benchmarks` (latency).
 */
import type { Benchmarks, Optimization } from "../../content/Manifest.js"
import type { WeightFormat } from "../quantize/Rewrite.js"
import type { OptimizeOptions, OptimizeResult, Quantization } from "./Optimize.js"

export interface ManifestReportOptions extends Pick<OptimizeOptions, "quantization" | "blockSize" | "pruning"> {
  /** The optimizer actor's job id, when the job was recorded. */
  readonly optimizerJob?: string
  /** The model optimized (its ONNX file's sha256, and its registry id and version when it has them). */
  readonly baseModel?: { readonly sha256: string; readonly id?: string; readonly version?: string }
}

const formats: Readonly<Record<Quantization, string | undefined>> = {
  INT8: "QDQ",
  INT8_DYNAMIC: "DynamicQuantizeLinear",
  INT4: "RTN",
  GPTQ: "GPTQ",
  AWQ: "AWQ",
  FP16: "FP16",
  auto: "auto",
  none: undefined
}

// Narrowest first: the manifest's one precision word names the narrowest width any weight got.
const widths: ReadonlyArray<[WeightFormat, Optimization["quantization"]]> = [["INT4", "INT4"], ["INT8", "INT8"], [
  "INT8_DYNAMIC",
  "INT8"
], ["FP16", "FP16"]]

// Figures about size and speed go elsewhere in the manifest; everything else the report holds is quality.
const notQuality: ReadonlySet<string> = new Set([
  "originalBytes",
  "optimizedBytes",
  "sizeRatio",
  "latencyMs",
  "baselineLatencyMs",
  "latencyRatio",
  "quantizationSeconds"
])

const sizeText = (bytes: number): string => {
  const units = ["B", "kB", "MB", "GB", "TB"]
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(2)} ${units[unit]}`
}

export const manifestReport = (
  result: OptimizeResult,
  options: ManifestReportOptions
): { optimization: Optimization; benchmarks: Benchmarks } => {
  const { report, rewrite } = result
  const applied = new Set(rewrite.quantized.map((entry) => entry.format))
  const quantization = widths.find(([format]) => applied.has(format))?.[1] ?? "FP32"
  const format = formats[options.quantization]
  const grouped = applied.has("INT4")
  const quality = Object.fromEntries(
    Object.entries(report).filter(([figure, value]) => !notQuality.has(figure) && Number.isFinite(value))
  )
  // The rewrite also lists weights it stored in another width than asked (an INT4 Gather as INT8): not FP32.
  const quantizedNodes = new Set(rewrite.quantized.map((entry) => entry.node))
  const keptFp32 = rewrite.keptFp32.map((kept) => kept.node).filter((node) => node !== "" && !quantizedNodes.has(node))
  const optimization: Optimization = {
    quantization,
    ...(format === undefined ? {} : { format }),
    ...(grouped ? { groupSize: options.blockSize ?? 32 } : {}),
    originalSize: sizeText(report.originalBytes),
    optimizedSize: sizeText(report.optimizedBytes),
    sizeRatio: report.sizeRatio,
    ...(options.pruning === undefined
      ? {}
      : { pruning: { method: options.pruning.method, sparsity: options.pruning.sparsity } }),
    quality,
    ...(keptFp32.length === 0 ? {} : { keptFp32 }),
    ...(result.assignment === undefined ? {} : { precision: { ...result.assignment.bits } }),
    ...(options.optimizerJob === undefined ? {} : { optimizerJob: options.optimizerJob }),
    ...(options.baseModel === undefined ? {} : { baseModel: options.baseModel })
  }
  const benchmarks: Benchmarks = {
    ...(report.perplexity !== undefined && Number.isFinite(report.perplexity) ? { perplexity: report.perplexity } : {}),
    latencyMs: { [result.runtime]: report.latencyMs },
    baselineLatencyMs: { [result.runtime]: report.baselineLatencyMs }
  }
  return { optimization, benchmarks }
}
