/**
 * Uniswap v2's constant-product arithmetic in bigint: the router's getAmountOut / getAmountIn / quote,
 * the pair's fee-adjusted k check, and the share math of mint and burn. Pure functions, no services.
 */
import { Either, Schema } from "effect"
import { InvalidAmount } from "../economy/LedgerErrors.js"

/** Fees are in basis points: Uniswap's 997/1000 is 9970/10000 here (feeBps = 30). */
export const BPS = 10_000n
/** Shares locked forever by the first deposit, as UniswapV2Pair locks 1000 units at address 0. */
export const MINIMUM_LIQUIDITY = 1_000n

export const Reserves = Schema.Struct({ compute: Schema.BigInt, ruv: Schema.BigInt })
export type Reserves = typeof Reserves.Type

/** What a low-level swap puts in and takes out of each side of the pool. */
export interface SwapAmounts {
  readonly computeIn: bigint
  readonly ruvIn: bigint
  readonly computeOut: bigint
  readonly ruvOut: bigint
}

export class InsufficientLiquidity extends Schema.TaggedError<InsufficientLiquidity>()("InsufficientLiquidity", {
  side: Schema.Literal("compute", "ruv"),
  requested: Schema.BigInt,
  reserve: Schema.BigInt
}) {
  override get message() {
    return `insufficient liquidity: ${this.requested} ${
      this.side === "ruv" ? "rUv" : "compute units"
    } requested, the pool holds ${this.reserve}`
  }
}

export class KInvariantViolated extends Schema.TaggedError<KInvariantViolated>()("KInvariantViolated", {
  /** reserveCompute * reserveRuv * 10000^2 before the swap. */
  required: Schema.BigInt,
  /** balanceComputeAdjusted * balanceRuvAdjusted after it. */
  adjusted: Schema.BigInt
}) {
  override get message() {
    return `swap refused (UniswapV2: K): the fee-adjusted product ${this.adjusted} is below ${this.required}`
  }
}

export type SwapError = InvalidAmount | InsufficientLiquidity | KInvariantViolated

const positive = (value: bigint, what: string) => {
  if (value <= 0n) throw new RangeError(`${what} must be positive, got ${value}`)
}

/**
 * Output for an exact input (UniswapV2Library.getAmountOut): floor(in*(10000-fee)*rOut / (rIn*10000 +
 * in*(10000-fee))). Preconditions as the library's `require`s: a positive input and positive reserves.
 */
export const getAmountOut = (amountIn: bigint, reserveIn: bigint, reserveOut: bigint, feeBps: bigint): bigint => {
  positive(amountIn, "amountIn")
  positive(reserveIn, "reserveIn")
  positive(reserveOut, "reserveOut")
  const inWithFee = amountIn * (BPS - feeBps)
  return (inWithFee * reserveOut) / (reserveIn * BPS + inWithFee)
}

/** Input needed for an exact output (UniswapV2Library.getAmountIn): rounded up, by the library's + 1. */
export const getAmountIn = (amountOut: bigint, reserveIn: bigint, reserveOut: bigint, feeBps: bigint): bigint => {
  positive(amountOut, "amountOut")
  positive(reserveIn, "reserveIn")
  positive(reserveOut, "reserveOut")
  if (amountOut >= reserveOut) throw new RangeError(`amountOut ${amountOut} must be below the reserve ${reserveOut}`)
  return (reserveIn * amountOut * BPS) / ((reserveOut - amountOut) * (BPS - feeBps)) + 1n
}

/** The other side's amount at the pool's current ratio (UniswapV2Library.quote), rounded down. */
export const quote = (amountA: bigint, reserveA: bigint, reserveB: bigint): bigint => {
  positive(amountA, "amountA")
  positive(reserveA, "reserveA")
  positive(reserveB, "reserveB")
  return (amountA * reserveB) / reserveA
}

