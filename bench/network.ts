/**
 * Network benchmarks, each beside a baseline measured in the same run:
 * 1. signed commands from 32 concurrent clients through a node's network path (RPC over one
 *    WebSocket per client, MessagePack) into its journal, beside the same transfers run by the
 *    ledger's actors in process;
 * 2. feed replication between two node processes over libp2p (fetched, verified, stored by the
 *    follower), beside `verifyChain` of the same events in process;
 * 3. a head announced on gossipsub reaching the other four of five nodes, beside the round trip of
 *    asking each of them over RPC;
 * 4. the simulation of the same gossip and follow logic at 100 to 10,000 peers.
 */
import { RpcClient } from "@effect/rpc"
import { Effect, Layer, ManagedRuntime } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Ledger } from "../src/actors/economy/Ledger.js"
import { accountIdOf, ed25519 } from "../src/domain/Ed25519.js"
import { AccountId, OperationId } from "../src/domain/Money.js"
import type { SigningKey } from "../src/domain/SignedCommand.js"
import { verifyChain } from "../src/events/Audit.js"
import { Journal } from "../src/events/Journal.js"
import { feedKernel, sqliteKernel } from "../src/layers/Kernel.js"
import { nodeServices } from "../src/layers/Node.js"
import { feedFile } from "../src/net/PeerBook.js"
import type { PeersView } from "../src/net/Peers.js"
import { authFor, signingAs, signingClientLayer } from "../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../src/rpc/NodeApiRpcs.js"
import { socketProtocol } from "../src/rpc/NodeConnection.js"
import type { RunningNode } from "../test/support/NodeProcess.js"
import { startNode } from "../test/support/NodeProcess.js"
import { operatorKeyOf } from "../test/support/Signing.js"
import { runSimulation } from "./network-simulation.js"
import { bestOf, report, time } from "./Report.js"
import { peakRssMb, resetPeakRss } from "./support/PeakRss.js"

const CLIENTS = 32
const PER_CLIENT = Number(process.env["NETWORK_BENCH_COMMANDS"] ?? 500)
const NETWORK = "edge-net-dev"

const scratchDirs: Array<string> = []
const scratch = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "edge-net-bench-network-"))
  scratchDirs.push(dir)
  return dir
}
const nodeRpc = RpcClient.make(NodeApiRpcs)
type NodeRpc = Effect.Effect.Success<typeof nodeRpc>
const ids = (count: number) => Array.from({ length: count }, (_, i) => i)
const keyOf = (): SigningKey & { account: string } => {
  const seed = crypto.randomBytes(32)
  const publicKey = ed25519.publicKeyOf(seed)
  return { seed, publicKey, account: accountIdOf(publicKey) }
}

export const run = async () => {
  // NETWORK_BENCH_PARTS=commands,feeds,simulation runs some of them (all by default).
  const parts = (process.env["NETWORK_BENCH_PARTS"] ?? "commands,feeds,simulation").split(",")
  try {
    if (parts.includes("commands")) await commandFigures()
    if (parts.includes("feeds")) await feedFigures()
    if (parts.includes("simulation")) await runSimulation()
  } finally {
    for (const dir of scratchDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true })
  }
}

const transferRpc = NodeApiRpcs.requests.get("LedgerTransfer")!

/** Each client's transfers, signed before the clock starts: the node's work is to verify, not to sign. */
const signedTransfers = (keys: ReadonlyArray<SigningKey & { account: string }>) => {
  const now = Date.now()
  return keys.map((key, i) =>
    ids(PER_CLIENT).map((k) => {
      const payload = {
        from: AccountId.make(key.account),
        to: AccountId.make(keys[(i + 1) % keys.length]!.account),
        amount: 1n,
        transferId: OperationId.make(`t-${i}-${k}`)
      }
      return { ...payload, auth: authFor(transferRpc, payload, { key, network: NETWORK, expiresInMs: 600_000 }, now) }
    })
  )
}

