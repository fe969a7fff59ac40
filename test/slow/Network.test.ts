/**
 * Five node processes on loopback as a network whose charter names the first node as the economy's
 * sequencer: they find each other through one bootstrap address, a command submitted to a third node
 * is forwarded to the first and sequenced there, the others follow its feed into verified copies that
 * replay to its state, resume a copy after a SIGKILL with no gap or duplicate, catch the first node
 * cutting its log back, and all hold the fork proof when it then signs a second head for a position
 * they hold.
 */
import Database from "better-sqlite3"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { AccountId } from "../../src/domain/Money.js"
import { feedFile } from "../../src/net/PeerBook.js"
import type { PeersView } from "../../src/net/Peers.js"
import { cliArgs, freePort, type RunningNode, startNode } from "../support/NodeProcess.js"
import { rpcAt } from "../support/RpcClient.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)

const rpc = rpcAt

const peers = (node: RunningNode): Promise<PeersView> => rpc(node.url, (client) => client.PeersList())

const until = async <A>(
  what: string,
  probe: () => Promise<A | undefined>,
  timeoutMs = 30_000,
  state: () => Promise<unknown> = async () => undefined
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (true) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting until ${what}: ${JSON.stringify(await state().catch(String))}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const cli = async (...args: ReadonlyArray<string>) =>
  JSON.parse((await exec(process.execPath, cliArgs(...args), { maxBuffer: 64 * 1024 * 1024 })).stdout) as {
    readonly ok: boolean
    readonly stateDigest: string
    readonly head: { readonly position: number }
  }

const headOf = (node: RunningNode) => rpc(node.url, (client) => client.JournalHead())

/** Every (position, hash) of a journal file, the node's own or a feed's copy. */
const chainOf = (file: string) => {
  const db = new Database(file, { readonly: true })
  try {
    return db.prepare("SELECT position, hash FROM events ORDER BY position").all()
  } finally {
    db.close()
  }
}

describe("five nodes on loopback", () => {
  const nodes: Array<RunningNode> = []
  let source: RunningNode
  let sourcePeerId: string
  let sourcePorts: { http: number; p2p: number }
  const operatorKey = () => operatorKeyOf(source.dataDir)
  const k = testKey()
  const l = testKey()

  /** The environment of a node that joins the first node's network and follows its feed. */
  let member: Record<string, string>
  const sourceEnv = () => ({ EDGE_NET_P2P_LISTEN: `/ip4/127.0.0.1/tcp/${sourcePorts.p2p}`, EDGE_NET_SEQUENCER: "self" })

  beforeAll(async () => {
    sourcePorts = { http: await freePort(), p2p: await freePort() }
    source = await startNode(tempDir(), sourcePorts.http, sourceEnv())
    nodes.push(source)
    const view = await peers(source)
    sourcePeerId = view.peerId!
    const sourceKey = (await rpc(source.url, (client) => client.NodeInfo())).publicKey
    member = {
      EDGE_NET_BOOTSTRAP: view.listening[0]!,
      EDGE_NET_FOLLOW: sourcePeerId,
      EDGE_NET_OPERATORS: sourceKey,
      EDGE_NET_SEQUENCER: sourcePeerId
    }
    // One after another: four starts at once on two cores can take longer than a start's deadline.
    for (let i = 0; i < 4; i++) nodes.push(await startNode(tempDir(), undefined, member))
  }, 120_000)

  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.kill("SIGTERM")))
  })

  it("find each other through one bootstrap address", async () => {
    for (const node of nodes) {
      await until(`${node.url} is connected to the four others`, async () => {
        const view = await peers(node)
        return view.peers.filter((peer) => peer.connected).length >= 4 ? view : undefined
      })
    }
  }, 60_000)

  it("sequence on the first node a command submitted to another, and follow its feed to the same state", async () => {
    const submittedTo = nodes[2]!
    const submittedToHead = await headOf(submittedTo)
    // The operator mints through one node, K moves its own rUv through another: both run on the sequencer.
    // The first node stakes too: its stake answers for its log.
    const operator = operatorKey()
    await rpc(nodes[1]!.url, (client) =>
      Effect.gen(function*() {
        yield* as(operator)(client.LedgerMint({ account: k.account, amount: 1_000n }))
        yield* as(operator)(client.LedgerMint({ account: operator.account, amount: 1_000n }))
        yield* as(operator)(client.Stake({ node: operator.account, amount: 1_000n }))
      }))
    const receipt = await rpc(
      submittedTo.url,
      (client) => as(k)(client.LedgerTransfer({ from: k.account, to: AccountId.make(l.account), amount: 250n }))
    )
    expect(receipt.from.available).toBe(750n)
    expect(await rpc(source.url, (client) => client.LedgerBalance({ account: l.account }))).toMatchObject({
      available: 250n
    })
    // Reads of the economy on any node answer from the sequencer; the node itself wrote nothing.
    expect(await rpc(nodes[3]!.url, (client) => client.LedgerBalance({ account: k.account }))).toMatchObject({
      available: 750n
    })
    expect((await headOf(submittedTo)).position).toBe(submittedToHead.position)
    // A command the sequencer refuses comes back refused, in its own terms.
    const refused = await rpc(
      submittedTo.url,
      (client) =>
        Effect.flip(as(l)(client.LedgerTransfer({ from: k.account, to: AccountId.make(l.account), amount: 1n })))
    )
    expect(refused).toMatchObject({ _tag: "CommandRefused", reason: "not-owner" })
    const head = await headOf(source)
    for (const follower of nodes.slice(1)) {
      await until(`${follower.url} holds the feed up to ${head.position}`, async () => {
        const feed = (await peers(follower)).feeds.find((f) => f.peerId === sourcePeerId)
        return feed !== undefined && feed.position === head.position ? feed : undefined
      })
    }
    const own = await cli("audit", "replay", "--data", source.dataDir, "--json")
    expect(own).toMatchObject({ ok: true, head: { position: head.position } })
    for (const follower of nodes.slice(1)) {
      const copy = await cli("audit", "replay", "--data", follower.dataDir, "--feed", sourcePeerId, "--json")
      expect(copy).toMatchObject({ ok: true, stateDigest: own.stateDigest, head: { position: head.position } })
      const verified = await cli("audit", "verify", "--data", follower.dataDir, "--feed", sourcePeerId, "--json")
      expect(verified.ok).toBe(true)
    }
  }, 300_000)

  it("resume a copy after the follower is killed mid-stream, with no gap or duplicate", async () => {
    // Enough events for several pages of the feed.
    const operator = operatorKey()
    await rpc(source.url, (client) =>
      Effect.forEach(
        Array.from({ length: 3_000 }, (_, i) => i),
        (i) => as(operator)(client.LedgerMint({ account: k.account, amount: 1n, operationId: `bulk-${i}` as never })),
        { concurrency: 32, discard: true }
      ))
    const head = await headOf(source)
    const dataDir = tempDir()
    const copyFile = feedFile(dataDir, sourcePeerId)
    const follower = await startNode(dataDir, undefined, member)
    // SIGKILL as soon as part of the feed is in the copy.
    const partial = await until("the copy holds part of the feed", async () => {
      if (!fs.existsSync(copyFile)) return undefined
      const rows = chainOf(copyFile).length
      return rows > 0 && rows < head.position ? rows : undefined
    }, 60_000)
    await follower.kill("SIGKILL")
    expect(partial).toBeLessThan(head.position)
    const restarted = await startNode(dataDir, undefined, member)
    nodes.push(restarted)
    await until("the restarted follower holds the whole feed", async () => {
      const feed = (await peers(restarted)).feeds.find((f) => f.peerId === sourcePeerId)
      return feed !== undefined && feed.position >= head.position ? feed : undefined
    }, 60_000)
    const own = chainOf(path.join(source.dataDir, "journal.db")).slice(0, head.position)
    expect(chainOf(copyFile).slice(0, head.position)).toEqual(own)
  }, 240_000)

  it(
    "catch the first node cutting its log back, then hold the fork proof when it signs another head there",
    async () => {
      const before = await headOf(source)
      const followers = nodes.slice(1)
      for (const follower of followers) {
        await until(`${follower.url} holds ${before.position}`, async () => {
          const feed = (await peers(follower)).feeds.find((f) => f.peerId === sourcePeerId)
          return feed !== undefined && feed.position === before.position ? feed : undefined
        }, 60_000)
      }
      // The operator of the first node deletes the tail of its journal (and the head file that would give it away).
      await source.kill("SIGTERM")
      const file = path.join(source.dataDir, "journal.db")
      const db = new Database(file)
      const cut = (db.prepare("SELECT max(position) AS p FROM heads WHERE position <= ?").get(before.position - 50) as {
        p: number
      }).p
      db.prepare("DELETE FROM events WHERE position > ?").run(cut)
      db.prepare("DELETE FROM heads WHERE position > ?").run(cut)
      db.close()
      fs.rmSync(path.join(source.dataDir, "journal.head"), { force: true })
      source = await startNode(source.dataDir, sourcePorts.http, sourceEnv())
      nodes[0] = source
      for (const follower of followers) {
        const feed = await until(`${follower.url} catches the rollback`, async () => {
          const found = (await peers(follower)).feeds.find((f) => f.peerId === sourcePeerId)
          return found?.status === "rolled back" ? found : undefined
        }, 60_000)
        expect(feed.problem).toContain(`signed head ${before.position}`)
      }
      // Writing on after the cut, it signs a second head for a position its followers hold: equivocation.
      await rpc(source.url, (client) => as(operatorKey())(client.LedgerMint({ account: l.account, amount: 5n })))
      for (const node of nodes) {
        const view = await until(`${node.url} holds the fork proof`, async () => {
          const found = await peers(node)
          return found.forkProofs.length > 0 ? found : undefined
        }, 30_000)
        expect(view.forkProofs[0]!.first.position).toBeGreaterThan(cut)
      }
      // Every peer reports the proof; the economy slashes the first node's stake once, by its rate (50%).
      const stake = await until("the equivocation is slashed", async () => {
        const found = await rpc(nodes[4]!.url, (client) => client.StakeOf({ node: operatorKey().account }))
        return found.active < 1_000n ? found : undefined
      }, 30_000)
      expect(stake.active).toBe(500n)
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      expect(await rpc(source.url, (client) => client.StakeOf({ node: operatorKey().account }))).toMatchObject({
        active: 500n
      })
      // The slash carries the signed report with the proof, for every replayer to check again.
      const journal = new Database(path.join(source.dataDir, "journal.db"), { readonly: true })
      const slashes = journal.prepare("SELECT authorization FROM events WHERE event_type = 'Slashed'").all() as Array<{
        authorization: string
      }>
      journal.close()
      expect(slashes).toHaveLength(1)
      expect(JSON.parse(slashes[0]!.authorization)).toMatchObject({
        command: "ReportEquivocation",
        payload: { proof: { publicKey: operatorKey().publicKey } }
      })
    },
    240_000
  )
})
