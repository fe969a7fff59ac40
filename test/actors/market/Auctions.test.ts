import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, TestClock, TestContext } from "effect"
import * as fc from "fast-check"
import { Ledger } from "../../../src/actors/economy/Ledger.js"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { auctionSettlementPolicy } from "../../../src/actors/market/AuctionPolicies.js"
import { Auctions, BidEligibility } from "../../../src/actors/market/AuctionService.js"
import {
  commitmentOf,
  depositHoldIdOf,
  escrowAccountOf,
  leaseHoldIdOf
} from "../../../src/actors/market/TaskAuction.js"
import { TaskAuction } from "../../../src/actors/market/TaskAuction.js"
import * as Policy from "../../../src/events/Policy.js"
import { anotherRunner, replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"

const auctionsOn = (eligibility: Layer.Layer<BidEligibility> = BidEligibility.permissive) =>
  Auctions.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(Ledger.Default, NetworkParameters.Default, eligibility)),
    Layer.provideMerge(memoryKernel())
  )

const terms = {
  auctionId: "a1",
  poster: "poster",
  task: { kind: "inference", model: "tiny-lm", tokens: 512 },
  maxPrice: 100n,
  minBids: 2,
  commitPeriodMs: 1_000,
  revealPeriodMs: 1_000,
  leasePeriodMs: 5_000
}
const sealed = (bidder: string, price: bigint, auctionId = "a1") =>
  commitmentOf({ auctionId, bidder, price, salt: `s-${bidder}` })

const fund = (accounts: Record<string, bigint>) =>
  Effect.flatMap(
    Ledger,
    (ledger) =>
      Effect.forEach(Object.entries(accounts), ([account, amount]) => ledger.mint(account, amount), { discard: true })
  )

const available = (account: string) =>
  Effect.map(Effect.flatMap(Ledger, (ledger) => ledger.balance(account)), (balance) => balance.available)

/** Open, three sealed bids (b3's never revealed), two reveals: b2 at 30 wins and is paid b1's 40. */
const biddingRound = Effect.gen(function*() {
  const auctions = yield* Auctions
  yield* fund({ poster: 1_000n, b1: 100n, b2: 100n, b3: 100n })
  yield* auctions.open(terms)
  yield* auctions.commit("a1", "b1", sealed("b1", 40n))
  yield* auctions.commit("a1", "b2", sealed("b2", 30n))
  yield* auctions.commit("a1", "b3", sealed("b3", 60n))
  yield* TestClock.adjust("1 second")
  yield* auctions.reveal("a1", "b1", 40n, "s-b1")
  yield* auctions.reveal("a1", "b2", 30n, "s-b2")
  yield* TestClock.adjust("1 second")
  return yield* auctions.resolve("a1")
})

