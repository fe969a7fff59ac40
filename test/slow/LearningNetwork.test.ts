/**
 * Learning between five node processes on loopback over libp2p. The first node holds a federated
 * round (quorum 3, a deadline); the four others join it: each fetches the round and its base from
 * the first over the command protocol, trains from the base on its own text, and sends its update
 * signed by its node key. One joiner is SIGKILLed mid-round; the round is aggregated at its deadline
 * from the three updates that came, with no one asking. Two nodes then gossip their adapters: each
 * merges the other's signed push. Every node that follows another's feed replays it to the state
 * its writer replays its own journal to.
 */
import { Effect, Stream } from "effect"
import { execFile } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RoundView } from "../../src/actors/learning/LearningRpc.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { accountIdOf } from "../../src/domain/Ed25519.js"
import type { PeersView } from "../../src/net/Peers.js"
import { cliArgs, freePort, type RunningNode, startNode } from "../support/NodeProcess.js"
import { rpcAt } from "../support/RpcClient.js"
import { REFERENCE, storeRandomAdapter } from "../support/SdkModels.js"
import { as, operatorKeyOf, testKey, writeKeyFile } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"
import { until } from "../support/Until.js"

const exec = promisify(execFile)

const rpc = rpcAt

const peersOf = (node: RunningNode): Promise<PeersView> => rpc(node.url, (client) => client.PeersList())

const edgeNet = async (...args: ReadonlyArray<string>) => {
  try {
    return (await exec(process.execPath, cliArgs(...args), { maxBuffer: 64 * 1024 * 1024 })).stdout
  } catch (error) {
    const failed = error as { stderr?: string; stdout?: string }
    throw new Error(`edge-net ${args.join(" ")} failed: ${failed.stderr ?? ""}${failed.stdout ?? ""}`)
  }
}

const replay = async (...args: ReadonlyArray<string>) =>
  JSON.parse(await edgeNet("audit", "replay", ...args, "--json")) as {
    readonly ok: boolean
    readonly stateDigest: string
    readonly head: { readonly position: number }
  }

const story = [
  "The keeper of the lighthouse climbed the stairs each evening and lit the lamp before the sun went down.",
  "Ships passed the rocks at night, and their captains watched for the light that the keeper kept burning.",
  "In winter the storms came from the north, and the keeper wrote in his book the names of the ships he saw.",
  "When the fog was thick he rang the bell, and the sound went out over the water to the boats near the shore."
]
/** Each peer's own text: the story from another sentence on. */
const textOf = (peer: number) => Array.from({ length: 10 }, (_, i) => story[(i + peer) % story.length]).join("\n\n")

/** Puts the reference model and its tokenizer in a data dir's content store, as a pull would leave them. */
const storeModel = (dataDir: string) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const store = yield* BlobStore
      const put = (file: string) =>
        Effect.gen(function*() {
          const bytes = new Uint8Array(fs.readFileSync(path.join(REFERENCE, "tiny-lm", file)))
          yield* store.put(Stream.make(bytes))
          return crypto.createHash("sha256").update(bytes).digest("hex")
        })
      return { sha256: yield* put("onnx/model.onnx"), tokenizer: yield* put("tokenizer.json") }
    }).pipe(Effect.provide(BlobStore.layer({ root: path.join(dataDir, "content") })))
  )

