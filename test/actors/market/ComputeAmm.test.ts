import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fc from "fast-check"
import { getAmountIn, MINIMUM_LIQUIDITY, productOf } from "../../../src/actors/market/AmmMath.js"
import type { PoolCommand, PoolEvent, PoolState } from "../../../src/actors/market/ComputeAmm.js"
import {
  ComputeBought,
  ComputeIssued,
  ComputePool,
  ComputeSold,
  LiquidityAdded,
  LiquidityAdjusted,
  LiquidityRemoved,
  OrderCancelled,
  OrderRefused,
  pricingReserves,
  SlippageExceeded
} from "../../../src/actors/market/ComputeAmm.js"
import { fold } from "../../../src/events/Decider.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"

const spec = DeciderSpecification.for(ComputePool.decider)
const e18 = (n: number | bigint) => BigInt(n) * 10n ** 18n
const fee = { feeBps: 30n, parametersVersion: 0 }

// A pool of 5e18 compute units and 10e18 rUv, as in Uniswap's swap tests.
const seeded: ReadonlyArray<PoolEvent> = [
  ComputeIssued.make({ operationId: "i1", node: "lp", units: e18(6), at: 0 }),
  LiquidityAdded.make({
    orderId: "o1",
    provider: "lp",
    compute: e18(5),
    ruv: e18(10),
    shares: 7071067811865474244n,
    locked: MINIMUM_LIQUIDITY,
    totalShares: 7071067811865475244n,
    virtualCompute: 0n,
    virtualRuv: 0n,
    at: 0
  }),
  ComputeIssued.make({ operationId: "i2", node: "bob", units: e18(2), at: 0 })
]

