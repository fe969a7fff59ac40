/**
 * `edge-net-models optimize --publish` against a real registry node: the optimized model, its
 * tokenizer and config are registered under a signed manifest that carries what the optimizer
 * measured; a release line without --version is one clear line and writes nothing.
 */
import { Either } from "effect"
import { execFile } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, describe, expect, it } from "vitest"
import { parseManifest } from "../../src/content/Manifest.js"
import { trustPolicy, verifyManifest } from "../../src/content/ManifestSigning.js"
import { modelsCliArgs, type RunningNode, startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const work = tempDir("optimize-publish-")
const models = (...args: ReadonlyArray<string>) =>
  exec(process.execPath, modelsCliArgs(...args), {
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "EDGE_NET_MODELS_CONFIG")),
      HOME: work,
      EDGE_NET_HOME: path.join(work, "no-node")
    },
    maxBuffer: 32 * 1024 * 1024
  })

let node: RunningNode | undefined
afterAll(async () => {
  await node?.kill("SIGTERM")
})

describe("edge-net-models optimize --publish", () => {
  it("registers the INT8 reference LM with its quality, latency and perplexity in a signed manifest", async () => {
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519")
    const keyFile = path.join(work, "alice.pem")
    fs.writeFileSync(keyFile, privateKey.export({ format: "pem", type: "pkcs8" }))
    const alicePublicKey = Buffer.from(publicKey.export({ format: "der", type: "spki" })).subarray(-32).toString("hex")
    const calibration = path.join(work, "calibration.jsonl")
    fs.writeFileSync(
      calibration,
      [
        "Call me Ishmael. Some years ago, never mind how long precisely, having little money in my purse.",
        "It was a cold morning when the whale was seen off the bow of the ship.",
        "The captain stood on the deck and looked at the sea for a long time.",
        "There is a wisdom that is woe; but there is a woe that is madness.",
        "And the sea rolled on as it rolled five thousand years ago."
      ].map((text) => JSON.stringify({ text })).join("\n") + "\n"
    )
    const output = path.join(work, "tiny-lm.int8.onnx")

    // No --version: refused at once, before any work, while the registry node comes up.
    const [unversioned, started] = await Promise.all([
      models("optimize", "models/reference/tiny-lm/model.onnx", "--publish", "--output", output).catch((
        error: { code: number; stderr: string }
      ) => error),
      startNode(path.join(work, "node"))
    ])
    node = started
    expect((unversioned as { code: number }).code).toBe(1)
    expect((unversioned as { stderr: string }).stderr).toBe(
      "edge-net-models: optimize --publish needs --version (the release's semantic version, e.g. 1.0.0)\n"
    )
    expect(fs.existsSync(output)).toBe(false)

    const { stdout } = await models(
      "optimize",
      "models/reference/tiny-lm/model.onnx",
      "--quantization",
      "INT8",
      "--calibration-data",
      calibration,
      "--publish",
      "--version",
      "1.0.0",
      "--key",
      keyFile,
      "--registry",
      node.url,
      "--license",
      "MIT",
      "--output",
      output,
      "--json"
    )
    const lines = stdout.slice(0, stdout.indexOf("{\n  \"event\": \"done\"")).trim().split("\n").map((line) =>
      JSON.parse(line) as { event: string; step: string }
    )
    expect(lines.every((line) => line.event === "progress")).toBe(true)
    expect(lines.map((line) => line.step)).toContain("validate")
    const done = JSON.parse(stdout.slice(stdout.indexOf("{\n  \"event\": \"done\""))) as {
      output: string
      published: { uploaded: Array<string> }
    }
    expect(done.output).toBe(output)
    expect(done.published.uploaded.sort()).toEqual(["config.json", "tiny-lm.int8.onnx", "tokenizer.json"])

    const response = await fetch(`${node.url}/v1/models/tiny-lm-int8?version=1.0.0`)
    expect(response.status).toBe(200)
    const manifest = parseManifest(await response.json())
    if (Either.isLeft(manifest)) throw manifest.left
    const { optimization, benchmarks, artifacts, type, license } = manifest.right
    expect({ type, license }).toEqual({ type: "text-generation", license: "MIT" })
    expect(optimization).toMatchObject({ quantization: "INT8", format: "QDQ" })
    expect(optimization?.sizeRatio).toBeLessThan(0.3)
    expect(optimization?.quality?.["cosine"]).toBeGreaterThan(0.999)
    expect(Math.abs(optimization?.quality?.["perplexityDelta"] ?? Infinity)).toBeLessThan(2)
    expect(benchmarks?.latencyMs?.["onnxruntime-node"]).toBeGreaterThan(0)
    expect(benchmarks?.baselineLatencyMs?.["onnxruntime-node"]).toBeGreaterThan(0)
    expect(benchmarks?.perplexity).toBe(optimization?.quality?.["perplexity"])
    expect(artifacts["model"]?.sha256).toBe(crypto.createHash("sha256").update(fs.readFileSync(output)).digest("hex"))
    expect(Object.keys(artifacts).sort()).toEqual(["config", "model", "tokenizer"])
    const verified = verifyManifest(manifest.right, trustPolicy([["alice", alicePublicKey]]), new Date())
    expect(Either.isRight(verified) && verified.right.verifiedBy).toEqual(["alice"])
  }, 60_000)
})