describe("learning together between five node processes", () => {
  const work = tempDir("learning-network-")
  const nodes: Array<RunningNode> = []
  let holder: RunningNode
  let holderPeerId: string
  let model: { readonly sha256: string; readonly tokenizer: string }
  const coordinator = testKey()

  beforeAll(async () => {
    const holderDir = path.join(work, "holder")
    const p2p = await freePort()
    await Effect.runPromise(storeRandomAdapter(path.join(holderDir, "content"), "tiny-lm", "base", 2, 3, 8))
    holder = await startNode(holderDir, undefined, {
      EDGE_NET_P2P_LISTEN: `/ip4/127.0.0.1/tcp/${p2p}`,
      EDGE_NET_SEQUENCER: "self"
    })
    nodes.push(holder)
    const view = await peersOf(holder)
    holderPeerId = view.peerId!
    const holderKey = (await rpc(holder.url, (client) => client.NodeInfo())).publicKey
    const member = {
      EDGE_NET_BOOTSTRAP: view.listening[0]!,
      EDGE_NET_FOLLOW: holderPeerId,
      EDGE_NET_OPERATORS: holderKey,
      EDGE_NET_SEQUENCER: holderPeerId
    }
    for (let i = 1; i <= 4; i++) {
      const dataDir = path.join(work, `peer-${i}`)
      model = await storeModel(dataDir)
      nodes.push(await startNode(dataDir, undefined, member))
    }
    await Effect.runPromise(writeKeyFile(path.join(work, "keys"), "operator", operatorKeyOf(holderDir)))
    for (const node of nodes) {
      await until(`${node.url} is connected to the four others`, async () => {
        const peers = await peersOf(node)
        return peers.peers.filter((peer) => peer.connected).length >= 4 ? peers : undefined
      })
    }
  }, 150_000)

  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.kill("SIGTERM")))
  })

  it(
    "run a round to its deadline with a peer killed mid-round, gossip once, and replay each other's logs",
    async () => {
      const operator = operatorKeyOf(holder.dataDir)
      const operatorKeyFile = path.join(work, "keys", "operator.key")
      const [first, second, third, killed] = [nodes[1]!, nodes[2]!, nodes[3]!, nodes[4]!]
      const opened = await rpc(holder.url, (client) =>
        as(coordinator)(client.LearnRoundOpen({
          roundId: "r1",
          coordinator: coordinator.account,
          base: { id: "base" },
          task: "stories",
          rule: { _tag: "fedavg" },
          durationMs: 40_000,
          quorum: 3,
          result: { id: "stories", version: "1.0.0" }
        })))
      expect(opened.status).toBe("open")

      const join = (node: RunningNode, peer: number) =>
        rpc(node.url, (client) =>
          as(operator)(client.LearnRoundJoin({
            roundId: "r1",
            at: holderPeerId,
            model,
            data: { content: textOf(peer), name: "story.txt" },
            steps: 2,
            window: 32,
            seed: peer
          })))
      // The first joins through the CLI as a user would; the others through RPC; the fourth dies mid-round.
      const textFile = path.join(work, "story-1.txt")
      fs.writeFileSync(textFile, textOf(1))
      const joins = Promise.all([
        edgeNet(
          "learn",
          "round",
          "join",
          "r1",
          "--at",
          holderPeerId,
          "--model",
          `sha256:${model.sha256}`,
          "--tokenizer",
          `sha256:${model.tokenizer}`,
          "--text",
          textFile,
          "--steps",
          "2",
          "--window",
          "32",
          "--node",
          first.url,
          "--key",
          operatorKeyFile,
          "--json"
        ).then((stdout) => JSON.parse(stdout) as RoundView),
        join(second, 2),
        join(third, 3)
      ])
      const before = await rpc(killed.url, (client) => client.JournalHead())
      const doomed = join(killed, 4).then(() => "submitted", () => "killed")
      // Its training job is recorded: it is training when it dies.
      await until("the fourth peer is training", async () => {
        const head = await rpc(killed.url, (client) => client.JournalHead())
        return head.position > before.position ? head : undefined
      })
      await killed.kill("SIGKILL")
      expect(await doomed).toBe("killed")
      const joined = await joins
      for (const round of joined) expect(round.status).toBe("open")
      const nodeAccounts = await Promise.all(
        [first, second, third].map((node) =>
          rpc(node.url, (client) => client.NodeInfo()).then((info) => ({ accountId: accountIdOf(info.publicKey) }))
        )
      )

      // Nobody aggregates by hand: the holder does it when the deadline passes, with 3 of 4 updates.
      const settled = await until("the round is settled", async () => {
        const round = await rpc(holder.url, (client) => client.LearnRound({ roundId: "r1" }))
        return round.status === "closed" || round.status === "failed" ? round : undefined
      }, 90_000)
      expect(settled).toMatchObject({ status: "closed", closedBecause: "aggregated" })
      expect(settled.updates).toHaveLength(3)
      expect(settled.outcome!.verdicts.every((verdict) => verdict.kept)).toBe(true)
      expect(new Set(settled.updates.map((update) => update.peer))).toEqual(
        new Set(nodeAccounts.map((info) => info.accountId))
      )
      const shown = await edgeNet("learn", "round", "show", "r1", "--node", holder.url)
      expect(shown).toContain("round r1: closed (aggregated), fedavg on base@1.0.0, 3/3 update(s)")
      expect(shown).toContain("result stories@1.0.0")

      // One gossip exchange: the first and second gossip the adapters they trained; each merges the other's push.
      await edgeNet(
        "learn",
        "gossip",
        "start",
        "--adapter",
        "round-r1",
        "--samples",
        "20",
        "--fanout",
        "1",
        "--interval",
        "1 second",
        "--node",
        first.url,
        "--key",
        operatorKeyFile
      )
      await rpc(second.url, (client) =>
        as(operator)(
          client.LearnGossipStart({ adapter: { id: "round-r1" }, samples: 30, fanout: 1, intervalMs: 1_000 })
        ))
      for (const [node, other] of [[first, nodeAccounts[1]!], [second, nodeAccounts[0]!]] as const) {
        const merged = await until(`${node.url} merged a push`, async () => {
          const gossip = await rpc(node.url, (client) => client.LearnGossip({}))
          return gossip.merges >= 1 ? gossip : undefined
        })
        expect(merged.last!.from).toBe(other.accountId)
        expect(merged.adapter!.id).toBe("round-r1-gossip")
      }
      for (const node of [first, second]) {
        await rpc(node.url, (client) => as(operator)(client.LearnGossipStop({})))
      }
      const gossipShown = await edgeNet("learn", "gossip", "show", "--node", first.url)
      expect(gossipShown).toMatch(/^gossip: stopped on round-r1-gossip@0\.\d+\.0, \d+ merge\(s\)/)

      // The third follows the gossipers' feeds too; every copy replays to what its writer replays.
      for (const gossiper of [first, second]) {
        const address = (await peersOf(gossiper)).listening[0]!
        await rpc(third.url, (client) => as(operator)(client.PeersAdd({ address, follow: true })))
      }
      const writers = [holder, first, second]
      const followers = new Map([[holder, [first, second, third]], [first, [third]], [second, [third]]])
      for (const writer of writers) {
        const head = await rpc(writer.url, (client) => client.JournalHead())
        const writerPeerId = (await peersOf(writer)).peerId!
        const own = await replay("--data", writer.dataDir)
        expect(own).toMatchObject({ ok: true, head: { position: head.position } })
        for (const follower of followers.get(writer)!) {
          await until(`${follower.url} holds ${writer.url}'s feed up to ${head.position}`, async () => {
            const feed = (await peersOf(follower)).feeds.find((f) => f.peerId === writerPeerId)
            return feed !== undefined && feed.position >= head.position ? feed : undefined
          })
          const copy = await replay("--data", follower.dataDir, "--feed", writerPeerId)
          expect(copy).toMatchObject({ ok: true, stateDigest: own.stateDigest, head: { position: head.position } })
        }
        const verified = JSON.parse(
          await edgeNet("audit", "verify", "--data", third.dataDir, "--feed", writerPeerId, "--json")
        ) as { readonly ok: boolean }
        expect(verified.ok).toBe(true)
      }
    },
    240_000
  )
})
