/**
 * The attacks a probe of a running node found, replayed against a real node process over /rpc:
 * each is now refused with one typed line and leaves the journal exactly as it was; `audit verify`
 * then checks that every command stored in the log was signed by whoever owned what it moved.
 */
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ProposalId } from "../../src/actors/governance/Proposal.js"
import { MarketRpcs } from "../../src/actors/market/MarketRpc.js"
import { commitmentOf } from "../../src/actors/market/TaskAuction.js"
import { AuctionId } from "../../src/actors/market/TaskAuction.js"
import { ed25519 } from "../../src/domain/Ed25519.js"
import { AccountId } from "../../src/domain/Money.js"
import type { SigningKey } from "../../src/domain/SignedCommand.js"
import { authFor, signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { as, DEV_NETWORK, type TestKey, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

let node: RunningNode
let dataDir = ""
let operator: SigningKey
const alice = testKey()
const mallory = testKey()

type NodeRpc = Effect.Effect.Success<typeof nodeRpcClient>
type Attack = (client: NodeRpc) => Effect.Effect<unknown, unknown>

const rpc = <A, E>(use: (client: NodeRpc) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, use)).pipe(
      Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer))
    )
  )

const head = () => rpc((client) => client.JournalHead())

/** The attack's failure, checked to be one line; and the journal, checked not to have moved. */
const refused = async <A, E>(attack: (client: NodeRpc) => Effect.Effect<A, E>) => {
  const before = await head()
  const error = await rpc((client) => Effect.flip(attack(client)))
  expect(await head()).toEqual(before)
  const failure = error as { readonly _tag: string; readonly message: string; readonly reason?: string }
  expect(failure.message.split("\n")).toHaveLength(1)
  return failure
}

beforeAll(async () => {
  dataDir = tempDir("attacks-")
  // Votes open at once so the takeover story below runs in seconds.
  node = await startNode(dataDir, undefined, { EDGE_NET_GENESIS: "votingDelayMs=0,votingPeriodMs=2000,timelockMs=100" })
  const keyFile = JSON.parse(fs.readFileSync(path.join(dataDir, "node.key"), "utf8")) as { seed: string }
  const seed = Buffer.from(keyFile.seed, "hex")
  operator = { seed, publicKey: ed25519.publicKeyOf(seed) }
  await rpc((client) =>
    Effect.gen(function*() {
      yield* as(operator)(client.LedgerMint({ account: alice.account, amount: 10_000n }))
      yield* as(alice)(client.LedgerTransfer({ from: alice.account, to: mallory.account, amount: 500n }))
      yield* as(alice)(client.Stake({ node: alice.account, amount: 5_000n }))
      yield* as(mallory)(client.Stake({ node: mallory.account, amount: 400n }))
    })
  )
}, 60_000)
afterAll(async () => {
  await node?.kill("SIGTERM")
})

/**
 * A signed AuctionOpen whose task is `depth` arrays deep, as the ndjson line /rpc reads: written here,
 * the task spliced in as text, since the RPC client's JSON.stringify recurses once a level and 3,000
 * levels overflowed the test process's stack now and then (once in a clean clone's run).
 */
const deepAuctionOpen = (key: TestKey, depth: number): string => {
  const rpc = MarketRpcs.requests.get("AuctionOpen")!
  let task: unknown = 1
  for (let level = 0; level < depth; level++) task = [task]
  const fields = {
    auctionId: AuctionId.make("deep"),
    poster: key.account,
    task,
    maxPrice: 10n,
    minBids: 1,
    commitPeriodMs: 1000,
    revealPeriodMs: 1000,
    leasePeriodMs: 1000
  }
  const auth = authFor(rpc, fields, { key, network: DEV_NETWORK }, Date.now())
  const payload = Schema.encodeSync(rpc.payloadSchema as Schema.Schema<unknown, Record<string, unknown>>)({
    ...fields,
    auth
  })
  const line = JSON.stringify({
    _tag: "Request",
    id: "1",
    tag: rpc._tag,
    payload: { ...payload, task: "@task@" },
    headers: []
  })
  return `${line.replace("\"@task@\"", `${"[".repeat(depth)}1${"]".repeat(depth)}`)}\n`
}