/**
 * The pair's `swap` check, exactly as UniswapV2Pair: something out, less than each reserve, something
 * in, and balance0Adjusted * balance1Adjusted >= reserve0 * reserve1 * 10000^2 with balanceAdjusted =
 * balance * 10000 - amountIn * fee. Returns the reserves after the swap.
 */
export const swap = (reserves: Reserves, amounts: SwapAmounts, feeBps: bigint): Either.Either<Reserves, SwapError> => {
  const { computeIn, ruvIn, computeOut, ruvOut } = amounts
  for (const [name, value] of Object.entries(amounts)) {
    if (value < 0n) return Either.left(new InvalidAmount({ amount: value, reason: `${name} must not be negative` }))
  }
  if (computeOut === 0n && ruvOut === 0n) {
    return Either.left(new InvalidAmount({ amount: 0n, reason: "a swap must take something out" }))
  }
  if (computeOut >= reserves.compute) {
    return Either.left(new InsufficientLiquidity({ side: "compute", requested: computeOut, reserve: reserves.compute }))
  }
  if (ruvOut >= reserves.ruv) {
    return Either.left(new InsufficientLiquidity({ side: "ruv", requested: ruvOut, reserve: reserves.ruv }))
  }
  const balanceCompute = reserves.compute + computeIn - computeOut
  const balanceRuv = reserves.ruv + ruvIn - ruvOut
  // The pair derives what came in from its balances; here the balances come from what came in.
  const amountComputeIn = balanceCompute > reserves.compute - computeOut
    ? balanceCompute - (reserves.compute - computeOut)
    : 0n
  const amountRuvIn = balanceRuv > reserves.ruv - ruvOut ? balanceRuv - (reserves.ruv - ruvOut) : 0n
  if (amountComputeIn === 0n && amountRuvIn === 0n) {
    return Either.left(new InvalidAmount({ amount: 0n, reason: "a swap must put something in" }))
  }
  const adjusted = (balanceCompute * BPS - amountComputeIn * feeBps) * (balanceRuv * BPS - amountRuvIn * feeBps)
  const required = reserves.compute * reserves.ruv * BPS * BPS
  if (adjusted < required) return Either.left(new KInvariantViolated({ required, adjusted }))
  return Either.right({ compute: balanceCompute, ruv: balanceRuv })
}

/** floor(sqrt(value)) by Newton's method (UniswapV2's Math.sqrt). */
export const sqrt = (value: bigint): bigint => {
  if (value < 0n) throw new RangeError("sqrt of a negative number")
  if (value < 4n) return value === 0n ? 0n : 1n
  let x = value
  let y = value / 2n + 1n
  while (y < x) {
    x = y
    y = (value / y + y) / 2n
  }
  return x
}

/** ceil(numerator / denominator) for a positive denominator and a numerator of either sign. */
export const ceilDiv = (numerator: bigint, denominator: bigint): bigint =>
  numerator >= 0n ? (numerator + denominator - 1n) / denominator : -(-numerator / denominator)

/** Shares for a deposit (UniswapV2Pair.mint): sqrt(c*r) - MINIMUM_LIQUIDITY first, then the smaller pro-rata share. */
export const sharesForDeposit = (reserves: Reserves, totalShares: bigint, compute: bigint, ruv: bigint): bigint =>
  totalShares === 0n
    ? sqrt(compute * ruv) - MINIMUM_LIQUIDITY
    : [(compute * totalShares) / reserves.compute, (ruv * totalShares) / reserves.ruv].reduce((a, b) => (a < b ? a : b))

/** What burning shares pays out (UniswapV2Pair.burn): each side pro rata, rounded down. */
export const amountsForShares = (reserves: Reserves, totalShares: bigint, shares: bigint): Reserves => ({
  compute: (shares * reserves.compute) / totalShares,
  ruv: (shares * reserves.ruv) / totalShares
})

export const productOf = (reserves: Reserves): bigint => reserves.compute * reserves.ruv
