/** `edge-net-models info | optimize | run` on the reference models, as a user runs them. */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { modelsCliArgs } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const models = (...args: ReadonlyArray<string>) =>
  exec(process.execPath, modelsCliArgs(...args), {
    env: { ...process.env, HOME: tempDir("home-") },
    maxBuffer: 32 * 1024 * 1024
  })

describe("edge-net-models on ONNX files", () => {
  it("info shows operators and parameters; optimize writes a validated INT8 model; run embeds with it", async () => {
    const info = JSON.parse((await models("info", "models/reference/tiny-encoder/model.onnx", "--json")).stdout) as {
      onnx: { opCounts: Array<{ op: string; count: number }> }
    }
    expect(info.onnx.opCounts.find((entry) => entry.op === "MatMul")?.count).toBeGreaterThan(0)
    const dir = tempDir("optimize-")
    for (const file of ["tokenizer.json", "tokenizer_config.json", "config.json"]) {
      fs.copyFileSync(`models/reference/tiny-encoder/${file}`, path.join(dir, file))
    }
    const target = path.join(dir, "model.onnx")
    const { stdout } = await models(
      "optimize",
      "models/reference/tiny-encoder/model.onnx",
      "--quantization",
      "INT8",
      "--output",
      target,
      "--json"
    )
    // One JSON line per progress step, then the result as the "done" event.
    const optimized = JSON.parse(stdout.slice(stdout.indexOf("{\n  \"event\": \"done\""))) as {
      output: string
      report: { sizeRatio: number; cosine: number }
    }
    expect(optimized.output).toBe(target)
    expect(optimized.report.sizeRatio).toBeLessThan(0.6)
    expect(optimized.report.cosine).toBeGreaterThan(0.99)
    const embedded = JSON.parse((await models("run", dir, "--embed", "a young dog", "--json")).stdout) as Array<
      { embedding: Array<number> }
    >
    expect(embedded[0]!.embedding).toHaveLength(192)
    const refused = await models(
      "optimize",
      "models/reference/tiny-encoder/model.onnx",
      "--quantization",
      "INT4",
      "--min-cosine",
      "0.9999999",
      "--output",
      path.join(dir, "x.onnx")
    ).catch((error: { code: number; stderr: string }) => error)
    expect((refused as { code: number }).code).toBe(1)
    expect((refused as { stderr: string }).stderr).toMatch(
      /^edge-net-models: refused: cosine 0\.\d{4} < 0\.9999999 \(size/
    )
    expect(fs.existsSync(path.join(dir, "x.onnx"))).toBe(false)
  }, 120_000)
})
