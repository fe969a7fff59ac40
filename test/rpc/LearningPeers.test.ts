/**
 * Rounds settled at their deadline, joining a round, and gossip merges, through the node's own RPC
 * handlers in process on a SQLite data dir (the network path has its own test, LearningNetwork in
 * test/slow): a round with its quorum is aggregated when its deadline passes and one below it fails
 * with the reason; a node joins a round by training from its base on its own data; a neighbour's
 * signed push is merged as the weighted mean of the two updates. The log replays and verifies.
 */
import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream, TestClock } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { roundDeadlines } from "../../src/actors/learning/RoundDeadlines.js"
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { deltaWeight, scaleOf, SeededRandom } from "../../src/compute/lora/Adapter.js"
import { adapterDocument } from "../../src/compute/lora/AdapterJson.js"
import { loadLocalAdapter, localAdapterDir, saveLocalAdapter } from "../../src/compute/lora/LocalAdapters.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { NodeKey } from "../../src/content/NodeKey.js"
import { nodeServices } from "../../src/layers/Node.js"
import { peerIdOfPublicKey } from "../../src/net/PeerBook.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"
import { NodeApiRpcHandlers } from "../../src/rpc/NodeRpcHandlers.js"
import { sequencedLayer } from "../../src/rpc/Sequencing.js"
import { signedCommandsLayer } from "../../src/rpc/SignedCommandsLive.js"
import { REFERENCE, storeRandomAdapter } from "../support/SdkModels.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const dataDir = tempDir("learning-peers-")
const storeRoot = path.join(dataDir, "content")
const node = Layer.mergeAll(NodeApiRpcHandlers, signedCommandsLayer(), sequencedLayer, signingClientLayer).pipe(
  Layer.provideMerge(roundDeadlines),
  Layer.provideMerge(nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" }))
)

const coordinator = testKey()
const peers = [testKey(), testKey(), testKey()]

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

const documentOf = (weights: LoraWeights, id: string) =>
  Effect.gen(function*() {
    const root = tempDir("learning-peer-")
    const base = yield* loadLocalAdapter(storeRoot, "base")
    const { checksum: _, signature: __, classifier: ___, ...description } = base.metadata
    yield* saveLocalAdapter(root, { ...description, id, version: "1.0.0" }, weights)
    return (yield* adapterDocument(localAdapterDir(root, id, "1.0.0"))).text
  })

const story = [
  "The keeper of the lighthouse climbed the stairs each evening and lit the lamp before the sun went down.",
  "Ships passed the rocks at night, and their captains watched for the light that the keeper kept burning.",
  "In winter the storms came from the north, and the keeper wrote in his book the names of the ships he saw."
]
const text = Array.from({ length: 9 }, (_, i) => story[i % story.length]).join("\n\n")

const relativeDifference = (a: Float32Array, b: Float32Array) => {
  let difference = 0
  let norm = 0
  for (let i = 0; i < a.length; i++) {
    difference += (a[i]! - b[i]!) ** 2
    norm += b[i]! ** 2
  }
  return Math.sqrt(difference / norm)
}

const makeClient = RpcTest.makeClient(NodeApiRpcs)

/** The round once the node has settled it (it settles in the background: polled in real time, 20 s at most). */
const settled = (rpc: Effect.Effect.Success<typeof makeClient>, roundId: string) =>
  Effect.gen(function*() {
    for (let attempt = 0; attempt < 400; attempt++) {
      const round = yield* rpc.LearnRound({ roundId })
      if (round.status === "closed" || round.status === "failed") return round
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
    }
    return yield* Effect.dieMessage(`round ${roundId} was not settled`)
  })

describe("learning between peers, in process", () => {
  it.scoped(
    "a round is aggregated at its deadline with its quorum, fails below it, and a node joins by training from the base",
    () =>
      Effect.gen(function*() {
        const rpc = yield* makeClient
        const key = yield* NodeKey
        const base = yield* storeRandomAdapter(storeRoot, "tiny-lm", "base", 2, 3, 8)
        const documents = yield* Effect.forEach([0, 1], (i) => documentOf(movedB(base, 20 + i, 0.05), `peer-${i}`))
        const open = (roundId: string, quorum: number) =>
          as(coordinator)(rpc.LearnRoundOpen({
            roundId,
            coordinator: coordinator.account,
            base: { id: "base" },
            task: "style",
            rule: { _tag: "fedavg" },
            durationMs: 60_000,
            quorum,
            result: { id: `${roundId}-result`, version: "1.0.0" }
          }))
        yield* open("met", 2)
        yield* open("short", 3)
        for (const [i, document] of documents.entries()) {
          yield* as(peers[i]!)(rpc.LearnRoundSubmit({ roundId: "met", peer: peers[i]!.account, document, samples: 10 }))
        }
        yield* as(peers[0]!)(
          rpc.LearnRoundSubmit({ roundId: "short", peer: peers[0]!.account, document: documents[0]!, samples: 10 })
        )
        // No one aggregates by hand: the node settles both rounds when their deadline passes.
        yield* TestClock.adjust("61 seconds")
        const met = yield* settled(rpc, "met")
        expect(met).toMatchObject({ status: "closed", closedBecause: "aggregated" })
        expect(met.outcome!.verdicts.map((verdict) => verdict.kept)).toEqual([true, true])
        const short = yield* settled(rpc, "short")
        expect(short).toMatchObject({
          status: "failed",
          closedBecause: "deadline passed with 1 update(s) of the 3 its quorum needs"
        })

        // A third round; this node joins it (the round is here, so nothing crosses the network) by
        // training from the base on its own text; the update is its node key's.
        yield* open("joined", 1)
        const store = yield* BlobStore
        const put = (file: string) =>
          Effect.gen(function*() {
            const bytes = new Uint8Array(fs.readFileSync(path.join(REFERENCE, "tiny-lm", file)))
            yield* store.put(Stream.make(bytes))
            return crypto.createHash("sha256").update(bytes).digest("hex")
          })
        const model = { sha256: yield* put("onnx/model.onnx"), tokenizer: yield* put("tokenizer.json") }
        const operator = operatorKeyOf(dataDir)
        const bad = yield* Effect.flip(
          as(operator)(rpc.LearnRoundJoin({
            roundId: "joined",
            at: "not-a-peer",
            model,
            data: { content: text, name: "story.txt" },
            steps: 2
          }))
        )
        expect(bad.message).toBe("round joined: not-a-peer is not a peer id: expected base58 text such as 12D3KooW...")
        const joined = yield* as(operator)(rpc.LearnRoundJoin({
          roundId: "joined",
          at: peerIdOfPublicKey(key.publicKey),
          model,
          data: { content: text, name: "story.txt" },
          steps: 2,
          window: 32,
          seed: 1
        }))
        expect(joined.updates).toHaveLength(1)
        expect(joined.updates[0]!.peer).toBe(operator.account)
        expect(joined.updates[0]!.figures["steps"]).toBe(2)
        // Trained from the base: the update keeps its modules and moved from the base's factors.
        const update = yield* loadLocalAdapter(storeRoot, "round-joined")
        expect(Object.keys(update.weights.modules).sort()).toEqual(Object.keys(base.modules).sort())
        const name = Object.keys(base.modules)[0]!
        const moved = relativeDifference(update.weights.modules[name]!.B, base.modules[name]!.B)
        expect(moved).toBeGreaterThan(0)
        expect(moved).toBeLessThan(0.5)

        expect((yield* rpc.AuditReplay()).ok).toBe(true)
        expect((yield* rpc.AuditVerify()).ok).toBe(true)
      }).pipe(Effect.provide(node)),
    120_000
  )

  it.scoped(
    "a neighbour's signed push is merged as the weighted mean of the two updates, and recorded",
    () =>
      Effect.gen(function*() {
        const rpc = yield* makeClient
        const base = yield* storeRandomAdapter(storeRoot, "tiny-lm", "gossip-base", 2, 5, 8)
        const operator = operatorKeyOf(dataDir)
        const neighbour = testKey()
        const theirs = movedB(base, 77, 0.1)
        const document = yield* documentOf(theirs, "neighbour")
        const notYet = yield* Effect.flip(
          as(neighbour)(rpc.LearnGossipPush({ from: neighbour.account, document, samples: 30 }))
        )
        expect(notYet.message).toBe("gossip: this node is not gossiping")
        const started = yield* as(operator)(rpc.LearnGossipStart({
          adapter: { id: "gossip-base" },
          samples: 10,
          fanout: 2,
          intervalMs: 60_000
        }))
        expect(started).toMatchObject({ status: "running", merges: 0 })
        const forged = yield* Effect.flip(
          as(testKey())(rpc.LearnGossipPush({ from: neighbour.account, document, samples: 30 }))
        )
        expect(forged.message).toMatch(/^LearnGossipPush refused: /)
        const merged = yield* as(neighbour)(rpc.LearnGossipPush({ from: neighbour.account, document, samples: 30 }))
        // A key nobody rated has the initial reputation 0.5: heard with 30 × 0.5 against this node's 10.
        expect(merged.last).toMatchObject({ from: neighbour.account, reputation: 0.5, ownWeight: 10, theirWeight: 15 })
        expect(merged.adapter).toMatchObject({ id: "gossip-base-gossip", version: "0.1.0" })
        const result = yield* loadLocalAdapter(storeRoot, "gossip-base-gossip", "0.1.0")
        for (const [name, module] of Object.entries(result.weights.modules)) {
          const scale = scaleOf(base)
          const own = deltaWeight(base.modules[name]!, base.rank, scale)
          const pushed = deltaWeight(theirs.modules[name]!, base.rank, scale)
          const expected = own.map((value, i) => (10 * value + 15 * pushed[i]!) / 25)
          expect(relativeDifference(deltaWeight(module, result.weights.rank, scaleOf(result.weights)), expected))
            .toBeLessThan(1e-4)
        }
        const stopped = yield* as(operator)(rpc.LearnGossipStop({}))
        expect(stopped).toMatchObject({ status: "stopped", merges: 1 })
        expect((yield* rpc.AuditReplay()).ok).toBe(true)
        expect((yield* rpc.AuditVerify()).ok).toBe(true)
      }).pipe(Effect.provide(node)),
    60_000
  )
})
