/**
 * An optimization in a child process (src/compute/optimize/OptimizeChild.ts), as a node runs it: the
 * same bytes and figures as in this process, its steps reported as they happen, and a failure's line.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import { readModel } from "../../src/compute/onnx/OnnxModel.js"
import { textFeeds } from "../../src/compute/optimize/Feeds.js"
import { optimize } from "../../src/compute/optimize/Optimize.js"
import { optimizeInChild } from "../../src/compute/optimize/OptimizeChild.js"
import { tokenizerFromFile } from "../../src/compute/tokenizer/TokenizerFile.js"

const dir = "models/reference/tiny-encoder"
const bytes = new Uint8Array(fs.readFileSync(`${dir}/model.onnx`))
const model = readModel(bytes)
const tokenizer = await Effect.runPromise(tokenizerFromFile(`${dir}/tokenizer.json`))
const heldOut = ["a young dog", "feeling great happiness"].map((text) => textFeeds(model, tokenizer, text, 32))

describe("an optimization in a child process", () => {
  it("gives the bytes and figures it gives in this process, and reports its steps as they happen", async () => {
    const steps: Array<string> = []
    const child = await optimizeInChild(bytes, {
      quantization: "INT8",
      heldOut,
      onProgress: (step) => steps.push(step)
    })
    const here = await optimize(bytes, { quantization: "INT8", heldOut })
    expect(Buffer.from(child.bytes).equals(Buffer.from(here.bytes))).toBe(true)
    expect(child.report.cosine).toBeCloseTo(here.report.cosine, 6)
    expect(child.report.optimizedBytes).toBe(here.report.optimizedBytes)
    expect(child.rewrite).toEqual(here.rewrite)
    expect(steps.length).toBeGreaterThan(0)
  }, 60_000)

  it("fails with the pipeline's own line", async () => {
    const inHere = await optimize(new Uint8Array([1, 2, 3]), { quantization: "INT8", heldOut }).then(
      () => "",
      (error: Error) => error.message
    )
    await expect(optimizeInChild(new Uint8Array([1, 2, 3]), { quantization: "INT8", heldOut })).rejects.toThrow(
      inHere.split("\n")[0]!
    )
  }, 60_000)
})
