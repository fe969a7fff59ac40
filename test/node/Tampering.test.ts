/**
 * Tampering with a stopped node's files, told as stories against real node processes and the real CLI:
 * a journal whose tail was cut off, a snapshot forged to inflate a balance, and rUv drained from the
 * pool's account behind the market's back. Each is reported at start, by `audit verify` or `audit replay`.
 */
import Database from "better-sqlite3"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { beforeAll, describe, expect, it } from "vitest"
import { Ledger } from "../../src/actors/economy/Ledger.js"
import { POOL_ACCOUNT } from "../../src/actors/market/ComputeAmm.js"
import { OperationId } from "../../src/domain/Money.js"
import { nodeServices } from "../../src/layers/Node.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { type CliResult, compileCli, runCompiledCli, startCompiledNode } from "../support/CompiledCli.js"
import { freePort, type RunningNode, SYSTEM_PICKED_P2P } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

type NodeRpc = Effect.Effect.Success<typeof nodeRpcClient>

let root = ""
const cli = (...args: ReadonlyArray<string>): Promise<CliResult> => runCompiledCli(root, args)
const start = (dataDir: string) => startCompiledNode(root, dataDir)

const rpc = <A, E>(node: RunningNode, use: (client: NodeRpc) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, use)).pipe(
      Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer))
    )
  )

const operation = (id: string) => OperationId.make(id)

/** Stops the node as an operator would, and waits until it has let go of its files. */
const stop = async (node: RunningNode) => {
  expect(await node.kill("SIGTERM")).toBe(0)
}

/** Opens the stopped node's journal directly, as someone with access to the disk would. */
const withJournal = <A>(dataDir: string, tamper: (db: Database.Database) => A): A => {
  const db = new Database(path.join(dataDir, "journal.db"))
  try {
    return tamper(db)
  } finally {
    db.close()
  }
}

const lines = (text: string) => text.trim().split("\n").filter((line) => line !== "")

beforeAll(() => {
  root = compileCli()
}, 60_000)

