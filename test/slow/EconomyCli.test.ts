/**
 * `edge-net stake`, `gov`, `market` (pool and auctions) and `audit explain` against one real node
 * process: what each command prints (text and --json), what it changes, and for bad input one line on
 * stderr, exit code 1 and nothing changed. The stories run concurrently, each on its own accounts; the
 * ones racing voting and auction windows come first.
 */
import { Effect, Layer } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { commitmentOf } from "../../src/actors/market/TaskAuction.js"
import { OperationId } from "../../src/domain/Money.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { type CliResult, compileCli, runCompiledCli, startCompiledNode } from "../support/CompiledCli.js"
import type { RunningNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { as, operatorKeyOf, type TestKey, testKey, writeKeyFile } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const TIMELOCK_MS = 300

let root = ""
let dataDir = ""
/** The CLI's HOME: its ~/.edge-net/keys hold a key for every name the stories use. */
let home = ""
const names = ["alice", "carol", "trader", "poster", "bidder-1", "bidder-2", "nobody"] as const
const keys = Object.fromEntries(names.map((name) => [name, testKey()])) as Record<(typeof names)[number], TestKey>
/** The account a name's key owns: what the node and the CLI's output call it. */
const id = (name: (typeof names)[number]) => keys[name].account
let node: RunningNode
let auctionDeadlines = { commit: 0, reveal: 0 }
/**
 * How long one CLI run takes on this machine now, measured before the node starts. The voting, commit
 * and reveal windows (on the node's clock) are a few runs long, so a step lands inside its window on a
 * busy machine too, and an idle one does not wait longer than it must; while a window runs, the other
 * stories keep the cores busy.
 */
let runMs = 0
const windowOf = (runs: number) => runs * runMs + 2_000

type NodeRpc = Effect.Effect.Success<typeof nodeRpcClient>

/** One RPC conversation with the node, for setting up and for checking what a command changed. */
const rpc = <A, E>(use: (client: NodeRpc) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, use)).pipe(
      Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer))
    )
  )

/**
 * One CLI process per core at a time: started all at once, dozens of them would each take many times
 * longer, though the total work is the same. Steps racing a window go first.
 */
const slots = os.availableParallelism()
const waiting: Array<() => void> = []
let running = 0
const limited = async <A>(work: () => Promise<A>, first: boolean): Promise<A> => {
  if (running >= slots) await new Promise<void>((resolve) => (first ? waiting.unshift(resolve) : waiting.push(resolve)))
  else running++
  try {
    return await work()
  } finally {
    const next = waiting.shift()
    if (next === undefined) running--
    else next()
  }
}
const run = (...args: ReadonlyArray<string>) => limited(() => runCompiledCli(root, args, { HOME: home }), false)
const cli = (...args: ReadonlyArray<string>) => run(...args, "--node", node.url)
/** A step that must land inside a window (commit, reveal, vote) or that ends one (resolve, queue, execute). */
const timed = (...args: ReadonlyArray<string>) =>
  limited(() => runCompiledCli(root, [...args, "--node", node.url], { HOME: home }), true)
const json = <A = Record<string, unknown>>(result: CliResult): A => {
  expect(result.stderr).toBe("")
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout) as A
}
const text = (result: CliResult): string => {
  expect(result.stderr).toBe("")
  expect(result.code).toBe(0)
  return result.stdout
}
/** A refusal as users see it: exit code 1, nothing on stdout, one line on stderr that says why. */
const refused = (result: CliResult, why: string) => {
  expect(result.stdout).toBe("")
  expect(result.stderr.trim().split("\n")).toEqual([`edge-net: ${why}`])
  expect(result.code).toBe(1)
}