describe("ComputePool decider", () => {
  it.effect("the first deposit mints sqrt(c*r) shares and locks 1000 of them", () =>
    spec.given([ComputeIssued.make({ operationId: "i1", node: "lp", units: e18(6), at: 0 })])
      .when({
        _tag: "AddLiquidity",
        orderId: "o1",
        provider: "lp",
        computeDesired: e18(5),
        ruvDesired: e18(10),
        computeMin: 0n,
        ruvMin: 0n
      })
      .then([seeded[1]!]))

  it.effect("buys compute with exact rUv in at the Uniswap price, recording the fee in force", () =>
    spec.given(seeded)
      .when({
        _tag: "Buy",
        orderId: "b1",
        trader: "alice",
        trade: { exact: "in", amountIn: e18(1), minAmountOut: 0n },
        fee: { feeBps: 30n, parametersVersion: 4 }
      })
      .then([ComputeBought.make({
        orderId: "b1",
        trader: "alice",
        ruvIn: e18(1),
        computeOut: 453305446940074565n,
        feeBps: 30n,
        parametersVersion: 4,
        reserves: { compute: e18(5) - 453305446940074565n, ruv: e18(11) },
        at: 0
      })]))

  it.effect("a buy below its minimum out is refused, and the refusal is recorded so its hold is released", () =>
    spec.given(seeded)
      .when({
        _tag: "Buy",
        orderId: "b1",
        trader: "alice",
        trade: { exact: "in", amountIn: e18(1), minAmountOut: 453305446940074566n },
        fee
      })
      .then([OrderRefused.make({
        orderId: "b1",
        account: "alice",
        order: "buy",
        at: 0,
        error: new SlippageExceeded({
          limit: "minOut",
          unit: "compute",
          bound: 453305446940074566n,
          actual: 453305446940074565n
        })
      })]))

  it.effect("an exact-out buy costs getAmountIn, and is refused above its maximum in", () =>
    Effect.gen(function*() {
      const needed = getAmountIn(e18(1), e18(10), e18(5), 30n)
      const bought = yield* spec.given(seeded)
        .when({
          _tag: "Buy",
          orderId: "b2",
          trader: "alice",
          trade: { exact: "out", amountOut: e18(1), maxAmountIn: needed },
          fee
        }).outcome
      expect(Either.getOrThrow(bought)[0]).toMatchObject({ _tag: "ComputeBought", ruvIn: needed, computeOut: e18(1) })
      const refused = yield* spec.given(seeded)
        .when({
          _tag: "Buy",
          orderId: "b3",
          trader: "alice",
          trade: { exact: "out", amountOut: e18(1), maxAmountIn: needed - 1n },
          fee
        }).outcome
      expect(Either.getOrThrow(refused)[0]).toMatchObject({
        _tag: "OrderRefused",
        error: { _tag: "SlippageExceeded", limit: "maxIn" }
      })
    }))

  it.effect("sells compute for rUv at the Uniswap price", () =>
    spec.given(seeded)
      .when({
        _tag: "Sell",
        orderId: "s1",
        trader: "bob",
        trade: { exact: "in", amountIn: e18(1), minAmountOut: 1662497915624478906n },
        fee
      })
      .then([ComputeSold.make({
        orderId: "s1",
        trader: "bob",
        computeIn: e18(1),
        ruvOut: 1662497915624478906n,
        ...fee,
        reserves: { compute: e18(6), ruv: e18(10) - 1662497915624478906n },
        at: 0
      })]))

  it.effect("cannot sell compute units it does not hold, or into an empty pool", () =>
    Effect.all([
      spec.given(seeded).when({
        _tag: "Sell",
        orderId: "s1",
        trader: "bob",
        trade: { exact: "in", amountIn: e18(3), minAmountOut: 0n },
        fee
      })
        .thenFails((error) =>
          error._tag === "InsufficientCompute" &&
          error.message === `insufficient compute units: ${e18(3)} requested, bob holds ${e18(2)}`
        ),
      spec.given([]).when({
        _tag: "Sell",
        orderId: "s1",
        trader: "bob",
        trade: { exact: "in", amountIn: 1n, minAmountOut: 0n },
        fee
      })
        .thenFails((error) => error._tag === "PoolEmpty")
    ]))

  it.effect("burning shares pays each side pro rata, rounded down", () =>
    spec.given(seeded)
      .when({
        _tag: "RemoveLiquidity",
        orderId: "r1",
        provider: "lp",
        shares: 7071067811865474244n,
        computeMin: 0n,
        ruvMin: 0n
      })
      .then([LiquidityRemoved.make({
        orderId: "r1",
        provider: "lp",
        shares: 7071067811865474244n,
        compute: e18(5) - 708n,
        ruv: e18(10) - 1415n,
        totalShares: MINIMUM_LIQUIDITY,
        virtualCompute: 0n,
        virtualRuv: 0n,
        at: 0
      })]))

  it.effect("high utilization grows both reserves by 2.5%, low shrinks them, recording k before and after", () =>
    Effect.all([
      spec.given(seeded).when({ _tag: "AdjustLiquidity", adjustmentId: "a1", utilizationPpm: 900_000n }).then([
        LiquidityAdjusted.make({
          adjustmentId: "a1",
          utilizationPpm: 900_000n,
          direction: "grow",
          ratePpm: 25_000n,
          growAbovePpm: 800_000n,
          shrinkBelowPpm: 200_000n,
          computeDelta: 125n * 10n ** 15n,
          ruvDelta: 250n * 10n ** 15n,
          before: { compute: e18(5), ruv: e18(10) },
          after: { compute: 5125n * 10n ** 15n, ruv: 10250n * 10n ** 15n },
          kBefore: e18(5) * e18(10),
          kAfter: 5125n * 10n ** 15n * 10250n * 10n ** 15n,
          at: 0
        })
      ]),
      spec.given(seeded).when({ _tag: "AdjustLiquidity", adjustmentId: "a2", utilizationPpm: 100_000n }).outcome.pipe(
        Effect.map((outcome) =>
          expect(Either.getOrThrow(outcome)[0]).toMatchObject({
            direction: "shrink",
            computeDelta: -(125n * 10n ** 15n),
            kAfter: 4875n * 10n ** 15n * 9750n * 10n ** 15n
          })
        )
      ),
      spec.given(seeded).when({ _tag: "AdjustLiquidity", adjustmentId: "a3", utilizationPpm: 500_000n }).thenNothing()
    ]))

  it.effect("a cancelled order is refused under its own command id", () =>
    spec.given(seeded).when({ _tag: "Cancel", orderId: "b9", account: "alice", order: "buy" })
      .then([
        OrderRefused.make({
          orderId: "b9",
          account: "alice",
          order: "buy",
          error: new OrderCancelled({ orderId: "b9" }),
          at: 0
        })
      ]))
})