describe("a node whose journal tail was deleted", () => {
  it("is told by audit verify, and refuses to start, saying how to recover", async () => {
    const dataDir = tempDir("tail-")
    const node = await start(dataDir)
    const operator = operatorKeyOf(dataDir)
    const alice = testKey()
    await rpc(node, (client) =>
      Effect.gen(function*() {
        yield* as(operator)(
          client.LedgerMint({ account: alice.account, amount: 1_000n, operationId: operation("mint-1") })
        )
        yield* as(operator)(
          client.LedgerMint({ account: alice.account, amount: 500n, operationId: operation("mint-2") })
        )
        yield* as(alice)(client.LedgerTransfer({ from: alice.account, to: operator.account, amount: 300n }))
        yield* as(alice)(client.LedgerTransfer({ from: alice.account, to: operator.account, amount: 200n }))
      }))
    await stop(node)

    // The last two commands go, with the signed heads that covered them: the chain left behind is whole.
    const { cut, end } = withJournal(dataDir, (db) => {
      const end = (db.prepare("SELECT max(position) AS end FROM events").get() as { end: number }).end
      const { cut } = db.prepare("SELECT position AS cut FROM heads ORDER BY position DESC LIMIT 1 OFFSET 2").get() as {
        cut: number
      }
      db.prepare("DELETE FROM events WHERE position > ?").run(cut)
      db.prepare("DELETE FROM heads WHERE position > ?").run(cut)
      return { cut, end }
    })
    expect(cut).toBeLessThan(end)

    const verify = await cli("audit", "verify", "--data", dataDir)
    expect(verify.code).toBe(1)
    expect(lines(verify.stderr)).toHaveLength(1)
    expect(verify.stderr).toContain(`journal truncated: head file says position ${end}`)
    expect(verify.stderr).toContain(`database ends at ${cut}`)

    const restart = await runCompiledCli(
      root,
      ["node", "start", "--data", dataDir, "--port", String(await freePort())],
      { EDGE_NET_HOME: dataDir, ...SYSTEM_PICKED_P2P }
    )
    expect(restart.code).not.toBe(0)
    const refusal = lines(restart.stderr)
    expect(refusal).toHaveLength(1)
    expect(refusal[0]).toMatch(/does not verify at position \d+ \(journal truncated/)
    expect(refusal[0]).toContain("restore it from a follower or a backup")
  }, 30_000)
})

describe("a node whose snapshot was forged", () => {
  it("starts, reports the snapshot at start and in audit verify, and serves the true balance", async () => {
    const dataDir = tempDir("snapshot-")
    const node = await start(dataDir)
    const operator = operatorKeyOf(dataDir)
    const alice = testKey()
    // 120 mints: alice's account crosses version 100, where the ledger takes its snapshot.
    await rpc(
      node,
      (client) =>
        Effect.forEach(Array.from({ length: 120 }, (_, index) => index), (index) =>
          as(operator)(
            client.LedgerMint({ account: alice.account, amount: 10n, operationId: operation(`mint-${index}`) })
          ), { discard: true })
    )
    await stop(node)

    const forged = withJournal(dataDir, (db) => {
      const row = db.prepare("SELECT stream_id, version, state FROM snapshots WHERE stream_id LIKE ?").get(
        `%${alice.account}`
      ) as
        | { stream_id: string; version: number; state: string }
        | undefined
      expect(row?.version).toBe(100)
      const state = JSON.parse(row!.state) as { available: string }
      expect(state.available).toBe("1000")
      state.available = String(BigInt(state.available) + 1_000_000_000n)
      db.prepare("UPDATE snapshots SET state = ? WHERE stream_id = ?").run(JSON.stringify(state), row!.stream_id)
      return row!.stream_id
    })

    // A snapshot is only a shortcut: the node starts, says which one it ignores, and rebuilds from the log.
    const restarted = await start(dataDir)
    try {
      expect(restarted.output()).toContain(`snapshot of ${forged} at version 100 is not sealed by this node`)
      const balance = await rpc(restarted, (client) => client.LedgerBalance({ account: alice.account }))
      expect(balance.available).toBe(1_200n)

      const verify = await cli("audit", "verify", "--node", restarted.url)
      expect(verify.code).toBe(1)
      expect(verify.stdout).toContain(
        `snapshot of ${forged} at version 100 is not sealed by this node (its state was edited)`
      )
      expect(lines(verify.stderr)).toHaveLength(1)
    } finally {
      await stop(restarted)
    }
  }, 30_000)
})

describe("rUv drained from the pool's account behind the market's back", () => {
  it("is a MISMATCH line for the pool book in audit replay", async () => {
    const dataDir = tempDir("books-")
    const node = await start(dataDir)
    const operator = operatorKeyOf(dataDir)
    await rpc(node, (client) =>
      Effect.gen(function*() {
        // The operator seeds the pool from its own account: issuing compute and adding liquidity are its to sign.
        yield* as(operator)(
          client.LedgerMint({ account: operator.account, amount: 20_000n, operationId: operation("mint-op") })
        )
        yield* as(operator)(
          client.MarketIssueCompute({ node: operator.account, units: 1_000n, operationId: operation("issue-1") })
        )
        yield* as(operator)(
          client.MarketAddLiquidity({
            provider: operator.account,
            computeDesired: 1_000n,
            ruvDesired: 10_000n,
            orderId: operation("seed-1")
          })
        )
        yield* as(operator)(client.Stake({ node: operator.account, amount: 2_000n, operationId: operation("stake-1") }))
      }))
    const agreed = await cli("audit", "replay", "--node", node.url)
    expect(agreed.code).toBe(0)
    expect(lines(agreed.stdout)).toEqual(expect.arrayContaining([
      "pool:compute: 10000 rUv kept, 10000 in the ledger",
      "stake: 2000 rUv kept, 2000 in the ledger"
    ]))
    expect(agreed.stdout).not.toContain("MISMATCH")
    await stop(node)

    // No key may spend the pool's account over RPC; someone with the data dir writes through the services.
    await Effect.runPromise(
      Effect.scoped(Effect.flatMap(Ledger, (ledger) => ledger.transfer(POOL_ACCOUNT, "mallory", 5_000n, "drain-1")))
        .pipe(
          Effect.provide(nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" }))
        )
    )

    const restarted = await start(dataDir)
    try {
      const drifted = await cli("audit", "replay", "--node", restarted.url)
      expect(drifted.code).toBe(1)
      expect(lines(drifted.stdout)).toContain("pool:compute: 10000 rUv kept, 5000 in the ledger MISMATCH")
      expect(lines(drifted.stdout)).toContain("stake: 2000 rUv kept, 2000 in the ledger")
      expect(lines(drifted.stderr)).toEqual(["edge-net: books do not agree with the ledger: pool:compute"])
    } finally {
      await stop(restarted)
    }
  }, 40_000)
})
