/**
 * Federated rounds through the node's own RPC handlers, in process on a SQLite data dir, each step
 * signed by the account it names: a coordinator opens a round on an adapter the node keeps, peers
 * submit the adapters they trained from it, and the aggregate is the mean of the dense updates (exact
 * when the peers share A, as FFA-LoRA trains); a robust rule keeps a scaled update out, records why,
 * and the attacker's reputation falls. The log replays and explains every round.
 */
import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { deltaWeight, scaleOf, SeededRandom } from "../../src/compute/lora/Adapter.js"
import { adapterDocument } from "../../src/compute/lora/AdapterJson.js"
import { loadLocalAdapter, localAdapterDir, saveLocalAdapter } from "../../src/compute/lora/LocalAdapters.js"
import { NodeKey } from "../../src/content/NodeKey.js"
import { nodeServices } from "../../src/layers/Node.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"
import { NodeApiRpcHandlers } from "../../src/rpc/NodeRpcHandlers.js"
import { sequencedLayer } from "../../src/rpc/Sequencing.js"
import { signedCommandsLayer } from "../../src/rpc/SignedCommandsLive.js"
import { cliArgs, startNode } from "../support/NodeProcess.js"
import { storeRandomAdapter } from "../support/SdkModels.js"
import { as, testKey, writeKeyFile } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const dataDir = tempDir("learning-node-")
const storeRoot = path.join(dataDir, "content")
const node = Layer.mergeAll(NodeApiRpcHandlers, signedCommandsLayer(), sequencedLayer, signingClientLayer).pipe(
  Layer.provideMerge(nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" }))
)

const coordinator = testKey()
const peers = [testKey(), testKey(), testKey(), testKey(), testKey()]
const attacker = peers[4]!

/** The base adapter with its B factors moved (A kept: the FFA-LoRA way peers train), scaled by `size`. */
const movedB = (base: LoraWeights, seed: number, size: number): LoraWeights => {
  const random = new SeededRandom(seed)
  return {
    ...base,
    modules: Object.fromEntries(
      Object.entries(base.modules).map(([name, module]) => [name, {
        ...module,
        B: Float32Array.from(module.B, (value) => value + (random.uniform() * 2 - 1) * size)
      }])
    )
  }
}

/** An update as a peer sends it: its adapter as one JSON document. */
const documentOf = (weights: LoraWeights, id: string, from = storeRoot) =>
  Effect.gen(function*() {
    const root = tempDir("learning-peer-")
    const base = yield* loadLocalAdapter(from, "base")
    const { checksum: _, signature: __, classifier: ___, ...description } = base.metadata
    yield* saveLocalAdapter(root, { ...description, id, version: "1.0.0" }, weights)
    return (yield* adapterDocument(localAdapterDir(root, id, "1.0.0"))).text
  })

const relativeDifference = (a: Float32Array, b: Float32Array) => {
  let difference = 0
  let norm = 0
  for (let i = 0; i < a.length; i++) {
    difference += (a[i]! - b[i]!) ** 2
    norm += b[i]! ** 2
  }
  return Math.sqrt(difference / norm)
}

describe("federated rounds", () => {
  it.scoped(
    "a round aggregates the dense updates exactly; a robust rule keeps a scaled update out and says why",
    () =>
      Effect.gen(function*() {
        const rpc = yield* RpcTest.makeClient(NodeApiRpcs)
        yield* NodeKey
        const base = yield* storeRandomAdapter(storeRoot, "tiny-lm", "base", 2, 3, 4)
        const honest = [0, 1, 2, 3].map((i) => movedB(base, 10 + i, 0.05))
        const documents = yield* Effect.forEach(honest, (weights, i) => documentOf(weights, `peer-${i}`))

        // FedAvg of two peers with equal samples: the mean of their dense updates, re-factored exactly.
        yield* as(coordinator)(rpc.LearnRoundOpen({
          roundId: "avg",
          coordinator: coordinator.account,
          base: { id: "base" },
          task: "style",
          rule: { _tag: "fedavg" },
          durationMs: 60_000,
          quorum: 2,
          result: { id: "base-avg", version: "1.0.0" }
        }))
        for (const i of [0, 1]) {
          yield* as(peers[i]!)(
            rpc.LearnRoundSubmit({ roundId: "avg", peer: peers[i]!.account, document: documents[i]!, samples: 50 })
          )
        }
        const averaged = yield* as(coordinator)(
          rpc.LearnRoundAggregate({ roundId: "avg", coordinator: coordinator.account })
        )
        expect(averaged.status).toBe("aggregated")
        expect(averaged.outcome!.verdicts.map((verdict) => verdict.kept)).toEqual([true, true])
        const result = yield* loadLocalAdapter(storeRoot, "base-avg")
        for (const [name, module] of Object.entries(result.weights.modules)) {
          const scale = scaleOf(base)
          const second = deltaWeight(honest[1]!.modules[name]!, 2, scale)
          const expected = deltaWeight(honest[0]!.modules[name]!, 2, scale).map((value, index) =>
            (value + second[index]!) / 2
          )
          expect(relativeDifference(deltaWeight(module, result.weights.rank, scaleOf(result.weights)), expected))
            .toBeLessThan(1e-4)
        }

        // Multi-Krum against one attacker whose update is scaled 40 times.
        yield* as(coordinator)(rpc.LearnRoundOpen({
          roundId: "robust",
          coordinator: coordinator.account,
          base: { id: "base" },
          task: "style",
          rule: { _tag: "multi-krum", attackers: 1, selected: 4 },
          durationMs: 60_000,
          quorum: 5,
          result: { id: "base-robust", version: "1.0.0" }
        }))
        const scaled = yield* documentOf(movedB(base, 99, 2), "attack")
        for (const [i, peer] of peers.entries()) {
          yield* as(peer)(rpc.LearnRoundSubmit({
            roundId: "robust",
            peer: peer.account,
            document: i === 4 ? scaled : documents[i]!,
            samples: 40,
            figures: { loss: 1.5 }
          }))
        }
        // One update per peer; another key cannot submit in a peer's name; only the coordinator aggregates.
        const again = yield* Effect.flip(
          as(peers[0]!)(
            rpc.LearnRoundSubmit({ roundId: "robust", peer: peers[0]!.account, document: documents[1]!, samples: 40 })
          )
        )
        expect(again.message).toMatch(/^round robust: [0-9a-f]{32} already submitted update [0-9a-f]{12}$/)
        const impostor = yield* Effect.flip(
          as(attacker)(
            rpc.LearnRoundSubmit({ roundId: "robust", peer: peers[1]!.account, document: scaled, samples: 40 })
          )
        )
        expect(impostor.message).toMatch(/^LearnRoundSubmit refused: /)
        const early = yield* Effect.flip(
          as(attacker)(
            rpc.LearnRoundAggregate({ roundId: "robust", coordinator: attacker.account })
          )
        )
        expect(early.message).toBe(`round robust: only its coordinator ${coordinator.account} aggregates it`)
        const robust = yield* as(coordinator)(
          rpc.LearnRoundAggregate({ roundId: "robust", coordinator: coordinator.account })
        )
        const verdicts = robust.outcome!.verdicts
        expect(verdicts.find((verdict) => verdict.peer === attacker.account)).toMatchObject({ kept: false })
        expect(verdicts.filter((verdict) => verdict.kept)).toHaveLength(4)
        verdicts.forEach((verdict) => expect(verdict.reason.length).toBeGreaterThan(0))
        const standing = yield* rpc.ReputationOf({ node: attacker.account })
        expect(standing.failures).toBe(1)
        expect((yield* rpc.ReputationOf({ node: peers[0]!.account })).failures).toBe(0)
        // After the deadline, anyone closes a round; the log explains, replays and verifies.
        yield* TestClock.adjust("61 seconds")
        const closed = yield* as(attacker)(rpc.LearnRoundClose({ roundId: "robust" }))
        expect(closed).toMatchObject({ status: "closed", closedBecause: "aggregated" })
        const late = yield* Effect.flip(
          as(peers[0]!)(
            rpc.LearnRoundSubmit({ roundId: "robust", peer: peers[0]!.account, document: documents[2]!, samples: 1 })
          )
        )
        expect(late.message).toBe("round robust: the round is closed")
        const explained = yield* rpc.AuditExplain({ kind: "round", id: "robust" })
        expect(explained.why).toContain(`${attacker.account}'s update was excluded: `)
        expect(explained.why).toContain("It closed: aggregated.")
        expect((yield* rpc.AuditReplay()).ok).toBe(true)
        expect((yield* rpc.AuditVerify()).ok).toBe(true)
      }).pipe(Effect.provide(node)),
    60_000
  )

  it.live(
    "`edge-net learn round` drives the same RPC, each step signed by its account's key",
    () =>
      Effect.gen(function*() {
        const data = tempDir("learning-cli-")
        const running = yield* Effect.acquireRelease(
          Effect.promise(() => startNode(data)),
          (started) => Effect.promise(() => started.kill("SIGTERM"))
        )
        const keys = tempDir("learning-keys-")
        const root = path.join(data, "content")
        const base = yield* storeRandomAdapter(root, "tiny-lm", "base", 2, 3, 4)
        const [alice, bob] = [testKey(), testKey()]
        yield* writeKeyFile(keys, "coordinator", coordinator)
        yield* writeKeyFile(keys, "alice", alice)
        yield* writeKeyFile(keys, "bob", bob)
        const files = yield* Effect.forEach([["alice", alice], ["bob", bob]] as const, ([name, peer], i) =>
          Effect.gen(function*() {
            const text = yield* documentOf(movedB(base, 40 + i, 0.05), `cli-${i}`, root)
            const file = path.join(keys, `update-${i}.json`)
            fs.writeFileSync(file, text)
            return { peer, file, key: path.join(keys, `${name}.key`) }
          }))
        const run = (...args: ReadonlyArray<string>) =>
          Effect.promise(() =>
            exec(process.execPath, cliArgs("learn", "round", ...args, "--node", running.url)).then(
              ({ stdout }) => ({ code: 0, stdout, stderr: "" }),
              (error: { code: number; stdout: string; stderr: string }) =>
                error
            )
          )
        const opened = yield* run(
          "open",
          "r1",
          "--coordinator",
          coordinator.account,
          "--key",
          path.join(keys, "coordinator.key"),
          "--base",
          "base",
          "--rule",
          "median",
          "--quorum",
          "2",
          "--result",
          "base-r1"
        )
        expect(opened.stdout).toMatch(/^round r1: open, median on base@1\.0\.0, 0\/2 update\(s\)/)
        for (const { file, key, peer } of files) {
          const submitted = yield* run(
            "submit",
            "r1",
            "--peer",
            peer.account,
            "--key",
            key,
            "--adapter",
            file,
            "--samples",
            "20"
          )
          expect(submitted.code).toBe(0)
        }
        const aggregated = yield* run(
          "aggregate",
          "r1",
          "--coordinator",
          coordinator.account,
          "--key",
          path.join(keys, "coordinator.key"),
          "--json"
        )
        const view = JSON.parse(aggregated.stdout) as {
          status: string
          outcome: { verdicts: Array<{ kept: boolean }> }
        }
        expect(view.status).toBe("aggregated")
        expect(view.outcome.verdicts).toHaveLength(2)
        const shown = yield* run("show", "r1")
        expect(shown.stdout).toContain("result base-r1@1.0.0 (median, ")
        const missing = yield* run("show", "nothing")
        expect(missing.code).toBe(1)
        expect(missing.stderr.trim()).toBe("edge-net: round nothing: no such round")
      }).pipe(Effect.scoped),
    120_000
  )
})