// Random histories, decided and folded without a journal.
const trader = fc.constantFrom("t0", "t1", "t2")
const provider = fc.constantFrom("p0", "p1")
interface Operation {
  readonly kind: "buyIn" | "buyOut" | "sellIn" | "sellOut" | "add" | "remove" | "adjust"
  readonly who: string
  readonly amount: bigint
}
const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({ kind: fc.constant("buyIn" as const), who: trader, amount: fc.bigInt({ min: 1n, max: 10n ** 9n }) }),
  fc.record({ kind: fc.constant("buyOut" as const), who: trader, amount: fc.bigInt({ min: 1n, max: 10n ** 8n }) }),
  fc.record({ kind: fc.constant("sellIn" as const), who: trader, amount: fc.bigInt({ min: 1n, max: 10n ** 8n }) }),
  fc.record({ kind: fc.constant("sellOut" as const), who: trader, amount: fc.bigInt({ min: 1n, max: 10n ** 9n }) }),
  fc.record({ kind: fc.constant("add" as const), who: provider, amount: fc.bigInt({ min: 1n, max: 10n ** 9n }) }),
  fc.record({ kind: fc.constant("remove" as const), who: provider, amount: fc.bigInt({ min: 1n, max: 100n }) }),
  fc.record({
    kind: fc.constant("adjust" as const),
    who: fc.constant("-"),
    amount: fc.bigInt({ min: 0n, max: 1_000_000n })
  })
)

const commandFor = (state: PoolState, op: Operation, n: number): PoolCommand => {
  const orderId = `o${n}`
  switch (op.kind) {
    case "buyIn":
      return {
        _tag: "Buy",
        orderId,
        trader: op.who,
        trade: { exact: "in", amountIn: op.amount, minAmountOut: 0n },
        fee
      }
    case "buyOut":
      return {
        _tag: "Buy",
        orderId,
        trader: op.who,
        trade: { exact: "out", amountOut: op.amount, maxAmountIn: 10n ** 30n },
        fee
      }
    case "sellIn":
      return {
        _tag: "Sell",
        orderId,
        trader: op.who,
        trade: { exact: "in", amountIn: op.amount, minAmountOut: 0n },
        fee
      }
    case "sellOut":
      return {
        _tag: "Sell",
        orderId,
        trader: op.who,
        trade: { exact: "out", amountOut: op.amount, maxAmountIn: 10n ** 30n },
        fee
      }
    case "add":
      return {
        _tag: "AddLiquidity",
        orderId,
        provider: op.who,
        computeDesired: op.amount,
        ruvDesired: op.amount * 3n,
        computeMin: 0n,
        ruvMin: 0n
      }
    case "remove":
      return {
        _tag: "RemoveLiquidity",
        orderId,
        provider: op.who,
        shares: ((state.shares[op.who] ?? 0n) * op.amount) / 100n,
        computeMin: 0n,
        ruvMin: 0n
      }
    default:
      return { _tag: "AdjustLiquidity", adjustmentId: orderId, utilizationPpm: op.amount }
  }
}

