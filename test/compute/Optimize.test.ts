/**
 * The optimization pipeline on the reference encoder and the real PP-OCRv4 recognizer: every mode
 * produces a model both onnxruntime-node and onnxruntime-web load and run, close to FP32; the
 * automatic mode fits its budget; a model below the quality bar is refused; garbage is one line.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as ortWeb from "onnxruntime-web"
import { describe, expect, it } from "vitest"
import { readModel } from "../../src/compute/onnx/OnnxModel.js"
import { textFeeds } from "../../src/compute/optimize/Feeds.js"
import type { Quantization } from "../../src/compute/optimize/Optimize.js"
import { optimize } from "../../src/compute/optimize/Optimize.js"
import { Tokenizer } from "../../src/compute/tokenizer/Tokenizer.js"

const dir = "models/reference/tiny-encoder"
const bytes = new Uint8Array(fs.readFileSync(`${dir}/model.onnx`))
const model = readModel(bytes)
const tokenizer = await Effect.runPromise(Tokenizer.fromFile(`${dir}/tokenizer.json`))
const sentences = [
  "a large body of water", "an animal that barks", "to move quickly on foot", "the colour of the clear sky",
  "a place where books are kept", "to speak in a low voice", "a young dog", "feeling great happiness"
]
const calibration = sentences.slice(0, 6).map((text) => textFeeds(model, tokenizer, text, 32))
const heldOut = sentences.slice(6).map((text) => textFeeds(model, tokenizer, text, 32))

ortWeb.env.wasm.numThreads = 1

/** Loads and runs the bytes in onnxruntime-web, as a browser would. */
const runsInWeb = async (optimized: Uint8Array) => {
  const session = await ortWeb.InferenceSession.create(optimized)
  const feeds = heldOut[0]!
  const inputs = Object.fromEntries(Object.entries(feeds).map(([name, tensor]) => [name, new ortWeb.Tensor(tensor.type, tensor.data as BigInt64Array, [...tensor.dims])]))
  const outputs = await session.run(inputs)
  await session.release()
  return (outputs["last_hidden_state"]?.data as Float32Array | undefined)?.length ?? 0
}

describe("optimize", () => {
  const modes: ReadonlyArray<[Quantization, number]> = [["INT8", 0.999], ["INT8_DYNAMIC", 0.99], ["INT4", 0.99], ["FP16", 0.9999], ["GPTQ", 0.99], ["AWQ", 0.99]]
  for (const [quantization, minimumCosine] of modes) {
    it(`${quantization}: smaller, close to FP32, and loads in onnxruntime-node and -web`, async () => {
      const result = await optimize(bytes, { quantization, calibration, heldOut })
      expect(result.report.sizeRatio).toBeLessThan(quantization === "FP16" ? 0.75 : 0.6)
      expect(result.report.cosine).toBeGreaterThanOrEqual(minimumCosine)
      expect(result.rewrite.quantized.length).toBeGreaterThan(0)
      expect(await runsInWeb(result.bytes)).toBeGreaterThan(0)
    }, 60_000)
  }

  it("auto: measures each layer, then fits the size budget with the bits it chose", async () => {
    const budget = 1_500_000
    const result = await optimize(bytes, { quantization: "auto", calibration, heldOut, sizeBudgetBytes: budget })
    const quantizedWeights = new Set(result.rewrite.quantized.map((entry) => entry.weight))
    for (const [layer, bits] of Object.entries(result.assignment!.bits)) if (bits < 32) expect(quantizedWeights.has(layer), layer).toBe(true)
    expect(Object.keys(result.assignment!.bits).sort()).toEqual(result.sensitivities!.map((layer) => layer.layer).sort())
    expect(result.assignment!.estimatedBytes).toBeLessThanOrEqual(budget)
    expect(new Set(Object.values(result.assignment!.bits)).size).toBeGreaterThan(0)
    expect(result.report.cosine).toBeGreaterThan(0.99)
  }, 120_000)

  it("refuses a result below the quality bar, with the numbers", async () => {
    const result = await optimize(bytes, { quantization: "INT4", heldOut, qualityBar: { cosine: 0.9999999 } })
    expect(result.refused).toHaveLength(1)
    expect(result.refused![0]).toMatch(/^cosine 0\.\d{4} < 0\.9999999$/)
  }, 60_000)

  it("pruning reaches its sparsity and the model still runs", async () => {
    const result = await optimize(bytes, { quantization: "none", heldOut, pruning: { method: "magnitude", sparsity: 0.3 } })
    expect(result.report.cosine).toBeGreaterThan(0.9)
    expect(await runsInWeb(result.bytes)).toBeGreaterThan(0)
  }, 60_000)

  it("garbage and truncated files are one clear line", async () => {
    await expect(optimize(new TextEncoder().encode("not a model"), { quantization: "INT8", heldOut })).rejects.toThrow(/^not an ONNX model/)
    await expect(optimize(bytes.subarray(0, 5000), { quantization: "INT8", heldOut })).rejects.toThrow(/^truncated ONNX file at byte 5000/)
  })
})
