import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, TestClock, TestContext } from "effect"
import * as fc from "fast-check"
import type { AuctionEvent } from "../../../src/actors/market/TaskAuction.js"
import {
  AuctionCancelled,
  AuctionOpened,
  AuctionResolved,
  BidCommitted,
  BidRevealed,
  commitmentOf,
  LeaseCompleted,
  LeaseFailed,
  TaskAuction
} from "../../../src/actors/market/TaskAuction.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"

const spec = DeciderSpecification.for(TaskAuction.decider)
const at = (millis: number) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.zipRight(TestClock.setTime(millis), effect)

const opened = AuctionOpened.make({
  auctionId: "a1",
  poster: "poster",
  task: { kind: "inference", model: "tiny-lm" },
  maxPrice: 100n,
  minBids: 2,
  commitDeadline: 1_000,
  revealDeadline: 2_000,
  leaseDeadline: 3_000,
  bidDepositRuv: 10n,
  parametersVersion: 3,
  at: 0
})
const sealed = (bidder: string, price: bigint, salt = `salt-${bidder}`) =>
  commitmentOf({ auctionId: "a1", bidder, price, salt })
const committed = (bidder: string, price: bigint, sequence: number) =>
  BidCommitted.make({ bidder, commitment: sealed(bidder, price), deposit: 10n, sequence, at: 100 + sequence })
const revealed = (bidder: string, price: bigint) =>
  BidRevealed.make({ bidder, price, salt: `salt-${bidder}`, at: 1_500 })
const record = (bidder: string, price: bigint, sequence: number, shown: boolean) => ({
  bidder,
  commitment: sealed(bidder, price),
  deposit: 10n,
  sequence,
  committedAt: 100 + sequence,
  price: shown ? price : null,
  salt: shown ? `salt-${bidder}` : null,
  revealedAt: shown ? 1_500 : null,
  outcome: shown ? "refunded" as const : "forfeited" as const
})
const parameters = { bidDepositRuv: 10n, parametersVersion: 3, minBids: 2, maxPrice: 100n }