describe("attacks on a running node", () => {
  it("an anonymous or self-made mint is refused", async () => {
    expect((await refused((client) => client.LedgerMint({ account: mallory.account, amount: 1_000_000n }))).reason)
      .toBe("unsigned")
    expect(
      (await refused((client) => as(mallory)(client.LedgerMint({ account: mallory.account, amount: 1_000_000n }))))
        .reason
    ).toBe("not-operator")
  })

  it("nobody acts in another's name: transfer, stake, unbond, bid, vote", async () => {
    const inAlicesName: Array<Attack> = [
      (client: NodeRpc) => client.LedgerTransfer({ from: alice.account, to: mallory.account, amount: 100n }),
      (client: NodeRpc) => client.Stake({ node: alice.account, amount: 10n }),
      (client: NodeRpc) => client.Unbond({ node: alice.account, amount: 10n }),
      (client: NodeRpc) => client.Withdraw({ node: alice.account }),
      (client: NodeRpc) =>
        client.AuctionCommit({ auctionId: AuctionId.make("a1"), bidder: alice.account, commitment: "00".repeat(32) }),
      (client: NodeRpc) =>
        client.GovernanceVote({ proposalId: ProposalId.make("p1"), voter: alice.account, support: "for" }),
      (client: NodeRpc) =>
        client.MarketBuy({ trader: alice.account, trade: { exact: "in", amountIn: 10n, minAmountOut: 0n } })
    ]
    for (const attack of inAlicesName) {
      const failure = await refused((client) => as(mallory)(attack(client)))
      expect(failure.reason).toBe("not-owner")
      expect(failure.message).toContain(`is not the signer's account ${mallory.account}`)
    }
  })

  it("operator commands need the operator key", async () => {
    const operatorOnly: Array<Attack> = [
      (client: NodeRpc) =>
        client.MarketIssueCompute({ node: mallory.account, units: 5_000n, operationId: "i1" as never }),
      (client: NodeRpc) =>
        client.Slash({ node: alice.account, reason: "SybilAttack", evidence: "none", operationId: "s1" as never }),
      (client: NodeRpc) => client.LedgerHold({ account: alice.account, holdId: "h1" as never, amount: 10n }),
      (client: NodeRpc) => client.PoolConfigure({ maxSlots: 1 })
    ]
    for (const attack of operatorOnly) {
      expect((await refused((client) => as(mallory)(attack(client)))).reason).toBe("not-operator")
    }
  })

  it("system accounts cannot be spent by any key", async () => {
    for (const system of [`stake:${alice.account}`, "pool:compute", "escrow:auction:a1", "treasury"]) {
      const failure = await refused((client) =>
        as(mallory)(client.LedgerTransfer({ from: AccountId.make(system), to: mallory.account, amount: 1n }))
      )
      expect(failure.reason).toBe("not-owner")
    }
  })

  it("one caller cannot take over governance", async () => {
    // Out of bounds: no proposal moves the fee to 99.99%.
    const extreme = await refused((client) =>
      as(mallory)(
        client.GovernancePropose({ proposer: mallory.account, parameter: "feeBps", value: 9999n, description: "mine" })
      )
    )
    expect(extreme.message).toMatch(/feeBps/)
    // Within bounds, alone with 7% of the stake: the vote cannot reach quorum, so nothing can be queued.
    const { proposal } = await rpc((client) =>
      as(mallory)(
        client.GovernancePropose({
          proposer: mallory.account,
          parameter: "feeBps",
          value: 60n,
          description: "double the fee"
        })
      )
    )
    await rpc((client) =>
      as(mallory)(client.GovernanceVote({ proposalId: proposal.proposalId, voter: mallory.account, support: "for" }))
    )
    await new Promise((resolve) => setTimeout(resolve, 2_200))
    const queue = await rpc((client) =>
      Effect.flip(as(mallory)(client.GovernanceQueue({ proposalId: proposal.proposalId })))
    )
    expect((queue as { message: string }).message).toMatch(/quorum|Defeated/i)
    const fee = await rpc((client) =>
      client.MarketQuote({ side: "buy", trade: { exact: "in", amountIn: 10_000n, minAmountOut: 0n } }).pipe(
        Effect.either
      )
    )
    expect(JSON.stringify(fee)).not.toContain("\"feeBps\":60")
  }, 20_000)

  it("a 3,000-deep payload and a huge amount are refused", async () => {
    const before = await head()
    const deep = await fetch(`${node.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson" },
      body: deepAuctionOpen(mallory, 3_000)
    })
    expect(await deep.text()).toContain("JSON value nested deeper than 64 levels")
    expect(await head()).toEqual(before)
    const commitment = commitmentOf({ auctionId: "x", bidder: mallory.account, price: 1n, salt: "s" })
    expect(commitment).toMatch(/^[0-9a-f]{64}$/)
    // Amounts are decoded from decimal strings of at most 30 digits, before any handler runs.
    const response = await fetch(`${node.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson" },
      body: `${
        JSON.stringify({
          _tag: "Request",
          id: "1",
          tag: "LedgerMint",
          payload: { account: mallory.account, amount: "9".repeat(4_000_000) },
          headers: []
        })
      }\n`
    })
    expect(response.status).toBeGreaterThanOrEqual(400)
    expect(await head()).toEqual(before)
  })

  it("audit verify checks every stored command and finds them all signed by their owners", async () => {
    const report = await rpc((client) => client.AuditVerify())
    expect(report.ok).toBe(true)
    expect(report.commandsChecked).toBeGreaterThanOrEqual(6)
    expect(report.ownerEventsChecked).toBeGreaterThanOrEqual(4)
  })
})
