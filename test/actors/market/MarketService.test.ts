import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fc from "fast-check"
import { Ledger } from "../../../src/actors/economy/Ledger.js"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { getAmountIn, getAmountOut, MINIMUM_LIQUIDITY } from "../../../src/actors/market/AmmMath.js"
import { MarketReputation } from "../../../src/actors/market/BondingCurve.js"
import { POOL_ACCOUNT, POOL_ID } from "../../../src/actors/market/ComputeAmm.js"
import { ComputePool } from "../../../src/actors/market/ComputeAmm.js"
import { Market, orderCommandId, orderHoldId, settlementPolicy } from "../../../src/actors/market/MarketService.js"
import * as Policy from "../../../src/events/Policy.js"
import { anotherRunner, replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"

const marketOn = (
  kernel: Layer.Layer<any, any, never>,
  extra: Layer.Layer<any, never, never> = Layer.empty as Layer.Layer<any, never, never>
) =>
  Market.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(Ledger.Default, NetworkParameters.Default, extra)),
    Layer.provideMerge(kernel)
  )

const fee = { feeBps: 30n, parametersVersion: 0 }

/** lp provides 100_000 compute units and 400_000 rUv; alice has 100_000 rUv. */
const seed = Effect.gen(function*() {
  const market = yield* Market
  const ledger = yield* Ledger
  yield* ledger.mint("lp", 1_000_000n)
  yield* ledger.mint("alice", 100_000n)
  yield* market.issueCompute("lp", 500_000n, "lp-capacity")
  return yield* market.addLiquidity("lp", { computeDesired: 100_000n, ruvDesired: 400_000n }, "seed")
})

const poolMatchesLedger = Effect.gen(function*() {
  const market = yield* Market
  const ledger = yield* Ledger
  const pool = yield* market.state()
  const account = yield* ledger.balance(POOL_ACCOUNT)
  expect(account.available).toBe(pool.ruv)
  expect(account.held).toBe(0n)
})

