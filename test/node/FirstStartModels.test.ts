/**
 * Models on first start, with a real node process and the real CLI: a new node publishes the
 * reference models in FP32, INT8 and INT4 into its own registry, signed with its key and trusted by
 * this machine's `edge-net-models`, so a user lists, pulls and runs them at once; a restart publishes
 * nothing again.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, describe, expect, it } from "vitest"
import { cliArgs, freePort, modelsCliArgs, type RunningNode, startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const home = tempDir("first-start-home-")
const dataDir = tempDir("first-start-node-")
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "EDGE_NET_MODELS_CONFIG")),
  HOME: home,
  EDGE_NET_HOME: path.join(home, "no-node")
}
const models = (...args: ReadonlyArray<string>) =>
  exec(process.execPath, modelsCliArgs(...args), { env, maxBuffer: 16 * 1024 * 1024 })

const REFERENCE_IDS = [
  "tiny-encoder",
  "tiny-encoder-int4",
  "tiny-encoder-int8",
  "tiny-lm",
  "tiny-lm-int4",
  "tiny-lm-int8"
]

interface Listed {
  readonly id: string
  readonly quantization?: string
}

/** The registry's listing once it holds every reference model (they are published in the background). */
const catalogOf = async (url: string): Promise<ReadonlyArray<Listed>> => {
  const deadline = Date.now() + 60_000
  for (;;) {
    const listed = (await fetch(`${url}/v1/models`).then((response) => response.json())) as ReadonlyArray<Listed>
    if (REFERENCE_IDS.every((id) => listed.some((model) => model.id === id))) return listed
    if (Date.now() > deadline) throw new Error(`the catalog stayed at ${listed.map((model) => model.id).join(", ")}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

let node: RunningNode | undefined
afterAll(async () => {
  await node?.kill("SIGTERM")
})

describe("models on first start", () => {
  it(
    "a new node lists, serves and signs the reference models; its CLI pulls and runs one; a restart adds nothing",
    async () => {
      const port = await freePort()
      const registry = `http://127.0.0.1:${port}`
      // This machine's CLI points at the node before it starts, as `npm start` on the default port does.
      await models("config", "set", "registry", registry)
      node = await startNode(dataDir, port, { EDGE_NET_FIRST_START_MODELS: "on", HOME: home })
      const catalog = await catalogOf(node.url)
      expect(catalog.find((model) => model.id === "tiny-lm-int4")?.quantization).toBe("INT4")
      expect(catalog.find((model) => model.id === "tiny-encoder-int8")?.quantization).toBe("INT8")
      expect(node.output()).toContain(`dashboard: ${registry}/ui`)
      expect(node.output()).toContain(`try: npx edge-net-models list --registry ${registry}`)

      // The node recorded the quantizing job in its journal, and the manifest it signed names that job
      // and the job's artifact (the quantizing ran in a child process; the journal and key stay in the node).
      const manifest = (await fetch(`${node.url}/v1/models/tiny-lm-int8`).then((response) => response.json())) as {
        artifacts: { model: { sha256: string } }
        optimization: { optimizerJob: string }
        signatures: ReadonlyArray<{ keyId: string }>
      }
      expect(manifest.optimization.optimizerJob).toBe("first-start-tiny-lm-int8")
      const job = JSON.parse(
        (await exec(
          process.execPath,
          cliArgs(
            "jobs",
            "show",
            "optimize",
            "first-start-tiny-lm-int8",
            "--node",
            node.url,
            "--data",
            dataDir,
            "--json"
          ),
          { env }
        )).stdout
      ) as { why: string; events: ReadonlyArray<{ eventType: string }> }
      expect(job.events.map((event) => event.eventType)).toEqual(["JobRequested", "JobCompleted"])
      expect(job.why).toContain(`It completed: sha256 ${manifest.artifacts.model.sha256.slice(0, 12)}`)

      const listed = JSON.parse((await models("list", "--json")).stdout) as ReadonlyArray<Listed>
      expect(listed.map((model) => model.id)).toEqual(expect.arrayContaining(REFERENCE_IDS))

      // Trusted without a step of the user's: the node put its own key in this machine's trust store.
      const deadline = Date.now() + 10_000
      while (!fs.readdirSync(path.join(home, ".edge-net", "keys")).some((file) => file.endsWith(".pub"))) {
        if (Date.now() > deadline) throw new Error("the node's key was never trusted by the CLI")
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      await models("pull", "tiny-encoder-int8")
      const embedded = JSON.parse(
        (await models("run", "tiny-encoder-int8", "--embed", "a young dog", "--json")).stdout
      ) as ReadonlyArray<{ text: string; embedding: ReadonlyArray<number> }>
      expect(embedded[0]?.text).toBe("a young dog")
      // Mean-pooled and L2-normalised: a unit vector.
      const norm = Math.hypot(...(embedded[0]?.embedding ?? []))
      expect(norm).toBeCloseTo(1, 3)

      const head = (await fetch(`${node.url}/health`).then((response) => response.json())) as {
        head: { position: number }
      }
      await node.kill("SIGTERM")
      node = await startNode(dataDir, port, { EDGE_NET_FIRST_START_MODELS: "on", HOME: home })
      await catalogOf(node.url)
      // Give the background publisher the time it took to publish everything the first time.
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const after = (await fetch(`${node.url}/health`).then((response) => response.json())) as {
        head: { position: number }
      }
      expect(after.head.position).toBe(head.head.position)
      expect(node.output()).not.toContain("published tiny-")
    },
    120_000
  )
})