describe("TaskAuction decider", () => {
  it.effect("opens with deadlines from the clock and the deposit in force", () =>
    spec.given([]).when({
      _tag: "Open",
      auctionId: "a1",
      poster: "poster",
      task: opened.task,
      maxPrice: 100n,
      minBids: 2,
      commitPeriodMs: 1_000,
      revealPeriodMs: 1_000,
      leasePeriodMs: 1_000,
      bidDepositRuv: 10n,
      parametersVersion: 3
    }).then([opened]))

  it.effect("a sealed bid before the commit deadline is recorded with its deposit", () =>
    spec.given([opened]).when({ _tag: "Commit", bidder: "b1", commitment: sealed("b1", 40n) })
      .then([BidCommitted.make({ bidder: "b1", commitment: sealed("b1", 40n), deposit: 10n, sequence: 0, at: 999 })])
      .pipe(at(999)))

  it.effect("a commit at or after the commit deadline is refused", () =>
    spec.given([opened]).when({ _tag: "Commit", bidder: "b1", commitment: sealed("b1", 40n) })
      .thenFails((error) => error._tag === "OutsideWindow" && error.action === "commit").pipe(at(1_000)))

  it.effect("the poster cannot bid, and nobody bids twice", () =>
    Effect.all([
      spec.given([opened]).when({ _tag: "Commit", bidder: "poster", commitment: sealed("poster", 1n) }).thenFails((
        error
      ) => error._tag === "NotPermitted"),
      spec.given([opened, committed("b1", 40n, 0)]).when({
        _tag: "Commit",
        bidder: "b1",
        commitment: sealed("b1", 30n)
      }).thenFails((error) => error._tag === "BidRefused")
    ]).pipe(at(10)))

  it.effect("a reveal before the commit deadline is refused", () =>
    spec.given([opened, committed("b1", 40n, 0)]).when({ _tag: "Reveal", bidder: "b1", price: 40n, salt: "salt-b1" })
      .thenFails((error) => error._tag === "OutsideWindow" && error.action === "reveal").pipe(at(999)))

  it.effect("a reveal after the reveal deadline is refused", () =>
    spec.given([opened, committed("b1", 40n, 0)]).when({ _tag: "Reveal", bidder: "b1", price: 40n, salt: "salt-b1" })
      .thenFails((error) => error._tag === "OutsideWindow").pipe(at(2_000)))

  it.effect("a reveal that matches its commitment is recorded; one that does not is rejected", () =>
    Effect.all([
      spec.given([opened, committed("b1", 40n, 0)]).when({ _tag: "Reveal", bidder: "b1", price: 40n, salt: "salt-b1" })
        .then([revealed("b1", 40n)]),
      spec.given([opened, committed("b1", 40n, 0)]).when({ _tag: "Reveal", bidder: "b1", price: 39n, salt: "salt-b1" })
        .thenFails((error) => error._tag === "CommitmentMismatch" && error.message.startsWith("reveal of b1 rejected")),
      spec.given([opened, committed("b1", 400n, 0)]).when({
        _tag: "Reveal",
        bidder: "b1",
        price: 400n,
        salt: "salt-b1"
      })
        .thenFails((error) =>
          error._tag === "BidRefused" && error.message === "bid of b1 refused: the price 400 is outside 1..100 rUv"
        )
    ]).pipe(at(1_500)))

  it.effect("resolving before the reveal deadline is refused", () =>
    spec.given([opened, committed("b1", 40n, 0), committed("b2", 50n, 1), revealed("b1", 40n), revealed("b2", 50n)])
      .when({ _tag: "Resolve" }).thenFails((error) => error._tag === "OutsideWindow" && error.action === "resolve")
      .pipe(at(1_999)))

  it.effect("too few revealed bids cancel the auction: revealed deposits refunded, unrevealed forfeited", () =>
    spec.given([opened, committed("b1", 40n, 0), committed("b2", 50n, 1), revealed("b1", 40n)]).when({
      _tag: "Resolve"
    })
      .then([AuctionCancelled.make({
        reason: "1 revealed bids, 2 required",
        revealed: 1,
        bids: [record("b1", 40n, 0, true), record("b2", 50n, 1, false)],
        refunded: 10n,
        forfeited: 10n,
        parameters,
        at: 2_000
      })]).pipe(at(2_000)))

  it.effect("the lowest revealed price wins and is paid the second-lowest; unrevealed deposits are forfeited", () =>
    spec.given([
      opened,
      committed("b1", 40n, 0),
      committed("b2", 25n, 1),
      committed("b3", 60n, 2),
      committed("b4", 10n, 3),
      revealed("b1", 40n),
      revealed("b2", 25n),
      revealed("b3", 60n)
    ]).when({ _tag: "Resolve" }).then([AuctionResolved.make({
      winner: "b2",
      price: 40n,
      bids: [
        record("b1", 40n, 0, true),
        record("b2", 25n, 1, true),
        record("b3", 60n, 2, true),
        record("b4", 10n, 3, false)
      ],
      refunded: 30n,
      forfeited: 10n,
      parameters,
      at: 2_500
    })]).pipe(at(2_500)))

  it.effect("a single revealed bid with minBids 1 is paid its own price", () =>
    spec.given([{ ...opened, minBids: 1 }, committed("b1", 40n, 0), revealed("b1", 40n)]).when({ _tag: "Resolve" })
      .outcome.pipe(
        Effect.map((outcome) =>
          expect(Either.getOrThrow(outcome)[0]).toMatchObject({ _tag: "AuctionResolved", winner: "b1", price: 40n })
        ),
        at(2_000)
      ))

  const resolved: ReadonlyArray<AuctionEvent> = [
    opened,
    committed("b1", 40n, 0),
    committed("b2", 50n, 1),
    revealed("b1", 40n),
    revealed("b2", 50n),
    AuctionResolved.make({
      winner: "b1",
      price: 50n,
      bids: [record("b1", 40n, 0, true), record("b2", 50n, 1, true)],
      refunded: 20n,
      forfeited: 0n,
      parameters,
      at: 2_000
    })
  ]

  it.effect("only the poster completes the lease", () =>
    Effect.all([
      spec.given(resolved).when({ _tag: "Complete", by: "b1" }).thenFails((error) => error._tag === "NotPermitted"),
      spec.given(resolved).when({ _tag: "Complete", by: "poster" }).then([
        LeaseCompleted.make({ winner: "b1", price: 50n, by: "poster", at: 2_100 })
      ])
    ]).pipe(at(2_100)))

  it.effect("a timeout can be reported only after the lease deadline; the poster rejects a result at any time", () =>
    Effect.all([
      spec.given(resolved).when({ _tag: "Fail", by: "b2", reason: "challengeTimeout" }).thenFails((error) =>
        error._tag === "OutsideWindow"
      ).pipe(at(2_999)),
      spec.given(resolved).when({ _tag: "Fail", by: "b2", reason: "challengeTimeout" })
        .then([LeaseFailed.make({ winner: "b1", price: 50n, reason: "challengeTimeout", by: "b2", at: 3_000 })]).pipe(
          at(3_000)
        ),
      spec.given(resolved).when({ _tag: "Fail", by: "b2", reason: "incorrectResult" }).thenFails((error) =>
        error._tag === "NotPermitted"
      ),
      spec.given([...resolved, LeaseCompleted.make({ winner: "b1", price: 50n, by: "poster", at: 2_100 })])
        .when({ _tag: "Fail", by: "poster", reason: "incorrectResult" }).thenFails((error) =>
          error._tag === "AuctionClosed"
        )
    ]))
})

