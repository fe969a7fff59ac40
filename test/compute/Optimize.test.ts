/**
 * The optimization pipeline on the reference encoder and language model: every mode produces a model
 * both onnxruntime-node and onnxruntime-web load and run, close to FP32; the automatic mode fits its
 * budget; the LM's report carries held-out perplexity; a task metric is reported beside its FP32
 * baseline; a model below the quality bar is refused; garbage is one line.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as ortWeb from "onnxruntime-web"
import { describe, expect, it } from "vitest"
import { readModel } from "../../src/compute/onnx/OnnxModel.js"
import { textFeeds } from "../../src/compute/optimize/Feeds.js"
import type { Quantization } from "../../src/compute/optimize/Optimize.js"
import { optimize } from "../../src/compute/optimize/Optimize.js"
import type { Feeds } from "../../src/compute/optimize/Runner.js"
import { createSession, run } from "../../src/compute/optimize/Runner.js"
import { tokenizerFromFile } from "../../src/compute/tokenizer/TokenizerFile.js"
import { negativeLogLikelihood, perplexity } from "../../src/compute/validate/Metrics.js"

const dir = "models/reference/tiny-encoder"
const bytes = new Uint8Array(fs.readFileSync(`${dir}/model.onnx`))
const model = readModel(bytes)
const tokenizer = await Effect.runPromise(tokenizerFromFile(`${dir}/tokenizer.json`))
const sentences = [
  "a large body of water",
  "an animal that barks",
  "to move quickly on foot",
  "the colour of the clear sky",
  "a place where books are kept",
  "to speak in a low voice",
  "a young dog",
  "feeling great happiness"
]
const calibration = sentences.slice(0, 6).map((text) => textFeeds(model, tokenizer, text, 32))
const heldOut = sentences.slice(6).map((text) => textFeeds(model, tokenizer, text, 32))

ortWeb.env.wasm.numThreads = 1

/** Loads and runs the bytes in onnxruntime-web, as a browser would. */
const runsInWeb = async (optimized: Uint8Array) => {
  const session = await ortWeb.InferenceSession.create(optimized)
  const feeds = heldOut[0]!
  const inputs = Object.fromEntries(
    Object.entries(feeds).map((
      [name, tensor]
    ) => [name, new ortWeb.Tensor(tensor.type, tensor.data as BigInt64Array, [...tensor.dims])])
  )
  const outputs = await session.run(inputs)
  await session.release()
  return (outputs["last_hidden_state"]?.data as Float32Array | undefined)?.length ?? 0
}