describe("Auctions", () => {
  it.effect("commit, reveal, resolve, complete: deposits escrowed and returned, the winner paid the second price", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      const ledger = yield* Ledger
      yield* fund({ poster: 1_000n, b1: 100n, b2: 100n, b3: 100n })
      const opened = yield* auctions.open(terms)
      expect(opened).toMatchObject({
        status: "open",
        commitDeadline: 1_000,
        revealDeadline: 2_000,
        leaseDeadline: 7_000,
        bidDepositRuv: 10n
      })
      yield* auctions.commit("a1", "b1", sealed("b1", 40n))
      yield* auctions.commit("a1", "b2", sealed("b2", 30n))
      yield* auctions.commit("a1", "b3", sealed("b3", 60n))
      expect(yield* available("b1")).toBe(90n)
      expect(yield* available(escrowAccountOf("a1"))).toBe(30n)
      expect((yield* Effect.flip(auctions.reveal("a1", "b1", 40n, "s-b1")))._tag).toBe("OutsideWindow")

      yield* TestClock.adjust("1 second")
      const late = yield* Effect.flip(auctions.commit("a1", "b4", sealed("b4", 1n)))
      expect(late.message).toBe(
        "too late to commit: the window closed at 1970-01-01T00:00:01.000Z (now 1970-01-01T00:00:01.000Z)"
      )
      expect((yield* Effect.flip(auctions.reveal("a1", "b3", 59n, "s-b3")))._tag).toBe("CommitmentMismatch")
      yield* auctions.reveal("a1", "b1", 40n, "s-b1")
      yield* auctions.reveal("a1", "b2", 30n, "s-b2")
      expect((yield* Effect.flip(auctions.resolve("a1")))._tag).toBe("OutsideWindow")

      yield* TestClock.adjust("1 second")
      const resolved = yield* auctions.resolve("a1")
      expect(resolved).toMatchObject({ status: "resolved", winner: "b2", price: 40n })
      expect([yield* available("b1"), yield* available("b2"), yield* available("b3"), yield* available("treasury")])
        .toEqual([100n, 100n, 90n, 10n])
      expect(yield* available(escrowAccountOf("a1"))).toBe(0n)
      expect((yield* ledger.balance("poster")).holds).toEqual({ [leaseHoldIdOf("a1")]: 40n })

      expect((yield* Effect.flip(auctions.complete("a1", "b2")))._tag).toBe("NotPermitted")
      const completed = yield* auctions.complete("a1", "poster")
      expect(completed.status).toBe("completed")
      expect(yield* ledger.balance("poster")).toMatchObject({ available: 960n, held: 0n })
      expect(yield* available("b2")).toBe(140n)
      expect((yield* Effect.flip(auctions.fail("a1", "poster", "incorrectResult")))._tag).toBe("AuctionClosed")
      expect(yield* ledger.supply()).toMatchObject({ inFlight: 0n, held: 0n, conserved: true })
    }).pipe(Effect.provide(auctionsOn())))

  it.effect("a rejected result releases the lease back to the poster and records the reason", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      const ledger = yield* Ledger
      yield* biddingRound
      const failed = yield* auctions.fail("a1", "poster", "incorrectResult")
      expect(failed).toMatchObject({ status: "failed", failure: "incorrectResult", winner: "b2" })
      expect(yield* ledger.balance("poster")).toMatchObject({ available: 1_000n, held: 0n })
      expect((yield* Effect.flip(auctions.complete("a1", "poster")))._tag).toBe("AuctionClosed")
      expect(yield* ledger.balance("poster")).toMatchObject({ available: 1_000n, held: 0n })
    }).pipe(Effect.provide(auctionsOn())))

  it.effect("anyone reports a timeout once the lease deadline has passed", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      yield* biddingRound
      expect((yield* Effect.flip(auctions.fail("a1", "b1", "challengeTimeout")))._tag).toBe("OutsideWindow")
      yield* TestClock.adjust("5 seconds")
      expect(yield* auctions.fail("a1", "b1", "challengeTimeout")).toMatchObject({
        status: "failed",
        failure: "challengeTimeout"
      })
      expect(yield* available("poster")).toBe(1_000n)
    }).pipe(Effect.provide(auctionsOn())))

  it.effect("too few revealed bids cancel the auction: revealed deposits refunded, unrevealed forfeited, no lease", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      const ledger = yield* Ledger
      yield* fund({ poster: 1_000n, b1: 100n, b2: 100n })
      yield* auctions.open({ ...terms, minBids: 2 })
      yield* auctions.commit("a1", "b1", sealed("b1", 40n))
      yield* auctions.commit("a1", "b2", sealed("b2", 50n))
      yield* TestClock.adjust("1 second")
      yield* auctions.reveal("a1", "b1", 40n, "s-b1")
      yield* TestClock.adjust("1 second")
      expect(yield* auctions.resolve("a1")).toMatchObject({ status: "cancelled", winner: null })
      expect([yield* available("b1"), yield* available("b2"), yield* available("treasury")]).toEqual([100n, 90n, 10n])
      expect(yield* ledger.balance("poster")).toMatchObject({ available: 1_000n, held: 0n })
    }).pipe(Effect.provide(auctionsOn())))

  it.effect("only nodes the eligibility check accepts may bid; nothing is held for the others", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      yield* fund({ poster: 1_000n, pauper: 100n })
      yield* auctions.open(terms)
      const refused = yield* Effect.flip(auctions.commit("a1", "pauper", sealed("pauper", 10n)))
      expect(refused.message).toBe("pauper may not bid: its active stake is below the minimum")
      expect(yield* available("pauper")).toBe(100n)
    }).pipe(
      Effect.provide(auctionsOn(Layer.succeed(BidEligibility, { canBid: (node) => Effect.succeed(node !== "pauper") })))
    ))

  it.effect("a poster who cannot fund the lease at resolution fails it (leaseUnfunded); opening needs the maximum price available", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      const ledger = yield* Ledger
      yield* fund({ broke: 50n })
      expect((yield* Effect.flip(auctions.open({ ...terms, poster: "broke" })))._tag).toBe("InsufficientFunds")
      yield* fund({ poster: 1_000n, b1: 100n, b2: 100n, b3: 100n })
      yield* auctions.open(terms)
      yield* auctions.commit("a1", "b1", sealed("b1", 40n))
      yield* auctions.commit("a1", "b2", sealed("b2", 30n))
      yield* ledger.transfer("poster", "elsewhere", 990n)
      yield* TestClock.adjust("1 second")
      yield* auctions.reveal("a1", "b1", 40n, "s-b1")
      yield* auctions.reveal("a1", "b2", 30n, "s-b2")
      yield* TestClock.adjust("1 second")
      expect(yield* auctions.resolve("a1")).toMatchObject({ status: "failed", failure: "leaseUnfunded", winner: "b2" })
      expect(yield* ledger.balance("poster")).toMatchObject({ available: 10n, held: 0n })
      expect([yield* available("b1"), yield* available("b2")]).toEqual([100n, 100n])
    }).pipe(Effect.provide(auctionsOn())))

  it.live("the settlement policy finishes a bid whose deposit was never captured and a resolution a crash left unsettled", () =>
    Effect.gen(function*() {
      const auctions = yield* Auctions
      const ledger = yield* Ledger
      yield* fund({ poster: 1_000n, b1: 100n, b2: 100n })
      yield* auctions.open({ ...terms, commitPeriodMs: 200, revealPeriodMs: 200 })
      yield* auctions.commit("a1", "b1", sealed("b1", 40n))
      // b2's bid stopped after the decision: deposit held, never captured into escrow.
      yield* ledger.hold("b2", depositHoldIdOf("a1", "b2"), 10n)
      yield* (yield* anotherRunner(TaskAuction)).send("a1", {
        _tag: "Commit",
        bidder: "b2",
        commitment: sealed("b2", 30n)
      }, { commandId: "auction/a1/commit/b2" })
      yield* Effect.sleep("220 millis")
      yield* auctions.reveal("a1", "b1", 40n, "s-b1")
      yield* auctions.reveal("a1", "b2", 30n, "s-b2")
      yield* Effect.sleep("220 millis")
      // The resolution is decided, but nothing of its settlement happened.
      yield* (yield* anotherRunner(TaskAuction)).send("a1", { _tag: "Resolve" }, { commandId: "auction/a1/resolve" })
      yield* Policy.awaitCaughtUp("auction.settlement").pipe(Effect.provide(auctionSettlementPolicy))
      expect([yield* available("b1"), yield* available("b2"), yield* available(escrowAccountOf("a1"))]).toEqual([
        100n,
        100n,
        0n
      ])
      expect(yield* ledger.balance("poster")).toMatchObject({ available: 960n, held: 40n })
      expect(yield* ledger.supply()).toMatchObject({ inFlight: 0n, conserved: true })
    }).pipe(Effect.provide(auctionsOn())))
})

