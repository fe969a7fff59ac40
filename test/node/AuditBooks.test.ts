import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Ledger } from "../../src/actors/economy/Ledger.js"
import { Staking } from "../../src/actors/economy/StakeService.js"
import { Auctions } from "../../src/actors/market/AuctionService.js"
import { POOL_ACCOUNT } from "../../src/actors/market/ComputeAmm.js"
import { Market } from "../../src/actors/market/MarketService.js"
import { commitmentOf, escrowAccountOf } from "../../src/actors/market/TaskAuction.js"
import { nodeServices } from "../../src/layers/Node.js"
import { NodeAudit } from "../../src/layers/NodeAudit.js"
import { tempDir } from "../support/TempDir.js"

/** A node's services (no server, no background policies) on a fresh SQLite data dir. */
const node = () => nodeServices({ dataDir: tempDir(), host: "127.0.0.1", port: 0, synchronous: "normal" })

/** A swap against the compute pool, two stakes and a sealed bid: every book holds rUv. */
const economyAtWork = Effect.gen(function*() {
  const ledger = yield* Ledger
  const market = yield* Market
  const staking = yield* Staking
  const auctions = yield* Auctions
  for (
    const [account, amount] of [["provider", 10_000n], ["trader", 1_000n], ["bidder", 500n], ["staker", 300n], [
      "poster",
      1_000n
    ]] as const
  ) {
    yield* ledger.mint(account, amount, `genesis/${account}`)
  }
  yield* market.issueCompute("provider", 1_000n, "issue-1")
  yield* market.addLiquidity("provider", { computeDesired: 1_000n, ruvDesired: 10_000n }, "seed-1")
  yield* market.buy("trader", { exact: "in", amountIn: 100n, minAmountOut: 1n }, "swap-1")
  yield* staking.stake("bidder", 200n, "stake-1")
  yield* staking.stake("staker", 300n, "stake-2")
  yield* staking.unbond("staker", 50n, "unbond-1")
  yield* auctions.open({
    auctionId: "a1",
    poster: "poster",
    task: { kind: "inference" },
    maxPrice: 100n,
    minBids: 1,
    commitPeriodMs: 60_000,
    revealPeriodMs: 60_000,
    leasePeriodMs: 60_000
  })
  yield* auctions.commit("a1", "bidder", commitmentOf({ auctionId: "a1", bidder: "bidder", price: 40n, salt: "s" }))
})

const lines = (books: ReadonlyArray<{ book: string; expected: bigint; actual: bigint; ok: boolean }>) =>
  books.map(({ actual, book, expected, ok }) => `${book} ${expected} ${actual} ${ok ? "ok" : "MISMATCH"}`)

describe("audit replay reconciles each subsystem's books with the ledger", () => {
  it.scoped(
    "pool, stake and escrow books agree after a swap, stakes and a bid; a drained pool is a mismatch",
    () =>
      Effect.gen(function*() {
        yield* economyAtWork
        const audit = yield* NodeAudit
        const ledger = yield* Ledger
        const agreed = yield* audit.replay()
        // 10,000 rUv of liquidity and the 100 rUv swap; 200 + 300 staked (50 of it unbonding); one 10 rUv deposit.
        expect(lines(agreed.books)).toEqual([
          "pool:compute 10100 10100 ok",
          "stake 500 500 ok",
          "escrow 10 10 ok"
        ])
        expect(agreed.ok).toBe(true)
        expect((yield* ledger.balance(escrowAccountOf("a1"))).available).toBe(10n)

        // The attacker's move: rUv taken straight out of the pool's account while the pool still reports it.
        yield* ledger.transfer(POOL_ACCOUNT, "mallory", 5_000n, "drain-1")
        const drained = yield* audit.replay()
        expect(drained.ok).toBe(false)
        expect(lines(drained.books)).toEqual([
          "pool:compute 10100 5100 MISMATCH",
          "stake 500 500 ok",
          "escrow 10 10 ok"
        ])
        // Every actor still replays to its live state and rUv is conserved: only the books show the drift.
        expect(drained.actors.every((actor) => actor.mismatches.length === 0)).toBe(true)
        expect(drained.supply.conserved).toBe(true)
      }).pipe(Effect.provide(node())),
    60_000
  )

  it.scoped(
    "stake moved between stakers' accounts, or out of an auction's escrow, shows on the account that drifted",
    () =>
      Effect.gen(function*() {
        yield* economyAtWork
        const audit = yield* NodeAudit
        const ledger = yield* Ledger
        // Between two stake accounts the totals still agree; the accounts do not.
        yield* ledger.transfer("stake:staker", "stake:bidder", 100n, "shuffle")
        // The bidder takes its deposit back while the auction still holds its bid.
        yield* ledger.transfer(escrowAccountOf("a1"), "bidder", 10n, "deposit-back")
        const report = yield* audit.replay()
        expect(report.ok).toBe(false)
        expect(lines(report.books)).toEqual([
          "pool:compute 10100 10100 ok",
          "stake 500 500 MISMATCH",
          "stake:bidder 200 300 MISMATCH",
          "stake:staker 300 200 MISMATCH",
          "escrow 10 0 MISMATCH",
          "escrow:auction:a1 10 0 MISMATCH"
        ])
        // A staker taking its stake back at once, as the attacker did, lowers the total too.
        yield* ledger.transfer("stake:bidder", "bidder", 300n, "take-back")
        expect(lines((yield* audit.books()).filter((line) => line.book.startsWith("stake")))).toEqual([
          "stake 500 200 MISMATCH",
          "stake:bidder 200 0 MISMATCH",
          "stake:staker 300 200 MISMATCH"
        ])
      }).pipe(Effect.provide(node())),
    60_000
  )
})