// 1. Signed transfers from 32 WebSocket clients into a node process, against the ledger in process.
const commandFigures = async () => {
  const keys = ids(CLIENTS).map(keyOf)
  const count = CLIENTS * PER_CLIENT

  // The floor: the same transfers by the ledger's actors in this process, 32 callers at once.
  const inProcess = ManagedRuntime.make(
    nodeServices({ dataDir: scratch(), host: "127.0.0.1", port: 0, synchronous: "normal" })
  )
  const ledger = await inProcess.runPromise(Ledger)
  await inProcess.runPromise(Effect.forEach(keys, (key) => ledger.mint(key.account, 1_000_000n), { discard: true }))
  resetPeakRss()
  const runnerSeconds = await time(() =>
    inProcess.runPromise(
      Effect.forEach(keys, (key, i) =>
        Effect.forEach(ids(PER_CLIENT), (k) =>
          ledger.transfer(key.account, keys[(i + 1) % CLIENTS]!.account, 1n, `t-${i}-${k}`), { discard: true }), {
        concurrency: "unbounded",
        discard: true
      })
    )
  )
  const inProcessPeakMb = peakRssMb()
  await inProcess.dispose()

  const dataDir = scratch()
  const node = await startNode(dataDir)
  try {
    const operator = operatorKeyOf(dataDir)
    const commands = signedTransfers(keys)
    const seconds = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const clients = yield* Effect.forEach(ids(CLIENTS), () =>
        Effect.gen(function*() {
          // Each client its own connection, built in this scope (a layer built inside would close it at once).
          const context = yield* Layer.build(Layer.merge(socketProtocol(node.url), signingClientLayer))
          return yield* Effect.provide(RpcClient.make(NodeApiRpcs), context)
        }))
      yield* signingAs({ key: operator, network: NETWORK })(
        Effect.forEach(
          keys,
          (key) => clients[0]!.LedgerMint({ account: AccountId.make(key.account), amount: 1_000_000n }),
          {
            discard: true
          }
        )
      )
      resetPeakRss(node.process.pid!)
      return yield* Effect.promise(() =>
        time(() =>
          Effect.runPromise(
            Effect.forEach(
              clients,
              (client, i) =>
                Effect.forEach(commands[i]!, (payload) => client.LedgerTransfer(payload), { discard: true }),
              {
                concurrency: "unbounded",
                discard: true
              }
            )
          )
        )
      )
    })))
    report(
      `signed transfers, ${CLIENTS} WebSocket clients -> journal`,
      "cmds/s",
      count / seconds,
      count / runnerSeconds,
      "in-process ledger (actor runner)",
      ">= 10,000/s and >= 0.4x"
    )
    report(
      "  peak RSS, the node while it took them",
      "MB",
      peakRssMb(node.process.pid!),
      inProcessPeakMb,
      "in-process ledger (this process)"
    )
  } finally {
    await node.kill("SIGTERM")
  }
}

const FEED_EVENTS = Number(process.env["NETWORK_BENCH_FEED_EVENTS"] ?? 100_000)

/** One short-lived RPC client per call: a PeersList or a JournalHead from a node. */
const ask = <A>(url: string, use: (client: NodeRpc) => Effect.Effect<A, unknown>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.flatMap(
        Layer.build(Layer.merge(socketProtocol(url), signingClientLayer)),
        (context) => Effect.flatMap(Effect.provide(nodeRpc, context), use)
      )
    ) as Effect.Effect<A>
  )

const peersOf = (node: RunningNode): Promise<PeersView> => ask(node.url, (client) => client.PeersList())

const waitFor = async <A>(what: string, probe: () => Promise<A | undefined>, timeoutMs = 300_000, everyMs = 20) => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const found = await probe().catch(() => undefined)
    if (found !== undefined) return found
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, everyMs))
  }
}

const payloadFor = (i: number) => ({ _tag: "Added", amount: i % 100, note: "benchmark event with a short text" })