describe("optimize", () => {
  const modes: ReadonlyArray<[Quantization, number]> = [
    ["INT8", 0.999],
    ["INT8_DYNAMIC", 0.99],
    ["INT4", 0.99],
    ["FP16", 0.9999],
    ["GPTQ", 0.99],
    ["AWQ", 0.99]
  ]
  for (const [quantization, minimumCosine] of modes) {
    it(`${quantization}: smaller, close to FP32, and loads in onnxruntime-node and -web`, async () => {
      const result = await optimize(bytes, { quantization, calibration, heldOut })
      expect(result.report.sizeRatio).toBeLessThan(quantization === "FP16" ? 0.75 : 0.6)
      expect(result.report.cosine).toBeGreaterThanOrEqual(minimumCosine)
      expect(result.rewrite.quantized.length).toBeGreaterThan(0)
      expect(await runsInWeb(result.bytes)).toBeGreaterThan(0)
    }, 60_000)
  }

  it("auto: measures each layer, then writes a file within the size budget with the bits it chose", async () => {
    // Between all-INT4 and all-INT8: some layers must stay at 8 bits, some go to 4.
    const budget = Math.floor(bytes.length * 0.23)
    const result = await optimize(bytes, { quantization: "auto", calibration, heldOut, sizeBudgetBytes: budget })
    const quantizedWeights = new Set(result.rewrite.quantized.map((entry) => entry.weight))
    for (const [layer, bits] of Object.entries(result.assignment!.bits)) {
      if (bits < 32) expect(quantizedWeights.has(layer), layer).toBe(true)
    }
    expect(Object.keys(result.assignment!.bits).sort()).toEqual(
      result.sensitivities!.map((layer) => layer.layer).sort()
    )
    expect(result.bytes.length).toBeLessThanOrEqual(budget)
    expect(result.refused).toBeUndefined()
    const widths = new Set(Object.values(result.assignment!.bits))
    expect(widths.has(4) && (widths.has(8) || widths.has(16) || widths.has(32))).toBe(true)
    expect(result.report.cosine).toBeGreaterThan(0.99)
  }, 120_000)

  it("a model meant for browsers is validated and timed in onnxruntime-web", async () => {
    const result = await optimize(bytes, { quantization: "INT8", heldOut, runtime: "onnxruntime-web" })
    expect(result.runtime).toBe("onnxruntime-web")
    expect(result.report.cosine).toBeGreaterThan(0.999)
    expect(result.report.latencyMs).toBeGreaterThan(0)
    expect(result.report.baselineLatencyMs).toBeGreaterThan(0)
  }, 60_000)

  it("auto: a budget no assignment reaches is refused with the sizes, before any layer is measured", async () => {
    const stages: Array<string> = []
    await expect(
      optimize(bytes, {
        quantization: "auto",
        heldOut,
        sizeBudgetBytes: 1000,
        onProgress: (stage) => void stages.push(stage)
      })
    ).rejects.toThrow(
      /^a size budget of 1000 bytes cannot be met: with every layer at 4 bits the model takes \d+ bytes$/
    )
    expect(stages).toEqual([])
  }, 120_000)

  it("refuses a result below the quality bar, with the numbers", async () => {
    const result = await optimize(bytes, { quantization: "INT4", heldOut, qualityBar: { cosine: 0.9999999 } })
    expect(result.refused).toHaveLength(1)
    expect(result.refused![0]).toMatch(/^cosine 0\.\d{4} < 0\.9999999$/)
  }, 60_000)

  it("pruning reaches its sparsity and the model still runs", async () => {
    const result = await optimize(bytes, {
      quantization: "none",
      heldOut,
      pruning: { method: "magnitude", sparsity: 0.3 }
    })
    expect(result.report.cosine).toBeGreaterThan(0.9)
    expect(await runsInWeb(result.bytes)).toBeGreaterThan(0)
  }, 60_000)

  it("a causal LM's report has held-out perplexity of both models; a perplexity bar is a maximum", async () => {
    const lmDir = "models/reference/tiny-lm"
    const lmBytes = new Uint8Array(fs.readFileSync(`${lmDir}/model.onnx`))
    const lmModel = readModel(lmBytes)
    const lmTokenizer = await Effect.runPromise(tokenizerFromFile(`${lmDir}/tokenizer.json`))
    const texts = [
      "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about.",
      "The whale rose out of the sea, and the men in the boats cried out."
    ]
    const lmHeldOut = texts.map((text) => textFeeds(lmModel, lmTokenizer, text, 64))
    // Computed here as the optimize bench does it: logits at t score input_ids[t + 1].
    const heldOutPerplexity = async (model: Uint8Array, feeds: ReadonlyArray<Feeds>) => {
      const session = await createSession(model)
      const nll = { total: 0, count: 0 }
      for (const feed of feeds) {
        const logits = (await run(session, feed))["logits"]!
        const ids = Array.from(feed["input_ids"]!.data as BigInt64Array, Number)
        const one = negativeLogLikelihood(logits.data, logits.dims[2]!, [...ids.slice(1), -1])
        nll.total += one.total
        nll.count += one.count
      }
      await session.release()
      return perplexity(nll)
    }
    const result = await optimize(lmBytes, {
      quantization: "INT8",
      heldOut: lmHeldOut,
      qualityBar: { cosine: 0.99, perplexityDelta: 100, maxPerplexityDelta: -1 }
    })
    const { baselinePerplexity, perplexity: optimized, perplexityDelta } = result.report
    expect(baselinePerplexity).toBeCloseTo(await heldOutPerplexity(lmBytes, lmHeldOut), 6)
    expect(optimized).toBeCloseTo(await heldOutPerplexity(result.bytes, lmHeldOut), 6)
    expect(baselinePerplexity).toBeGreaterThan(1)
    expect(perplexityDelta).toBeCloseTo(optimized! - baselinePerplexity!, 9)
    // perplexityDelta: 100 is a maximum the result meets; maxPerplexityDelta: -1 asks for a drop it cannot give.
    expect(result.refused).toEqual([`perplexityDelta ${perplexityDelta!.toFixed(4)} > -1`])
  }, 60_000)

  it("evaluate: a task metric on both models, with baseline and delta, bounded like any figure", async () => {
    const evaluate = async (model: Uint8Array) => ({ kilobytes: model.length / 1000 })
    const result = await optimize(bytes, {
      quantization: "FP16",
      heldOut,
      evaluate,
      qualityBar: { kilobytesDelta: -1e9, maxKilobytes: 1000 }
    })
    expect(result.report.perplexity).toBeUndefined()
    expect(result.report["baselineKilobytes"]).toBe(bytes.length / 1000)
    expect(result.report["kilobytes"]).toBe(result.bytes.length / 1000)
    expect(result.report["kilobytesDelta"]).toBeCloseTo((result.bytes.length - bytes.length) / 1000, 9)
    expect(result.refused).toEqual([`kilobytes ${(result.bytes.length / 1000).toFixed(4)} > 1000`])
    await expect(optimize(bytes, { quantization: "FP16", heldOut, evaluate: async () => ({ cosine: 1 }) })).rejects
      .toThrow(/^evaluate returned "cosine", a figure the report already has/)
  }, 60_000)

  it("garbage and truncated files are one clear line", async () => {
    await expect(optimize(new TextEncoder().encode("not a model"), { quantization: "INT8", heldOut })).rejects.toThrow(
      /^not an ONNX model/
    )
    await expect(optimize(bytes.subarray(0, 5000), { quantization: "INT8", heldOut })).rejects.toThrow(
      /^truncated ONNX file at byte 5000/
    )
  })
})
