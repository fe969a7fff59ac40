/**
 * The P2P adapter protocol (seed 9.2) between three real node processes on loopback, driven by the
 * CLI as users run it: A shares an adapter; B pulls it from A; D finds it from the announcements and
 * pulls it chunk by chunk from A and B, with no registry involved. B is started with the test-only
 * fault injection that corrupts the first chunk it serves: D refuses that chunk and fetches it from A.
 * A quality report signed by D's user changes the adapter's score on every node, and a restart keeps it.
 */
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { loadAdapter } from "../../src/compute/lora/AdapterFile.js"
import { localAdapterDir, saveLocalAdapter } from "../../src/compute/lora/LocalAdapters.js"
import type { AdapterPullReceipt } from "../../src/net/AdapterSwarm.js"
import { CHUNK_SIZE } from "../../src/net/AdapterWire.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { rpcAt } from "../support/RpcClient.js"
import { testKey, writeKeyFile } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"
import { until } from "../support/Until.js"

const exec = promisify(execFile)
const work = tempDir("adapter-swarm-")

const rpc = rpcAt

/** `edge-net-models ...` as the user whose home is `home`. */
const models = async (home: string, ...args: ReadonlyArray<string>) => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== "EDGE_NET_MODELS_CONFIG"))
  try {
    const { stdout } = await exec(process.execPath, ["--import", "tsx", "src/cli/edge-net-models.ts", ...args], {
      env: { ...env, HOME: home, EDGE_NET_HOME: path.join(home, "no-node") },
      maxBuffer: 16 * 1024 * 1024
    })
    return stdout
  } catch (error) {
    const failed = error as { stderr?: string; stdout?: string }
    throw new Error(`edge-net-models ${args.join(" ")} failed: ${failed.stderr ?? ""}${failed.stdout ?? ""}`)
  }
}

const scoreOn = (node: RunningNode) =>
  rpc(node.url, (client) => client.AdapterList({})).then((rows) => rows.find((row) => row.id === "coder"))

// A fresh key's reputation is the neutral 0.5: a network that asks 0.4 lets it share.
const genesis = { EDGE_NET_GENESIS: "adapterShareMinReputationPpm=400000", EDGE_NET_ADAPTER_ANNOUNCE_MS: "2000" }