describe("Market", () => {
  it.effect("buys and sells through the ledger; pool:compute holds exactly the pool's rUv; the fee in force is recorded", () =>
    Effect.gen(function*() {
      const market = yield* Market
      const ledger = yield* Ledger
      const seeded = yield* seed
      expect(seeded).toMatchObject({
        compute: 100_000n,
        ruv: 400_000n,
        shares: 200_000n - MINIMUM_LIQUIDITY,
        totalShares: 200_000n,
        settled: true
      })

      const bought = yield* market.buy("alice", { exact: "in", amountIn: 10_000n, minAmountOut: 0n }, "buy-1")
      expect(bought).toMatchObject({
        side: "buy",
        amountIn: 10_000n,
        amountOut: getAmountOut(10_000n, 400_000n, 100_000n, 30n),
        feeBps: 30n,
        settled: true
      })
      expect(yield* ledger.balance("alice")).toMatchObject({ available: 90_000n, held: 0n })
      expect((yield* market.account("alice")).compute).toBe(bought.amountOut)
      yield* poolMatchesLedger

      const sold = yield* market.sell("alice", { exact: "in", amountIn: 1_000n, minAmountOut: 1n }, "sell-1")
      expect((yield* ledger.balance("alice")).available).toBe(90_000n + sold.amountOut)
      yield* poolMatchesLedger

      yield* (yield* NetworkParameters).set("feeBps", 50n, { proposalId: "p1" })
      const dearer = yield* market.buy("alice", { exact: "out", amountOut: 500n, maxAmountIn: 10_000n }, "buy-2")
      const pool = yield* (yield* anotherRunner(ComputePool)).state(POOL_ID)
      expect(dearer).toMatchObject({ feeBps: 50n, parametersVersion: 1, amountOut: 500n })
      expect(dearer.amountIn).toBeGreaterThan(
        getAmountIn(500n, pool.state.ruv - dearer.amountIn, pool.state.compute + 500n, 30n)
      )
      // The hold was for 10_000; only what the swap took was captured.
      expect(yield* ledger.balance("alice")).toMatchObject({
        available: 90_000n + sold.amountOut - dearer.amountIn,
        held: 0n
      })
      yield* poolMatchesLedger
      expect(yield* ledger.supply()).toMatchObject({ minted: 1_100_000n, inFlight: 0n, conserved: true })
    }).pipe(Effect.provide(marketOn(memoryKernel()))))

  it.effect("a refused buy releases its hold; an order id is decided once", () =>
    Effect.gen(function*() {
      const market = yield* Market
      const ledger = yield* Ledger
      yield* seed
      const out = getAmountOut(10_000n, 400_000n, 100_000n, 30n)
      const refused = yield* Effect.flip(
        market.buy("alice", { exact: "in", amountIn: 10_000n, minAmountOut: out + 1n }, "o-1")
      )
      expect(refused.message).toBe(`slippage: ${out} compute units out, at least ${out + 1n} required`)
      expect(yield* ledger.balance("alice")).toMatchObject({ available: 100_000n, held: 0n })
      // The same order id again: the pool already decided it (refused); nothing is held or bought.
      expect(
        (yield* Effect.flip(market.buy("alice", { exact: "in", amountIn: 10_000n, minAmountOut: 0n }, "o-1")))._tag
      ).toBe("SlippageExceeded")
      const first = yield* market.buy("alice", { exact: "in", amountIn: 10_000n, minAmountOut: out }, "o-2")
      const again = yield* market.buy("alice", { exact: "in", amountIn: 10_000n, minAmountOut: out }, "o-2")
      expect([first.duplicate, again.duplicate, again.amountOut]).toEqual([false, true, out])
      expect(yield* ledger.balance("alice")).toMatchObject({ available: 90_000n, held: 0n })
      expect(
        (yield* Effect.flip(market.buy("alice", { exact: "in", amountIn: 10_001n, minAmountOut: 0n }, "o-2")))._tag
      ).toBe("InvalidAmount")
      const poor = yield* Effect.flip(market.buy("alice", { exact: "in", amountIn: 1_000_000n, minAmountOut: 0n }))
      expect(poor._tag).toBe("InsufficientFunds")
      yield* poolMatchesLedger
    }).pipe(Effect.provide(marketOn(memoryKernel()))))

  it.live("the settlement policy finishes buys and sales a crash left after the pool's decision", () =>
    Effect.gen(function*() {
      const market = yield* Market
      const ledger = yield* Ledger
      yield* seed
      // A buy that stopped after the decision: held, decided, never captured.
      yield* ledger.hold("alice", orderHoldId("crash-buy"), 5_000n)
      const crashed = yield* anotherRunner(ComputePool)
      const decided = yield* crashed.send(POOL_ID, {
        _tag: "Buy",
        orderId: "crash-buy",
        trader: "alice",
        trade: { exact: "in", amountIn: 5_000n, minAmountOut: 0n },
        fee
      }, { commandId: orderCommandId("crash-buy") })
      // A sale that stopped before its payout.
      yield* crashed.send(POOL_ID, {
        _tag: "Sell",
        orderId: "crash-sell",
        trader: "lp",
        trade: { exact: "in", amountIn: 1_000n, minAmountOut: 0n },
        fee
      }, { commandId: orderCommandId("crash-sell") })
      expect((yield* ledger.balance(POOL_ACCOUNT)).available).not.toBe((yield* market.state()).ruv)
      yield* Policy.awaitCaughtUp("market.settlement").pipe(Effect.provide(settlementPolicy))
      expect(yield* ledger.balance("alice")).toMatchObject({ available: 95_000n, held: 0n })
      expect((yield* market.account("alice")).compute).toBe(decided.state.balances["alice"])
      yield* poolMatchesLedger
      expect((yield* ledger.supply()).conserved).toBe(true)
    }).pipe(Effect.provide(marketOn(memoryKernel()))))

  it.effect("a buy held but never decided completes on retry, or is cancelled and its rUv returned", () =>
    Effect.gen(function*() {
      const market = yield* Market
      const ledger = yield* Ledger
      yield* seed
      yield* ledger.hold("alice", orderHoldId("half"), 2_000n)
      const retried = yield* market.buy("alice", { exact: "in", amountIn: 2_000n, minAmountOut: 0n }, "half")
      expect(retried.amountOut).toBeGreaterThan(0n)
      yield* ledger.hold("alice", orderHoldId("stuck"), 3_000n)
      const cancelled = yield* market.cancel("stuck", "alice", "buy")
      expect(cancelled).toMatchObject({ _tag: "OrderRefused", error: { _tag: "OrderCancelled" } })
      expect(yield* ledger.balance("alice")).toMatchObject({ available: 98_000n, held: 0n })
      expect(
        (yield* Effect.flip(market.buy("alice", { exact: "in", amountIn: 3_000n, minAmountOut: 0n }, "stuck")))._tag
      ).toBe("OrderCancelled")
      expect(yield* ledger.balance("alice")).toMatchObject({ available: 98_000n, held: 0n })
      yield* poolMatchesLedger
    }).pipe(Effect.provide(marketOn(memoryKernel()))))

  it.effect("removing liquidity pays compute units into the pool and rUv through the ledger", () =>
    Effect.gen(function*() {
      const market = yield* Market
      const ledger = yield* Ledger
      const seeded = yield* seed
      const removed = yield* market.removeLiquidity("lp", { shares: seeded.shares / 2n })
      expect(removed).toMatchObject({ compute: 49_750n, ruv: 199_000n, settled: true })
      expect((yield* ledger.balance("lp")).available).toBe(1_000_000n - 400_000n + 199_000n)
      expect((yield* market.account("lp")).compute).toBe(400_000n + 49_750n)
      expect((yield* Effect.flip(market.removeLiquidity("lp", { shares: seeded.shares })))._tag).toBe(
        "InsufficientShares"
      )
      yield* poolMatchesLedger
    }).pipe(Effect.provide(marketOn(memoryKernel()))))

  it.effect("utilization adjusts pricing liquidity and records k before and after", () =>
    Effect.gen(function*() {
      const market = yield* Market
      yield* seed
      const grown = yield* market.adjustLiquidity(900_000n, "tick-1")
      expect(grown.adjustment).toMatchObject({
        direction: "grow",
        kBefore: 400_000n * 100_000n,
        kAfter: 410_000n * 102_500n
      })
      expect(grown.pool).toMatchObject({
        compute: 100_000n,
        ruv: 400_000n,
        pricing: { compute: 102_500n, ruv: 410_000n }
      })
      expect((yield* market.adjustLiquidity(500_000n, "tick-2")).adjustment).toBeNull()
      const shrunk = yield* market.adjustLiquidity(100_000n, "tick-3")
      expect(shrunk.adjustment).toMatchObject({ direction: "shrink", kBefore: 410_000n * 102_500n })
      yield* poolMatchesLedger
    }).pipe(Effect.provide(marketOn(memoryKernel()))))

  it.effect("quotes on the reputation bonding curve: up to maxDiscountPpm off for a perfect score", () =>
    Effect.gen(function*() {
      const market = yield* Market
      yield* seed
      const base = yield* market.quote("buy", { exact: "out", amountOut: 1_000n, maxAmountIn: 1_000_000n })
      const trusted = yield* market.quoteWithReputation("trusted", 1_000n)
      const average = yield* market.quoteWithReputation("average", 1_000n)
      expect(trusted).toMatchObject({
        basePrice: base.amountIn,
        reputationPpm: 1_000_000n,
        discountPpm: 200_000n,
        price: (base.amountIn * 800_000n + 999_999n) / 1_000_000n
      })
      expect(average).toMatchObject({
        reputationPpm: 500_000n,
        discountPpm: 100_000n,
        price: (base.amountIn * 900_000n + 999_999n) / 1_000_000n
      })
    }).pipe(Effect.provide(marketOn(
      memoryKernel(),
      Layer.succeed(MarketReputation, {
        reputationOf: (node) => Effect.succeed(node === "trusted" ? 1_000_000n : 500_000n)
      })
    ))))

  it.effect("without a reputation source everyone pays the pool's price", () =>
    Effect.gen(function*() {
      const market = yield* Market
      yield* seed
      const quote = yield* market.quoteWithReputation("anyone", 1_000n)
      expect(quote.price).toBe(quote.basePrice)
    }).pipe(Effect.provide(marketOn(memoryKernel()))))
})