describe("Auctions properties", () => {
  const bidArbitrary = fc.record({
    price: fc.bigInt({ min: 1n, max: 120n }),
    reveal: fc.constantFrom("right", "right", "wrong", "none")
  })

  it.live(
    "any history: the winner is paid the second-lowest revealed price, rUv is conserved, replay equals live",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(bidArbitrary, { minLength: 0, maxLength: 6 }),
            fc.integer({ min: 1, max: 3 }),
            fc.boolean(),
            (bids, minBids, accept) =>
              Effect.runPromise(
                Effect.gen(function*() {
                  const auctions = yield* Auctions
                  const ledger = yield* Ledger
                  const bidders = bids.map((_, i) => `node-${i}`)
                  yield* fund({ poster: 1_000n, ...Object.fromEntries(bidders.map((bidder) => [bidder, 50n])) })
                  yield* auctions.open({ ...terms, minBids })
                  yield* Effect.forEach(
                    bids,
                    (bid, i) => auctions.commit("a1", bidders[i]!, sealed(bidders[i]!, bid.price)),
                    { concurrency: 3 }
                  )
                  yield* TestClock.adjust("1 second")
                  const reveals = yield* Effect.forEach(bids, (bid, i) =>
                    bid.reveal === "none" ?
                      Effect.succeed(false)
                      : Effect.either(
                        auctions.reveal(
                          "a1",
                          bidders[i]!,
                          bid.reveal === "right" ? bid.price : bid.price + 1n,
                          `s-${bidders[i]}`
                        )
                      ).pipe(
                        Effect.map((outcome) => {
                          // A reveal that does not match its commitment is always rejected; a matching one only for a price above the maximum.
                          if (bid.reveal === "wrong") {
                            expect(Either.isLeft(outcome) && outcome.left._tag).toBe("CommitmentMismatch")
                          } else expect(Either.isRight(outcome)).toBe(bid.price <= terms.maxPrice)
                          return Either.isRight(outcome)
                        })
                      ), { concurrency: 3 })
                  yield* TestClock.adjust("1 second")
                  const resolved = yield* auctions.resolve("a1")
                  const shown = bids.map((bid, i) => ({ price: bid.price, i })).filter((_, i) => reveals[i])
                  const ranked = [...shown].sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : a.i - b.i))
                  if (ranked.length < minBids) {
                    expect(resolved.status).toBe("cancelled")
                  } else {
                    expect(resolved).toMatchObject({
                      status: "resolved",
                      winner: bidders[ranked[0]!.i],
                      price: (ranked[1] ?? ranked[0]!).price
                    })
                    const settled = accept
                      ? yield* auctions.complete("a1", "poster")
                      : yield* auctions.fail("a1", "poster", "incorrectResult")
                    expect(settled.status).toBe(accept ? "completed" : "failed")
                  }
                  const winnerPay = resolved.status === "resolved" && accept ? resolved.price! : 0n
                  expect(yield* available("poster")).toBe(1_000n - winnerPay)
                  expect(yield* available("treasury")).toBe(10n * BigInt(bids.length - shown.length))
                  for (const [i, bidder] of bidders.entries()) {
                    const refund = reveals[i] ? 10n : 0n
                    const won = resolved.winner === bidder ? winnerPay : 0n
                    expect(yield* available(bidder)).toBe(40n + refund + won)
                  }
                  expect(yield* ledger.supply()).toMatchObject({ inFlight: 0n, held: 0n, conserved: true })
                  expect(yield* replayMismatches(TaskAuction.category)).toEqual([])
                  expect(yield* replayMismatches("Account")).toEqual([])
                }).pipe(Effect.provide(auctionsOn()), Effect.provide(TestContext.TestContext))
              )
          ),
          { numRuns: 40 }
        )
      ),
    60_000
  )
})