const perShareHolds = (before: PoolState, after: PoolState) => {
  const [pb, pa] = [pricingReserves(before), pricingReserves(after)]
  return after.compute * before.totalShares >= before.compute * after.totalShares &&
    after.ruv * before.totalShares >= before.ruv * after.totalShares &&
    pa.compute * before.totalShares >= pb.compute * after.totalShares &&
    pa.ruv * before.totalShares >= pb.ruv * after.totalShares
}

describe("ComputePool properties", () => {
  it("k never falls except by a recorded shrink; liquidity per share never falls; no balance goes negative; compute units are conserved", () => {
    const genesis: ReadonlyArray<PoolEvent> = [
      ...["t0", "t1", "t2", "p0", "p1"].map((node, i) =>
        ComputeIssued.make({ operationId: `g${i}`, node, units: 10n ** 10n, at: 0 })
      ),
      LiquidityAdded.make({
        orderId: "g",
        provider: "p0",
        compute: 10n ** 9n,
        ruv: 3n * 10n ** 9n,
        shares: 1732050807n - MINIMUM_LIQUIDITY,
        locked: MINIMUM_LIQUIDITY,
        totalShares: 1732050807n,
        virtualCompute: 0n,
        virtualRuv: 0n,
        at: 0
      })
    ]
    const start = fold(ComputePool.decider.evolve, { ...ComputePool.decider.initialState }, genesis.slice(0, 5))
    const afterGenesis = ComputePool.decider.evolve(start, genesis[5]!)
    const decided = new Map<string, number>()
    fc.assert(
      fc.property(fc.array(operation, { minLength: 1, maxLength: 60 }), (ops) => {
        let state = afterGenesis
        ops.forEach((op, n) => {
          const outcome = Effect.runSync(Effect.either(ComputePool.decider.decide(commandFor(state, op, n), state)))
          if (Either.isLeft(outcome)) return
          for (const event of outcome.right) {
            decided.set(event._tag, (decided.get(event._tag) ?? 0) + 1)
            const next = ComputePool.decider.evolve(state, event)
            const [kBefore, kAfter] = [productOf(pricingReserves(state)), productOf(pricingReserves(next))]
            if (event._tag === "ComputeBought" || event._tag === "ComputeSold") {
              expect(kAfter).toBeGreaterThanOrEqual(kBefore)
            }
            if (event._tag === "LiquidityAdjusted") {
              expect([event.kBefore, event.kAfter]).toEqual([kBefore, kAfter])
              if (event.direction === "grow") expect(kAfter).toBeGreaterThan(kBefore)
            }
            if (event._tag === "LiquidityAdded" || event._tag === "LiquidityRemoved") {
              expect(perShareHolds(state, next)).toBe(true)
            }
            if (event._tag === "OrderRefused") expect(next).toBe(state)
            state = next
            expect(state.compute).toBeGreaterThan(0n)
            expect(state.ruv).toBeGreaterThan(0n)
            expect(pricingReserves(state).compute).toBeGreaterThan(0n)
            expect(pricingReserves(state).ruv).toBeGreaterThan(0n)
            for (const value of [...Object.values(state.balances), ...Object.values(state.shares)]) {
              expect(value).toBeGreaterThanOrEqual(0n)
            }
            const held = Object.values(state.balances).reduce((a, b) => a + b, 0n)
            expect(state.compute + held).toBe(state.issued)
            const shares = Object.values(state.shares).reduce((a, b) => a + b, 0n)
            expect(shares + MINIMUM_LIQUIDITY).toBe(state.totalShares)
          }
        })
      }),
      { numRuns: 300 }
    )
    // The histories exercise every kind of decision, not just refusals.
    for (const tag of ["ComputeBought", "ComputeSold", "LiquidityAdded", "LiquidityRemoved", "LiquidityAdjusted"]) {
      expect(decided.get(tag) ?? 0).toBeGreaterThan(20)
    }
  })
})