type Op =
  | { readonly kind: "buy" | "sell" | "add" | "adjust"; readonly who: number; readonly amount: bigint }
  | { readonly kind: "remove"; readonly who: number; readonly amount: bigint }

const op: fc.Arbitrary<Op> = fc.record({
  kind: fc.constantFrom("buy", "buy", "sell", "sell", "add", "remove", "adjust"),
  who: fc.nat(3),
  amount: fc.bigInt({ min: 1n, max: 60_000n })
}) as fc.Arbitrary<Op>

describe("Market properties", () => {
  it.live(
    "concurrent trading: rUv conserved, no balance negative, pool:compute equals the pool's rUv, replay equals live",
    () => {
      const outcomes = new Map<string, number>()
      return Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(op, { minLength: 10, maxLength: 40 }), (ops) =>
            Effect.runPromise(
              Effect.gen(function*() {
                const market = yield* Market
                const ledger = yield* Ledger
                const nodes = ["n0", "n1", "n2", "n3"]
                yield* seed
                yield* Effect.forEach(
                  nodes,
                  (node) =>
                    Effect.zipRight(ledger.mint(node, 200_000n), market.issueCompute(node, 50_000n, `cap-${node}`))
                )
                const results = yield* Effect.forEach(ops, (operation, i) => {
                  const node = nodes[operation.who]!
                  const attempt: Effect.Effect<unknown, unknown> = (() => {
                    switch (operation.kind) {
                      case "buy":
                        return market.buy(
                          node,
                          { exact: "in", amountIn: operation.amount, minAmountOut: 0n },
                          `op-${i}`
                        )
                      case "sell":
                        return market.sell(node, {
                          exact: "in",
                          amountIn: operation.amount / 4n + 1n,
                          minAmountOut: 0n
                        }, `op-${i}`)
                      case "add":
                        return market.addLiquidity(node, {
                          computeDesired: operation.amount / 4n + 1n,
                          ruvDesired: operation.amount
                        }, `op-${i}`)
                      case "remove": {
                        const provider = operation.who === 0 ? "lp" : node
                        return Effect.flatMap(
                          market.account(provider),
                          (holder) => market.removeLiquidity(provider, { shares: holder.shares / 4n + 1n }, `op-${i}`)
                        )
                      }
                      case "adjust":
                        return market.adjustLiquidity(BigInt(operation.amount) * 1_000_000n / 60_000n, `op-${i}`)
                    }
                  })() as Effect.Effect<unknown, unknown>
                  return Effect.either(attempt)
                }, { concurrency: 4 })
                results.forEach((result, i) => {
                  const key = `${ops[i]!.kind}:${
                    result._tag === "Right" ? "ok" : (result.left as { _tag: string })._tag
                  }`
                  outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
                })
                yield* Policy.awaitCaughtUp("market.settlement")
                for (const node of [...nodes, "lp", "alice", POOL_ACCOUNT]) {
                  const balance = yield* ledger.balance(node)
                  expect(balance.available).toBeGreaterThanOrEqual(0n)
                  expect(balance.held).toBe(0n)
                }
                const { state } = yield* (yield* anotherRunner(ComputePool)).state(POOL_ID)
                for (const value of [...Object.values(state.balances), ...Object.values(state.shares)]) {
                  expect(value).toBeGreaterThanOrEqual(0n)
                }
                yield* poolMatchesLedger
                expect(yield* ledger.supply()).toMatchObject({
                  minted: 1_100_000n + 800_000n,
                  inFlight: 0n,
                  held: 0n,
                  conserved: true
                })
                expect(yield* replayMismatches(ComputePool.category)).toEqual([])
                expect(yield* replayMismatches("Account")).toEqual([])
              }).pipe(
                Effect.provide(settlementPolicy.pipe(Layer.provideMerge(marketOn(memoryKernel())))),
                Effect.scoped
              )
            )),
          { numRuns: 20 }
        )
      ).pipe(Effect.tap(() => {
        // Most operations succeed: the property is about trading, not about refusals.
        for (const kind of ["buy", "sell", "add", "remove", "adjust"]) {
          expect(outcomes.get(`${kind}:ok`) ?? 0).toBeGreaterThan(3)
        }
      }))
    },
    60_000
  )
})