describe("adapters shared between three nodes with no registry", () => {
  const homes = { alice: path.join(work, "alice"), bob: path.join(work, "bob"), dave: path.join(work, "dave") }
  let a: RunningNode
  let b: RunningNode
  let d: RunningNode
  let peerIds: Record<"a" | "b" | "d", string>
  const aliceKey = path.join(work, "keys", "alice.key")
  const daveKey = path.join(work, "keys", "dave.key")

  beforeAll(async () => {
    await Effect.runPromise(writeKeyFile(path.join(work, "keys"), "alice", testKey()))
    await Effect.runPromise(writeKeyFile(path.join(work, "keys"), "dave", testKey()))
    // An adapter of five and a half chunks, stored in Alice's models cache as training would leave it.
    const modules = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`layer${i}.q_proj`, {
      inFeatures: 2048,
      outFeatures: 2048,
      A: Float32Array.from({ length: 8 * 2048 }, () => Math.random() - 0.5),
      B: Float32Array.from({ length: 2048 * 8 }, () => Math.random() - 0.5)
    }]))
    await Effect.runPromise(saveLocalAdapter(path.join(homes.alice, ".edge-net", "models"), {
      id: "coder",
      name: "coder",
      description: "random factors, for the swarm",
      version: "1.0.0",
      createdAt: new Date().toISOString(),
      baseModel: "tiny-lm",
      baseModelDigest: "0".repeat(64),
      training: { steps: 0, finalLoss: 0, samples: 0, duration: 0 },
      quality: {},
      sharing: { public: true, domain: "code", license: "MIT" }
    }, { rank: 8, alpha: 16, modules }))

    a = await startNode(path.join(work, "a"), undefined, genesis)
    const view = await rpc(a.url, (client) => client.PeersList())
    const bootstrap = { EDGE_NET_BOOTSTRAP: view.listening[0]! }
    b = await startNode(path.join(work, "b"), undefined, {
      ...genesis,
      ...bootstrap,
      EDGE_NET_FAULT_INJECTION_CORRUPT_ADAPTER_CHUNKS: "1"
    })
    d = await startNode(path.join(work, "d"), undefined, { ...genesis, ...bootstrap })
    const idOf = async (node: RunningNode) => (await rpc(node.url, (client) => client.PeersList())).peerId!
    peerIds = { a: await idOf(a), b: await idOf(b), d: await idOf(d) }
  }, 180_000)

  afterAll(async () => {
    await Promise.all([a, b, d].filter((node) => node !== undefined).map((node) => node.kill("SIGTERM")))
  })

  it("pulls from A and B by the announcements, refusing B's corrupted chunk and taking it from A", async () => {
    await models(homes.alice, "adapters", "share", "coder", "--quality", "0.9", "--key", aliceKey, "--registry", a.url)

    const first = JSON.parse(
      await until(
        "B hears A's announcement",
        () => models(homes.bob, "adapters", "pull", "coder", "--node", b.url, "--json").catch(() => undefined)
      )
    ) as AdapterPullReceipt
    expect(first.sources).toEqual([{ peerId: peerIds.a, chunks: first.chunks }])
    expect(first.chunks).toBeGreaterThanOrEqual(5)

    await until("D hears both holders", async () => {
      const view = await rpc(d.url, (client) => client.AdapterPeersList())
      const holders = view.adapters.find((row) => row.id === "coder")?.holders ?? []
      return holders.length === 2 ? holders : undefined
    })
    const receipt = JSON.parse(await models(homes.dave, "adapters", "pull", "coder", "--node", d.url, "--json")) as
      & AdapterPullReceipt
      & { stored: string }
    expect(receipt.alreadyHeld).toBe(false)
    expect(receipt.refused).toHaveLength(1)
    expect(receipt.refused[0]).toMatchObject({ peerId: peerIds.b })
    expect(receipt.refused[0]!.reason).toMatch(/hashes to .* not its chunk_hash/)
    const taken = Object.fromEntries(receipt.sources.map((source) => [source.peerId, source.chunks]))
    expect(Object.keys(taken).sort()).toEqual([peerIds.a, peerIds.b].sort())
    expect(taken[peerIds.a]! + taken[peerIds.b]!).toBe(receipt.chunks)
    expect(receipt.bytes).toBeGreaterThan(5 * CHUNK_SIZE)

    // In Dave's cache, byte for byte Alice's adapter (its checksum and signature checked on load).
    const stored = await Effect.runPromise(loadAdapter(receipt.stored))
    const original = localAdapterDir(path.join(homes.alice, ".edge-net", "models"), "coder", "1.0.0")
    expect(stored.metadata.checksum).toBe(
      crypto.hash("sha256", fs.readFileSync(path.join(original, "adapter.safetensors")), "hex")
    )
  }, 240_000)

  it("moves the score on every node by Dave's signed report, and keeps it across a restart", async () => {
    const before = await scoreOn(a)
    expect(before?.score).toBeCloseTo(0.9, 6)
    const out = await models(
      homes.dave,
      "adapters",
      "report",
      "coder",
      "--score",
      "0.3",
      "--key",
      daveKey,
      "--node",
      d.url
    )
    expect(out).toMatch(/^reported coder at 0.3 as dave\.key: its score is now 0\.600 from 1 report\(s\)/)
    for (const node of [a, b, d]) {
      await until(`${node.url} records the report`, async () => {
        const row = await scoreOn(node)
        return row?.reports === 1 ? row : undefined
      })
      expect((await scoreOn(node))?.score).toBeCloseTo((0.9 + Math.fround(0.3)) / 2, 6)
    }
    await d.kill("SIGTERM")
    d = await startNode(d.dataDir, undefined, { ...genesis })
    expect(await scoreOn(d)).toMatchObject({ reports: 1 })
    expect((await scoreOn(d))?.score).toBeCloseTo(0.6, 6)
  }, 180_000)
})
