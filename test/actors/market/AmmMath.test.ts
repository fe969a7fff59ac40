import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import {
  amountsForShares,
  getAmountIn,
  getAmountOut,
  MINIMUM_LIQUIDITY,
  sharesForDeposit,
  sqrt,
  swap
} from "../../../src/actors/market/AmmMath.js"

const e18 = (n: number | bigint) => BigInt(n) * 10n ** 18n
const FEE = 30n

// UniswapV2Pair.spec.ts, `getInputPrice`: [swapAmount, reserve0, reserve1, expected output], 18 decimals.
const swapVectors: ReadonlyArray<readonly [bigint, bigint, bigint, bigint]> = [
  [e18(1), e18(5), e18(10), 1662497915624478906n],
  [e18(1), e18(10), e18(5), 453305446940074565n],
  [e18(2), e18(5), e18(10), 2851015155847869602n],
  [e18(2), e18(10), e18(5), 831248957812239453n],
  [e18(1), e18(10), e18(10), 906610893880149131n],
  [e18(1), e18(100), e18(100), 987158034397061298n],
  [e18(1), e18(1000), e18(1000), 996006981039903216n]
]

describe("Uniswap v2 arithmetic at 30 bps", () => {
  it("getAmountOut gives the published outputs exactly", () => {
    for (const [amountIn, reserveIn, reserveOut, expected] of swapVectors) {
      expect(getAmountOut(amountIn, reserveIn, reserveOut, FEE)).toBe(expected)
    }
  })

  it("the pair's k check accepts the published output and refuses one unit more", () => {
    for (const [amountIn, reserveCompute, reserveRuv, expected] of swapVectors) {
      const reserves = { compute: reserveCompute, ruv: reserveRuv }
      const accepted = swap(reserves, { computeIn: amountIn, ruvIn: 0n, computeOut: 0n, ruvOut: expected }, FEE)
      expect(accepted).toEqual(Either.right({ compute: reserveCompute + amountIn, ruv: reserveRuv - expected }))
      const refused = swap(reserves, { computeIn: amountIn, ruvIn: 0n, computeOut: 0n, ruvOut: expected + 1n }, FEE)
      expect(Either.isLeft(refused) && refused.left._tag).toBe("KInvariantViolated")
    }
  })

  it("swap:token1 of the published suite: rUv in, compute out", () => {
    const reserves = { compute: e18(5), ruv: e18(10) }
    expect(swap(reserves, { computeIn: 0n, ruvIn: e18(1), computeOut: 453305446940074565n, ruvOut: 0n }, FEE)).toEqual(
      Either.right({ compute: e18(5) - 453305446940074565n, ruv: e18(11) })
    )
  })

  it("optimistic (flash) swaps pay the fee on what comes back, as the published cases", () => {
    // [output, reserve0, reserve1, input], token 0 out and token 0 in.
    const cases: ReadonlyArray<readonly [bigint, bigint, bigint, bigint]> = [
      [997000000000000000n, e18(5), e18(10), e18(1)],
      [997000000000000000n, e18(10), e18(5), e18(1)],
      [997000000000000000n, e18(5), e18(5), e18(1)],
      [e18(1), e18(5), e18(5), 1003009027081243732n]
    ]
    for (const [output, compute, ruv, input] of cases) {
      const reserves = { compute, ruv }
      expect(Either.isRight(swap(reserves, { computeIn: input, ruvIn: 0n, computeOut: output, ruvOut: 0n }, FEE))).toBe(
        true
      )
      const refused = swap(reserves, { computeIn: input, ruvIn: 0n, computeOut: output + 1n, ruvOut: 0n }, FEE)
      expect(Either.isLeft(refused) && refused.left._tag).toBe("KInvariantViolated")
    }
  })

  it("getAmountIn is the library's rounded-up inverse", () => {
    expect(getAmountIn(1n, 100n, 100n, FEE)).toBe(2n)
    expect(getAmountOut(2n, 100n, 100n, FEE)).toBe(1n)
    for (const [amountIn, reserveIn, reserveOut, out] of swapVectors) {
      const needed = getAmountIn(out, reserveIn, reserveOut, FEE)
      expect(needed).toBeLessThanOrEqual(amountIn)
      expect(getAmountOut(needed, reserveIn, reserveOut, FEE)).toBeGreaterThanOrEqual(out)
      expect(getAmountOut(needed - 1n, reserveIn, reserveOut, FEE)).toBeLessThan(out)
    }
  })

  it("refuses swaps that take nothing out, put nothing in, or drain a reserve", () => {
    const reserves = { compute: 1000n, ruv: 1000n }
    const tag = (result: ReturnType<typeof swap>) => (Either.isLeft(result) ? result.left._tag : "ok")
    expect(tag(swap(reserves, { computeIn: 10n, ruvIn: 0n, computeOut: 0n, ruvOut: 0n }, FEE))).toBe("InvalidAmount")
    expect(tag(swap(reserves, { computeIn: 0n, ruvIn: 0n, computeOut: 0n, ruvOut: 5n }, FEE))).toBe("InvalidAmount")
    expect(tag(swap(reserves, { computeIn: 10n ** 9n, ruvIn: 0n, computeOut: 0n, ruvOut: 1000n }, FEE))).toBe(
      "InsufficientLiquidity"
    )
  })

  it("mint and burn: the published vectors, with 1000 shares locked by the first deposit", () => {
    expect(sharesForDeposit({ compute: 0n, ruv: 0n }, 0n, e18(1), e18(4))).toBe(e18(2) - MINIMUM_LIQUIDITY)
    // burn: 3/3 deposited, everything but the locked shares burned -> 3e18 - 1000 of each back.
    const total = e18(3)
    expect(amountsForShares({ compute: e18(3), ruv: e18(3) }, total, total - MINIMUM_LIQUIDITY)).toEqual({
      compute: e18(3) - 1000n,
      ruv: e18(3) - 1000n
    })
  })

  it("sqrt is the floor square root", () => {
    for (const value of [0n, 1n, 2n, 3n, 4n, 15n, 16n, 17n, e18(4), 2n ** 200n + 12345n]) {
      const root = sqrt(value)
      expect(root * root <= value && (root + 1n) * (root + 1n) > value).toBe(true)
    }
  })
})
