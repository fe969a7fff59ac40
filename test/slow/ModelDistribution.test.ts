/**
 * Model distribution end to end, with real processes on loopback: node A publishes, a plain static
 * HTTP server plays the CDN, and B (the `edge-net-models` CLI in its own home) pulls from the CDN, from
 * A's IPFS gateway and from A as a peer; B is SIGKILLed mid-pull and resumes; a CDN that flips a byte
 * is caught; bad manifests are refused with one clear line.
 */
import { Either } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as readline from "node:readline"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parseManifest } from "../../src/content/Manifest.js"
import type { ModelManifest } from "../../src/content/Manifest.js"
import { signManifest } from "../../src/content/ManifestSigning.js"
import { signerFromKeyText } from "../../src/content/TrustStore.js"
import { compileCli, startCompiledNode } from "../support/CompiledCli.js"
import type { RunningNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const MODEL_BYTES = 12 * 1024 * 1024 + 12_345

interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

// The compiled CLI and node: dozens of runs through tsx's loader would cost more than the work they check.
const compiled = compileCli()
const modelsArgs = (
  ...args: ReadonlyArray<string>
) => [path.join(compiled, "src", "cli", "edge-net-models.js"), ...args]
const envFor = (home: string) => {
  const { EDGE_NET_MODELS_CONFIG: _, ...env } = process.env
  return { ...env, HOME: home }
}

const cli = async (home: string, ...args: ReadonlyArray<string>): Promise<CliResult> => {
  try {
    const { stderr, stdout } = await exec(process.execPath, modelsArgs(...args), {
      env: envFor(home),
      maxBuffer: 64 * 1024 * 1024
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

const ok = async (home: string, ...args: ReadonlyArray<string>) => {
  const result = await cli(home, ...args)
  if (result.code !== 0) {
    throw new Error(`edge-net-models ${args.join(" ")} failed (${result.code}):\n${result.stderr}\n${result.stdout}`)
  }
  return result
}

interface StaticServer {
  readonly url: string
  readonly process: ChildProcess
  /** Bytes served per path so far. */
  readonly served: (file: string) => number
}

const startStatic = async (root: string, flip?: string): Promise<StaticServer> => {
  const child = spawn(process.execPath, [
    "--import",
    "tsx",
    "test/support/static-server.ts",
    "--root",
    root,
    ...(flip === undefined ? [] : ["--flip", flip])
  ], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  const served = new Map<string, number>()
  const lines = readline.createInterface({ input: child.stdout! })
  const port = await new Promise<number>((resolve) =>
    lines.on("line", (line) => {
      const message = JSON.parse(line) as { listening?: number; path?: string; bytes?: number }
      if (message.listening !== undefined) resolve(message.listening)
      if (message.path !== undefined) served.set(message.path, (served.get(message.path) ?? 0) + (message.bytes ?? 0))
    })
  )
  return { url: `http://127.0.0.1:${port}`, process: child, served: (file) => served.get(file) ?? 0 }
}

interface PullReceiptJson {
  readonly artifacts: ReadonlyArray<{
    readonly filename: string
    readonly bytesFetched: number
    readonly bytesReused: number
    readonly cached: boolean
    readonly sources: ReadonlyArray<{ readonly name: string; readonly bytes: number }>
  }>
}

/** The receipt a `--json` pull prints last, after its one-line progress events. */
const doneReceipt = (stdout: string) =>
  JSON.parse(stdout.slice(stdout.lastIndexOf("{\n  \"event\": \"done\""))) as PullReceiptJson

const work = tempDir("distribution-")
const files = path.join(work, "files")
const cdnRoot = path.join(work, "cdn")
const fakeRegistryRoot = path.join(work, "fake-registry")
const publisherHome = path.join(work, "publisher")
let nodeA: RunningNode
let cdn: StaticServer
let badCdn: StaticServer
let fakeRegistry: StaticServer
let alicePublicKey = ""
const modelBytes = crypto.randomBytes(MODEL_BYTES)

/** A fresh puller home that trusts alice and knows the registry, CDN, gateway and peer. */
const pullerHome = async (name: string, options: { cdn?: string; registry?: string } = {}) => {
  const home = path.join(work, name)
  fs.mkdirSync(home, { recursive: true })
  const config = path.join(home, ".edge-net", "models.yaml")
  fs.mkdirSync(path.dirname(config), { recursive: true })
  fs.writeFileSync(
    config,
    [
      "version: 1",
      `registry: ${options.registry ?? nodeA.url}`,
      `cdn:\n  endpoint: ${options.cdn ?? cdn.url}\n  timeout: 5000\n  retries: 1`,
      `ipfs:\n  gateways: []`,
      `peers: []`
    ].join("\n") + "\n"
  )
  await ok(home, "keys", "trust", "alice", alicePublicKey)
  return home
}

/** Alice publishes the model's files as tiny-lm at `version` to the registry at `registry`. */
const publishTo = (registry: string, version: string) =>
  ok(
    publisherHome,
    "publish",
    path.join(files, "model.onnx"),
    path.join(files, "tokenizer.json"),
    path.join(files, "config.json"),
    "--name",
    "Tiny LM",
    "--version",
    version,
    "--type",
    "text-generation",
    "--quantization",
    "INT8",
    "--key",
    "alice",
    "--registry",
    registry
  )

const aliceSigner = () =>
  signerFromKeyText(fs.readFileSync(path.join(publisherHome, ".edge-net", "keys", "alice.key"), "utf8"), "alice")

beforeAll(async () => {
  fs.mkdirSync(files, { recursive: true })
  fs.writeFileSync(path.join(files, "model.onnx"), modelBytes)
  fs.writeFileSync(
    path.join(files, "tokenizer.json"),
    JSON.stringify({ model: { type: "BPE", vocab: { a: 0, b: 1 } } })
  )
  fs.writeFileSync(path.join(files, "config.json"), JSON.stringify({ model_type: "gpt2", n_layer: 2 }))
  nodeA = await startCompiledNode(compiled, path.join(work, "node-a"))
  const generated = await ok(publisherHome, "keys", "generate", "alice", "--json")
  alicePublicKey = (JSON.parse(generated.stdout) as { publicKey: string }).publicKey
  for (const version of ["1.0.0", "1.1.0"]) await publishTo(nodeA.url, version)
  // The CDN holds the files in the seed's layout: <base>/<id>/v<version>/<filename>.
  for (const version of ["1.0.0", "1.1.0"]) {
    const dir = path.join(cdnRoot, "tiny-lm", `v${version}`)
    fs.mkdirSync(dir, { recursive: true })
    for (const name of fs.readdirSync(files)) fs.copyFileSync(path.join(files, name), path.join(dir, name))
  }
  cdn = await startStatic(cdnRoot)
  badCdn = await startStatic(cdnRoot, `tiny-lm/v1.1.0/model.onnx:${5 * 262_144 + 17}`)
  fs.mkdirSync(path.join(fakeRegistryRoot, "v1", "models"), { recursive: true })
  fakeRegistry = await startStatic(fakeRegistryRoot)
}, 120_000)

afterAll(async () => {
  for (const server of [cdn, badCdn, fakeRegistry]) server?.process.kill("SIGTERM")
  await nodeA?.kill("SIGTERM")
})

describe("model distribution across processes", () => {
  it("pulls from the CDN, from A's gateway and from A as a peer, each alone and all at once", async () => {
    for (const source of ["http", "ipfs", "peer"] as const) {
      const home = await pullerHome(`only-${source}`)
      const pulled = await ok(home, "pull", "tiny-lm", "--version", "1.1.0", "--source", source, "--json")
      const model = doneReceipt(pulled.stdout).artifacts.find((a) => a.filename === "model.onnx")!
      expect(model.bytesFetched).toBe(MODEL_BYTES)
      expect(model.sources.filter((s) => s.bytes > 0).map((s) => s.name.split(" ")[0])).toEqual([
        source === "http" ? "cdn" : source
      ])
      await ok(home, "verify", "tiny-lm", "--check-signature")
    }
    const home = await pullerHome("all-sources")
    const output = path.join(home, "out")
    const pulled = await ok(home, "pull", "tiny-lm", "--json", "--output", output)
    const model = doneReceipt(pulled.stdout).artifacts.find((a) => a.filename === "model.onnx")!
    expect(model.sources.filter((s) => s.bytes > 0).length).toBeGreaterThanOrEqual(2)
    expect(fs.readFileSync(path.join(output, "model.onnx")).equals(modelBytes)).toBe(true)
    const again = await ok(home, "pull", "tiny-lm", "--json")
    expect(doneReceipt(again.stdout).artifacts.every((a) => a.cached)).toBe(true)
  }, 120_000)

  it("finds a peer that holds the model from its gossip announcement, with no peer in config", async () => {
    // Node B joins A's network through A's peer address and holds the model (published to it as well).
    const edgeNet = (...args: ReadonlyArray<string>) =>
      exec(process.execPath, [path.join(compiled, "src", "cli", "edge-net.js"), ...args], { env: envFor(work) })
    const aPeers = JSON.parse((await edgeNet("peers", "list", "--node", nodeA.url, "--json")).stdout) as {
      listening: ReadonlyArray<string>
    }
    const nodeB = await startCompiledNode(compiled, path.join(work, "node-b"), {
      EDGE_NET_BOOTSTRAP: aPeers.listening[0]!
    })
    try {
      await publishTo(nodeB.url, "1.1.0")
      const sha256 = crypto.createHash("sha256").update(modelBytes).digest("hex")
      const deadline = Date.now() + 30_000
      while (true) {
        const answer = await fetch(`${nodeA.url}/v1/blobs/sha256-${sha256}/holders`)
        const { holders } = (await answer.json()) as { holders: ReadonlyArray<{ url: string }> }
        if (holders.some((holder) => holder.url === nodeB.url)) break
        if (Date.now() > deadline) throw new Error(`A never heard B announce the model: ${JSON.stringify(holders)}`)
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
      // The puller knows only the registry (A); B comes from A's gossip.
      const home = await pullerHome("gossip")
      const pulled = await ok(home, "pull", "tiny-lm", "--version", "1.1.0", "--source", "peer", "--json")
      const model = doneReceipt(pulled.stdout).artifacts.find((a) => a.filename === "model.onnx")!
      expect(model.bytesFetched).toBe(MODEL_BYTES)
      const fromB = model.sources.find((source) => source.name === `peer ${nodeB.url} (gossip)`)
      expect(fromB?.bytes).toBeGreaterThan(0)
      await ok(home, "verify", "tiny-lm", "--check-signature")
    } finally {
      await nodeB.kill("SIGTERM")
    }
  }, 120_000)

  it("resumes after SIGKILL without fetching again what it already verified", async () => {
    const home = await pullerHome("resume")
    await ok(home, "config", "set", "download.maxBytesPerSecond", "3MB")
    const child = spawn(process.execPath, modelsArgs("pull", "tiny-lm", "--source", "http", "--json"), {
      env: envFor(home),
      stdio: ["ignore", "pipe", "pipe"]
    })
    const lines = readline.createInterface({ input: child.stdout! })
    const exited = new Promise<number | null>((resolve) =>
      child.once("exit", (_code, signal) => resolve(signal === "SIGKILL" ? -9 : _code))
    )
    await new Promise<void>((resolve, reject) => {
      lines.on("line", (line) => {
        const message = JSON.parse(line) as { event?: string; label?: string; bytesDone?: number }
        if (
          message.event === "progress" && message.label?.endsWith("model.onnx") &&
          (message.bytesDone ?? 0) > 6 * 1024 * 1024
        ) {
          child.kill("SIGKILL")
          resolve()
        }
      })
      child.once("exit", () => reject(new Error("the pull finished before it could be killed")))
    })
    expect(await exited).toBe(-9)
    const servedBefore = cdn.served("tiny-lm/v1.1.0/model.onnx")
    await ok(home, "config", "set", "download.maxBytesPerSecond", "0")
    const resumed = await ok(home, "pull", "tiny-lm", "--source", "http", "--json")
    const model = doneReceipt(resumed.stdout).artifacts.find((a) => a.filename === "model.onnx")!
    expect(model.bytesReused).toBeGreaterThanOrEqual(2 * 1024 * 1024)
    expect(model.bytesFetched + model.bytesReused).toBe(MODEL_BYTES)
    // The second run asked the CDN only for what the first had not verified.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(cdn.served("tiny-lm/v1.1.0/model.onnx") - servedBefore).toBe(model.bytesFetched)
    await ok(home, "verify", "tiny-lm")
  }, 120_000)

  it("drops a CDN that flips a byte, keeps bad bytes out of the store, and completes from the others", async () => {
    const home = await pullerHome("flipped", { cdn: badCdn.url })
    const pulled = await ok(home, "pull", "tiny-lm")
    expect(pulled.stderr).toMatch(/dropped cdn .*: .*(do not match|does not match)/)
    expect(pulled.stdout).toContain("pulled tiny-lm@1.1.0")
    const verified = await ok(home, "verify", "tiny-lm", "--json")
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true })
    const info = JSON.parse((await ok(home, "cache", "info", "--json")).stdout) as { blobs: number }
    expect(info.blobs).toBe(3)
  }, 120_000)

  it("refuses unsigned, expired, wrongly signed and rolled-back manifests with a clear message", async () => {
    const published = parseManifest(await (await fetch(`${nodeA.url}/v1/models/tiny-lm?version=1.1.0`)).json())
    const { signatures: _, ...unsigned } = Either.getOrThrow(published) as ModelManifest
    const serve = (manifest: unknown) =>
      fs.writeFileSync(path.join(fakeRegistryRoot, "v1", "models", "tiny-lm"), JSON.stringify(manifest))
    const home = await pullerHome("refusals", { registry: fakeRegistry.url })
    const refusal = async (expected: string) => {
      const result = await cli(home, "pull", "tiny-lm")
      expect(result.code).toBe(1)
      expect(result.stderr.trim()).toBe(`edge-net-models: ${expected}`)
    }
    serve(unsigned)
    await refusal("manifest tiny-lm@1.1.0 is not signed")
    serve(
      signManifest(
        { ...unsigned, publishedAt: "2020-01-01T00:00:00Z", expiresAt: "2021-01-01T00:00:00Z" },
        aliceSigner()
      )
    )
    await refusal("manifest tiny-lm@1.1.0 is expired (expired 2021-01-01T00:00:00Z)")
    serve({ ...signManifest(unsigned, aliceSigner()), name: "Not what alice signed" })
    await refusal("manifest tiny-lm@1.1.0: signature by key alice does not verify")
    const mallory = signerFromKeyText(JSON.stringify({ type: "ed25519", seed: "11".repeat(32) }), "mallory")
    serve(signManifest(unsigned, mallory))
    await refusal("manifest tiny-lm@1.1.0 is signed only by untrusted key mallory")
    expect(fs.existsSync(path.join(home, ".edge-net", "models", "manifests", "tiny-lm"))).toBe(false)

    const real = await pullerHome("rollback")
    await ok(real, "pull", "tiny-lm")
    const rolledBack = await cli(real, "pull", "tiny-lm@1.0.0")
    expect(rolledBack.code).toBe(1)
    expect(rolledBack.stderr.trim()).toBe(
      "edge-net-models: manifest tiny-lm@1.0.0 is a rollback: 1.1.0 is already trusted (pass --allow-rollback to accept it)"
    )
    await ok(real, "pull", "tiny-lm@1.0.0", "--allow-rollback")
  }, 120_000)
})