describe("TaskAuction properties", () => {
  const bidder = (i: number) => `node-${i}`

  it.effect("a revealed bid that does not match its commitment is always rejected", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.bigInt({ min: 1n, max: 100n }),
          fc.string(),
          fc.bigInt({ min: 1n, max: 100n }),
          fc.string(),
          (price, salt, otherPrice, otherSalt) => {
            fc.pre(price !== otherPrice || salt !== otherSalt)
            const commit = BidCommitted.make({
              bidder: "b1",
              commitment: commitmentOf({ auctionId: "a1", bidder: "b1", price, salt }),
              deposit: 10n,
              sequence: 0,
              at: 1
            })
            return Effect.runPromise(
              Effect.zipRight(
                TestClock.setTime(1_500),
                spec.given([opened, commit]).when({ _tag: "Reveal", bidder: "b1", price: otherPrice, salt: otherSalt })
                  .outcome
              ).pipe(
                Effect.map((outcome) => {
                  expect(Either.isLeft(outcome) && outcome.left._tag).toBe("CommitmentMismatch")
                }),
                Effect.provide(TestContext.TestContext)
              )
            )
          }
        ),
        { numRuns: 100 }
      )
    ))

  it.effect("the lowest revealed price wins (earliest commit on ties) and is paid the second-lowest revealed price", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ price: fc.bigInt({ min: 1n, max: 20n }), reveals: fc.boolean() }), {
            minLength: 1,
            maxLength: 10
          }),
          async (bids) => {
            const history: Array<AuctionEvent> = [{ ...opened, minBids: 1 }]
            bids.forEach((bid, i) =>
              history.push(
                BidCommitted.make({
                  bidder: bidder(i),
                  commitment: sealed(bidder(i), bid.price),
                  deposit: 10n,
                  sequence: i,
                  at: 10 + i
                })
              )
            )
            bids.forEach((bid, i) =>
              bid.reveals &&
              history.push(
                BidRevealed.make({ bidder: bidder(i), price: bid.price, salt: `salt-${bidder(i)}`, at: 1_500 })
              )
            )
            const outcome = await Effect.runPromise(
              Effect.zipRight(TestClock.setTime(2_000), spec.given(history).when({ _tag: "Resolve" }).outcome).pipe(
                Effect.provide(TestContext.TestContext)
              )
            )
            const events = Either.getOrThrow(outcome)
            const shown = bids.map((bid, i) => ({ ...bid, i })).filter((bid) => bid.reveals)
            if (shown.length === 0) {
              expect(events[0]!._tag).toBe("AuctionCancelled")
              return
            }
            const sorted = [...shown].sort((a, b) => (a.price < b.price ? -1 : a.price > b.price ? 1 : a.i - b.i))
            expect(events[0]).toMatchObject({
              _tag: "AuctionResolved",
              winner: bidder(sorted[0]!.i),
              price: (sorted[1] ?? sorted[0]!).price
            })
            const event = events[0] as typeof AuctionResolved.Type
            expect(event.refunded).toBe(10n * BigInt(shown.length))
            expect(event.forfeited).toBe(10n * BigInt(bids.length - shown.length))
          }
        ),
        { numRuns: 150 }
      )
    ))
})