const sleepUntil = (millis: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, millis - Date.now() + 50)))
/** Polls until the node's policies have caught up; fails with the last value read after 15 s. */
const eventually = async <A>(read: () => Promise<A>, done: (value: A) => boolean): Promise<A> => {
  const deadline = Date.now() + 15_000
  while (true) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) {
      throw new Error(
        `still not there after 15 s: ${
          JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? `${item}` : item))
        }`
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const operation = OperationId.make

beforeAll(async () => {
  root = compileCli()
  // A command as the stories run them: its module loaded, an RPC client made (the node it names is not
  // there, so it fails at once). `--version` is answered before the command framework loads, about
  // a sixth of that time, and windows sized from it closed before the steps inside them ran.
  const probeStarted = Date.now()
  await runCompiledCli(root, ["gov", "show", "probe", "--node", "http://127.0.0.1:9"])
  runMs = Date.now() - probeStarted
  dataDir = tempDir()
  home = tempDir()
  for (const name of names) {
    await Effect.runPromise(writeKeyFile(path.join(home, ".edge-net", "keys"), name, keys[name]))
  }
  node = await startCompiledNode(root, dataDir, {
    EDGE_NET_GENESIS: `votingDelayMs=0,votingPeriodMs=${
      windowOf(8)
    },timelockMs=${TIMELOCK_MS},quorumPpm=100000,unbondingDelayMs=200`
  })
  // Money and stake the stories start from; the CLI is what they test, so this goes over RPC.
  const opened = await rpc((client) =>
    Effect.gen(function*() {
      const operator = operatorKeyOf(dataDir)
      const mints = {
        alice: 1_000n,
        carol: 1_000n,
        trader: 5_000n,
        poster: 10_000n,
        "bidder-1": 1_000n,
        "bidder-2": 1_000n,
        nobody: 0n
      }
      for (const [who, amount] of Object.entries(mints) as Array<[(typeof names)[number], bigint]>) {
        if (amount > 0n) {
          yield* as(operator)(client.LedgerMint({ account: id(who), amount, operationId: operation(`mint-${who}`) }))
        }
      }
      for (const who of ["carol", "bidder-1", "bidder-2"] as const) {
        yield* as(keys[who])(client.Stake({ node: id(who), amount: 200n, operationId: operation(`stake-${who}`) }))
      }
      yield* as(operator)(
        client.MarketIssueCompute({ node: id("poster"), units: 100_000n, operationId: operation("issue-poster") })
      )
      // Seeding the pool takes the operators' signature besides the provider's own.
      yield* as(keys.poster, { cosigners: [operator] })(
        client.MarketAddLiquidity({
          provider: id("poster"),
          computeDesired: 100_000n,
          ruvDesired: 5_000n,
          orderId: operation("lp-poster")
        })
      )
      return yield* as(keys.poster)(client.AuctionOpen({
        auctionId: "job-1",
        poster: id("poster"),
        task: { model: "tiny-lm", input: "job-1" },
        maxPrice: 500n,
        minBids: 2,
        commitPeriodMs: windowOf(8),
        revealPeriodMs: windowOf(6),
        leasePeriodMs: 60_000
      }))
    })
  )
  auctionDeadlines = { commit: opened.commitDeadline, reveal: opened.revealDeadline }
}, 120_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

describe.concurrent("edge-net economy commands against a running node", () => {
  it("market auction commit, reveal, resolve and complete: the lowest bid wins at the second price", async () => {
    const [committed, ineligible] = await Promise.all([
      timed("market", "auction", "commit", "job-1", "bidder-1", "120"),
      timed("market", "auction", "commit", "job-1", "nobody", "10"),
      rpc((client) =>
        as(keys["bidder-2"])(client.AuctionCommit({
          auctionId: "job-1",
          bidder: id("bidder-2"),
          commitment: commitmentOf({ auctionId: "job-1", bidder: id("bidder-2"), price: 150n, salt: "salt-2" })
        }))
      )
    ])
    // The price stays on the bidder's machine: the CLI sends a commitment and prints the salt to reveal with.
    const sealed =
      /^committed a sealed bid for job-1 \(commitment ([0-9a-f]{64})\)\nkeep this salt to reveal: ([0-9a-f]{32})\n$/
        .exec(text(committed))
    expect(sealed).not.toBeNull()
    expect(sealed![1]).toBe(
      commitmentOf({ auctionId: "job-1", bidder: id("bidder-1"), price: 120n, salt: sealed![2]! })
    )
    refused(ineligible, `${id("nobody")} may not bid: its active stake is below the minimum`)
    expect((await rpc((client) => client.AuctionState({ auctionId: "job-1" }))).bids.map((bid) => bid.bidder).sort())
      .toEqual([id("bidder-1"), id("bidder-2")].sort())

    await sleepUntil(auctionDeadlines.commit)
    const [revealed, mismatched] = await Promise.all([
      timed("market", "auction", "reveal", "job-1", "bidder-1", "120", sealed![2]!),
      timed("market", "auction", "reveal", "job-1", "bidder-2", "90", "salt-2")
    ])
    expect(text(revealed)).toContain(`\n  bid ${id("bidder-1")}: 120 rUv\n`)
    expect(revealed.stdout).toContain(`\n  bid ${id("bidder-2")}: sealed\n`)
    expect(mismatched.stderr).toMatch(
      new RegExp(
        `^edge-net: reveal of ${
          id("bidder-2")
        } rejected: price and salt hash to [0-9a-f]{12}…, the commitment is [0-9a-f]{12}…\\n$`
      )
    )
    expect(mismatched.code).toBe(1)
    await rpc((client) =>
      as(keys["bidder-2"])(
        client.AuctionReveal({ auctionId: "job-1", bidder: id("bidder-2"), price: 150n, salt: "salt-2" })
      )
    )

    await sleepUntil(auctionDeadlines.reveal)
    const resolved = json<Record<string, unknown>>(await timed("market", "auction", "resolve", "job-1", "--json"))
    expect(resolved).toMatchObject({ status: "resolved", winner: id("bidder-1"), price: "150" })
    expect(text(await timed("market", "auction", "complete", "job-1", "poster"))).toContain(
      `winner ${id("bidder-1")}, paid 150 rUv`
    )
    // 1000 minted - 200 staked; the deposit came back; the lease paid 150.
    await eventually(
      () => rpc((client) => client.LedgerBalance({ account: id("bidder-1") })),
      (balance) => balance.available === 950n && balance.held === 0n
    )
  }, 240_000)

  it("market auction open, refusing a taken id, a bad option and a bad id", async () => {
    const opened = await cli(
      "market",
      "auction",
      "open",
      "job-2",
      "poster",
      "300",
      "--min-bids",
      "2",
      "--commit-ms",
      "60000",
      "--task",
      "{\"model\":\"tiny-lm\"}",
      "--json"
    )
    expect(json(opened)).toMatchObject({
      auctionId: "job-2",
      status: "open",
      poster: id("poster"),
      maxPrice: "300",
      minBids: 2,
      task: { model: "tiny-lm" },
      bids: []
    })
    const [reopened, badMinBids, badAuctionId] = await Promise.all([
      cli("market", "auction", "open", "job-2", "poster", "400"),
      cli("market", "auction", "open", "job-3", "poster", "300", "--min-bids", "0"),
      cli("market", "auction", "show", "job/1")
    ])
    refused(reopened, "auction job-2 is already open")
    refused(badMinBids, "invalid --min-bids 0: expected a positive whole number")
    refused(
      badAuctionId,
      "invalid auction id \"job/1\": an auction id is 1-64 letters, digits or _ . @ -, starting with a letter or digit"
    )
    expect((await rpc((client) => client.AuctionState({ auctionId: "job-2" }))).maxPrice).toBe(300n)
    expect((await rpc((client) => Effect.flip(client.AuctionState({ auctionId: "job-3" }))))._tag).toBe(
      "AuctionNotFound"
    )
    // Sending the same open again is a retry, answered with the auction as it was opened.
    const retried = await rpc((client) =>
      as(keys.poster)(client.AuctionOpen({
        auctionId: "job-2",
        poster: id("poster"),
        task: { model: "tiny-lm" },
        maxPrice: 300n,
        minBids: 2,
        commitPeriodMs: 60_000,
        revealPeriodMs: 60_000,
        leasePeriodMs: 3_600_000
      }))
    )
    expect(retried).toMatchObject({ auctionId: "job-2", maxPrice: 300n, version: 1 })
  }, 240_000)

  it(
    "gov propose, vote, queue, execute and show; audit explain proposal, through the node and on its data dir",
    async () => {
      const proposedResult = await timed(
        "gov",
        "propose",
        "carol",
        "bidDepositRuv",
        "20",
        "--description",
        "raise the bid deposit",
        "--json"
      )
      const proposed = json<
        {
          proposal: {
            proposalId: string
            status: string
            proposer: string
            parameter: string
            value: string
            voteEnd: number
          }
        }
      >(proposedResult)
      const proposalId = proposed.proposal.proposalId
      expect(proposed.proposal).toMatchObject({
        status: "Active",
        proposer: id("carol"),
        parameter: "bidDepositRuv",
        value: "20"
      })

      const [voted, early] = await Promise.all([
        timed("gov", "vote", proposalId, "carol", "for"),
        timed("gov", "queue", proposalId)
      ])
      expect(text(voted)).toBe(
        `voted for\nproposal ${proposalId}: Active, set bidDepositRuv to 20 (by ${
          id("carol")
        }: "raise the bid deposit")\n`
      )
      refused(
        early,
        `cannot queue proposal ${proposalId}: it is Active (voting ends at ${
          new Date(proposed.proposal.voteEnd).toISOString()
        })`
      )
      const afterVote = await rpc((client) => client.GovernanceShow({ proposalId }))
      expect(afterVote.history.map((entry) => entry.event._tag)).toEqual(["ProposalCreated", "VoteCast"])

      await sleepUntil(proposed.proposal.voteEnd)
      expect(text(await timed("gov", "queue", proposalId))).toContain(`queued\nproposal ${proposalId}: Queued`)
      await sleepUntil(Date.now() + TIMELOCK_MS)
      expect(text(await timed("gov", "execute", proposalId))).toContain(
        `executed\nproposal ${proposalId}: Executed, set bidDepositRuv to 20`
      )

      const [shownResult, explainedText, explainedJson] = await Promise.all([
        cli("gov", "show", proposalId, "--json"),
        cli("audit", "explain", "proposal", proposalId),
        // Directly on the data dir, beside the running node.
        run("audit", "explain", "proposal", proposalId, "--data", dataDir, "--json")
      ])
      const shown = json<
        {
          status: string
          tally: Record<string, string>
          votes: Array<{ voter: string; support: string; weight: string }>
        }
      >(shownResult)
      expect(shown).toMatchObject({ status: "Executed", tally: { for: "200", against: "0", abstain: "0" } })
      expect(shown.votes).toMatchObject([{ voter: id("carol"), support: "for", weight: "200" }])
      const why = `Proposal ${proposalId} by ${id("carol")}: set bidDepositRuv (market) to 20 ("raise the bid deposit")`
      expect(text(explainedText)).toContain(why)
      expect(explainedText.stdout).toContain(`Votes: ${id("carol")} for 200. Queued; executable after `)
      expect(explainedText.stdout).toContain("Executed: for 200, against 0, abstain 0")
      const explained = json<
        { why: string; facts: { votes: Array<Record<string, string>> }; events: Array<{ eventType: string }> }
      >(explainedJson)
      expect(explained.why).toContain(why)
      expect(explained.facts.votes).toEqual([{ voter: id("carol"), support: "for", weight: "200" }])
      expect(explained.events.map((event) => event.eventType)).toEqual([
        "ProposalCreated",
        "VoteCast",
        "ProposalQueued",
        "ProposalExecuted"
      ])

      // The change reaches the market: the next auction locks the new deposit.
      await eventually(
        () =>
          rpc((client) =>
            as(keys.carol)(
              client.AuctionOpen({
                auctionId: `gov-check-${Date.now()}`,
                poster: id("carol"),
                task: {},
                maxPrice: 1n,
                minBids: 1,
                commitPeriodMs: 1_000,
                revealPeriodMs: 1_000,
                leasePeriodMs: 1_000
              })
            )
          ),
        (auction) => auction.bidDepositRuv === 20n
      )
    },
    240_000
  )

  it("gov propose refuses an unknown parameter, proposing nothing", async () => {
    refused(await cli("gov", "propose", "carol", "noSuchParameter", "5"), "unknown parameter \"noSuchParameter\"")
    const proposals = await rpc((client) => client.GovernanceList({}))
    expect(proposals.filter((proposal) => proposal.proposer !== id("carol") || proposal.parameter !== "bidDepositRuv"))
      .toEqual([])
  }, 240_000)

  it("stake add, unbond, withdraw and show; audit explain account", async () => {
    const [added, badAmount] = await Promise.all([
      cli("stake", "add", "alice", "300", "--id", "stake-1"),
      cli("stake", "add", "alice", "1.5")
    ])
    expect(text(added)).toContain("staked 300 rUv (position ")
    expect(added.stdout).toContain(`${id("alice")}: 300 rUv active stake, 0 unbonding, 0 withdrawn, 0 slashed`)
    refused(badAmount, "invalid amount \"1.5\": expected a positive whole number of rUv")
    expect(await rpc((client) => client.StakeOf({ node: id("alice") }))).toMatchObject({ active: 300n, unbonding: 0n })
    expect((await rpc((client) => client.LedgerBalance({ account: id("alice") }))).available).toBe(700n)

    const unbonded = json<
      { active: string; unbonding: string; pending: Array<{ amount: string; availableAt: number }>; duplicate: boolean }
    >(
      await cli("stake", "unbond", "alice", "100", "--json")
    )
    expect(unbonded).toMatchObject({ active: "200", unbonding: "100", duplicate: false })
    expect(unbonded.pending).toHaveLength(1)
    expect(unbonded.pending[0]!.amount).toBe("100")

    await sleepUntil(unbonded.pending[0]!.availableAt)
    const [withdrawn, tooMuch] = await Promise.all([
      cli("stake", "withdraw", "alice"),
      cli("stake", "unbond", "alice", "100000")
    ])
    expect(text(withdrawn)).toContain(
      `withdrew matured unbondings\n${id("alice")}: 200 rUv active stake, 0 unbonding, 100 withdrawn, 0 slashed`
    )
    refused(tooMuch, "insufficient stake: 200 rUv staked, 100000 required")

    const shown = json<
      { stake: Record<string, unknown>; reputation: Record<string, unknown>; rewards: Record<string, unknown> }
    >(
      await cli("stake", "show", "alice", "--json")
    )
    expect(shown.stake).toMatchObject({
      node: id("alice"),
      active: "200",
      unbonding: "0",
      withdrawn: "100",
      slashed: "0",
      pending: []
    })
    expect(shown.reputation).toMatchObject({ scorePpm: "500000", successes: 0, failures: 0 })
    expect(shown.rewards).toMatchObject({ total: "0", claimed: "0" })
    // The withdrawal pays back through the ledger: 1000 minted, 300 staked, 100 back.
    await eventually(
      () => rpc((client) => client.LedgerBalance({ account: id("alice") })),
      (balance) => balance.available === 800n
    )

    const [explainedText, explainedJson, nobody] = await Promise.all([
      cli("audit", "explain", "account", "alice"),
      cli("audit", "explain", "account", "alice", "--json"),
      cli("audit", "explain", "account", "nobody")
    ])
    expect(text(explainedText)).toContain(
      `Account ${id("alice")}: 3 event(s); Minted 1000 rUv, Debited 300 rUv, Credited 100 rUv.`
    )
    expect(explainedText.stdout).toMatch(/^#\d+ [0-9a-f]{16} Minted \{/)
    const explained = json<
      {
        kind: string
        streamId: string
        facts: { totals: Record<string, string> }
        events: Array<{ eventType: string; position: number; hash: string }>
      }
    >(explainedJson)
    expect(explained).toMatchObject({
      kind: "account",
      streamId: `Account-${id("alice")}`,
      facts: { totals: { Minted: "1000", Debited: "300", Credited: "100" } }
    })
    expect(explained.events.map((event) => event.eventType)).toEqual(["Minted", "Debited", "Credited"])
    for (const event of explained.events) expect(event.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(explained.events.map((event) => event.position)).toEqual(
      [...explained.events.map((event) => event.position)].sort((a, b) => a - b)
    )
    refused(nobody, `no account ${id("nobody")} in the journal`)
  }, 240_000)

  it("market quote, buy and sell, with the slippage limit refusing a trade", async () => {
    const before = await rpc((client) => client.MarketPoolState({ node: id("trader") }))
    const [quoted, slipped, badOrder] = await Promise.all([
      cli("market", "quote", "buy", "1000"),
      cli("market", "buy", "trader", "1000", "--min-out", "1000000"),
      cli("market", "buy", "trader", "1000", "--id", "not an id")
    ])
    const quote =
      /^buy 1000 rUv -> (\d+) compute \(fee 30 bps, market parameters version \d+\)\nreserves: (\d+) compute, 6000 rUv\n$/
        .exec(text(quoted))
    expect(quote).not.toBeNull()
    const computeOut = quote![1]!
    refused(slipped, `slippage: ${computeOut} compute units out, at least 1000000 required`)
    refused(
      badOrder,
      "invalid id \"not an id\": Expected a string matching the pattern ^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$, actual \"not an id\""
    )
    // Refused orders moved nothing: reserves as they were, the trader's rUv all available again.
    expect((await rpc((client) => client.MarketPoolState({}))).pool).toMatchObject({
      compute: before.pool.compute,
      ruv: before.pool.ruv
    })
    expect(await rpc((client) => client.LedgerBalance({ account: id("trader") }))).toMatchObject({
      available: 5_000n,
      held: 0n
    })

    const bought = json<Record<string, unknown>>(
      await cli("market", "buy", "trader", "1000", "--min-out", computeOut, "--id", "buy-1", "--json")
    )
    expect(bought).toMatchObject({
      side: "buy",
      orderId: "buy-1",
      amountIn: "1000",
      amountOut: computeOut,
      feeBps: "30",
      settled: true,
      duplicate: false
    })

    const sale = /^sold: 500 compute -> (\d+) rUv \(order sell-1, fee 30 bps\)\n$/.exec(
      text(await cli("market", "sell", "trader", "500", "--id", "sell-1"))
    )
    expect(sale).not.toBeNull()
    const after = await rpc((client) => client.MarketPoolState({ node: id("trader") }))
    expect(after.trader).toMatchObject({ compute: BigInt(computeOut) - 500n })
    expect(after.pool.ruv).toBe(before.pool.ruv + 1_000n - BigInt(sale![1]!))
    expect(await rpc((client) => client.LedgerBalance({ account: id("trader") }))).toMatchObject({
      available: 4_000n + BigInt(sale![1]!),
      held: 0n
    })
  }, 240_000)
})