// 2 and 3: a source node with a journal of FEED_EVENTS events, a follower that copies it, then five nodes.
const feedFigures = async () => {
  const sourceDir = scratch()
  const kernel = ManagedRuntime.make(sqliteKernel({ dataDir: sourceDir, synchronous: "normal" }))
  await kernel.runPromise(Effect.gen(function*() {
    const journal = yield* Journal
    for (let i = 0; i < FEED_EVENTS; i += 1_000) {
      yield* journal.appendBatch(
        ids(100).map((s) => ({
          streamId: `Counter-${s}`,
          expectedVersion: "any" as const,
          events: ids(10).map((k) => ({ eventType: "Added", payload: payloadFor(i + s + k * 100) }))
        }))
      )
    }
  }))
  await kernel.dispose()

  const nodes: Array<RunningNode> = []
  try {
    const source = await startNode(sourceDir)
    nodes.push(source)
    const view = await peersOf(source)
    const sourcePeerId = view.peerId!
    const member = { EDGE_NET_BOOTSTRAP: view.listening[0]!, EDGE_NET_FOLLOW: sourcePeerId }
    const head = await ask(source.url, (client) => client.JournalHead())
    // The source's policies first read the prebuilt log through once: replication is timed after that.
    await waitFor(
      "the source's policies have read its log",
      async () => {
        const info = await ask(source.url, (client) => client.NodeInfo())
        return info.policies.every((policy) => policy.lag === 0) ? true : undefined
      },
      300_000,
      200
    )

    // 2. The follower's copy, from its first batch to the source's head.
    const followerDir = scratch()
    const follower = await startNode(followerDir, undefined, member)
    nodes.push(follower)
    const positionOf = async () => (await peersOf(follower)).feeds.find((feed) => feed.peerId === sourcePeerId)
    const first = await waitFor("the follower's first batch", async () => {
      const feed = await positionOf()
      return feed !== undefined && feed.position > 0 ? { position: feed.position, at: performance.now() } : undefined
    })
    const doneAt = await waitFor("the follower holds the feed", async () => {
      const feed = await positionOf()
      return feed !== undefined && feed.position >= head.position ? performance.now() : undefined
    })
    const replicated = (head.position - first.position) / ((doneAt - first.at) / 1000)
    // The follower's high-water mark since it started: it did nothing but follow the source.
    const followerPeakMb = peakRssMb(follower.process.pid!)
    const copy = ManagedRuntime.make(
      feedKernel({ file: feedFile(followerDir, sourcePeerId), publicKey: operatorKeyOf(sourceDir).publicKey })
    )
    let checked = 0
    resetPeakRss()
    const verifySeconds = await bestOf(3, async () => {
      const result = await copy.runPromise(verifyChain())
      if (!result.ok) throw new Error(`the copy does not verify: ${result.problem}`)
      checked = result.eventsChecked
    })
    await copy.dispose()
    report(
      "feed replication, libp2p, fetched+verified+stored",
      "events/s",
      replicated,
      checked / verifySeconds,
      "verifyChain in process",
      ">= 0.5x"
    )
    report("  peak RSS, the follower process", "MB", followerPeakMb, peakRssMb(), "verifyChain (this process)")

    // 3. Five nodes: a head the source announces reaches the other four.
    for (let i = 0; i < 3; i++) nodes.push(await startNode(scratch(), undefined, member))
    const followers = nodes.slice(1)
    for (const node of followers) {
      await waitFor(
        "five nodes connected",
        async () => ((await peersOf(node)).peers.some((p) => p.peerId === sourcePeerId && p.connected)
          ? true
          : undefined)
      )
    }
    const operator = operatorKeyOf(sourceDir)
    // Timed by the nodes' own clocks (one machine): from the event's commit at the source to the
    // moment each peer first heard of the head, so the bench's polling adds nothing to the figure.
    const spreads: Array<number> = []
    for (let round = 0; round < 10; round++) {
      const minted = await ask(source.url, (client) =>
        Effect.zipRight(
          signingAs({ key: operator, network: NETWORK })(
            client.LedgerMint({ account: AccountId.make(operator.account), amount: 1n })
          ),
          client.JournalHead()
        ))
      const page = await (await fetch(`${source.url}/v1/events?from=${minted.position}&limit=1`)).json() as {
        events: ReadonlyArray<{ recordedAt: string }>
      }
      const committedAt = Date.parse(page.events[0]!.recordedAt)
      const heardAt = await Promise.all(followers.map((node) =>
        waitFor(
          "the head reaches every peer",
          async () => {
            const feed = (await peersOf(node)).feeds.find((f) => f.peerId === sourcePeerId)
            return feed !== undefined && feed.announced >= minted.position && feed.announcedAt !== null
              ? feed.announcedAt
              : undefined
          },
          30_000,
          50
        )
      ))
      spreads.push(Math.max(...heardAt) - committedAt)
      await new Promise((resolve) => setTimeout(resolve, 300))
    }
    // The baseline: asking the four peers for their head at once, each over a connection already open.
    const asks = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const clients = yield* Effect.forEach(
        followers,
        (node) => Effect.flatMap(Layer.build(socketProtocol(node.url)), (context) => Effect.provide(nodeRpc, context))
      )
      const all = Effect.forEach(clients, (client) => client.JournalHead(), { concurrency: "unbounded" })
      yield* all
      const times: Array<number> = []
      for (let round = 0; round < 10; round++) {
        const begin = performance.now()
        yield* all
        times.push(performance.now() - begin)
      }
      return times
    })))
    const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
    report(
      "head announced on gossipsub -> all 4 other peers",
      "ms",
      median(spreads),
      median(asks),
      "asking the 4 peers over open RPC sockets (median of 10)"
    )
    console.log(
      `  (commit at the source to the last of 4 peers hearing it, by the nodes' clocks; heads go out as the journal moves, at most every 50 ms; per head: ${
        spreads.map((ms) => ms.toFixed(0)).join(", ")
      } ms)`
    )
  } finally {
    await Promise.all(nodes.map((node) => node.kill("SIGTERM")))
  }
}
