/**
 * The compute market's pool (`Pool-compute`) as an event-sourced entity: compute units against rUv
 * with Uniswap v2 semantics (see AmmMath.ts), LP shares, traders' compute-unit balances, and the
 * utilization adjustment. rUv itself stays in the ledger account `pool:compute`; this entity decides.
 */
import { Clock, Effect, Either, Schema } from "effect"
import { Credits } from "../../domain/Money.js"
import type { EventSourced } from "../../events/Decider.js"
import { InvalidAmount } from "../economy/LedgerErrors.js"
import type { Reserves } from "./AmmMath.js"
import {
  amountsForShares,
  ceilDiv,
  getAmountIn,
  getAmountOut,
  InsufficientLiquidity,
  KInvariantViolated,
  MINIMUM_LIQUIDITY,
  productOf,
  quote,
  sharesForDeposit,
  swap
} from "./AmmMath.js"

export const POOL_ID = "compute"
/** The ledger account holding the pool's rUv. */
export const POOL_ACCOUNT = "pool:compute"
/** The seed's adjustment: above 80% utilization both reserves grow 2.5%, below 20% they shrink 2.5%. */
export const GROW_ABOVE_PPM = 800_000n
export const SHRINK_BELOW_PPM = 200_000n
export const ADJUST_RATE_PPM = 25_000n

const Amount = Schema.BigInt
const ReservesSchema = Schema.Struct({ compute: Amount, ruv: Amount })

// Errors a trader or provider can hit.
export class SlippageExceeded extends Schema.TaggedError<SlippageExceeded>()("SlippageExceeded", {
  limit: Schema.Literal("minOut", "maxIn"),
  unit: Schema.Literal("compute", "ruv"),
  bound: Amount,
  actual: Amount
}) {
  override get message() {
    const unit = this.unit === "ruv" ? "rUv" : "compute units"
    return this.limit === "minOut"
      ? `slippage: ${this.actual} ${unit} out, at least ${this.bound} required`
      : `slippage: ${this.actual} ${unit} in, at most ${this.bound} allowed`
  }
}

export class InsufficientCompute extends Schema.TaggedError<InsufficientCompute>()("InsufficientCompute", {
  node: Schema.String,
  available: Amount,
  requested: Amount
}) {
  override get message() {
    return `insufficient compute units: ${this.requested} requested, ${this.node} holds ${this.available}`
  }
}

export class InsufficientShares extends Schema.TaggedError<InsufficientShares>()("InsufficientShares", {
  node: Schema.String,
  available: Amount,
  requested: Amount
}) {
  override get message() {
    return `insufficient pool shares: ${this.requested} requested, ${this.node} holds ${this.available}`
  }
}

export class PoolEmpty extends Schema.TaggedError<PoolEmpty>()("PoolEmpty", {}) {
  override get message() {
    return "the compute pool has no liquidity yet"
  }
}

export class LiquidityTooSmall
  extends Schema.TaggedError<LiquidityTooSmall>()("LiquidityTooSmall", { reason: Schema.String })
{
  override get message() {
    return `liquidity too small: ${this.reason}`
  }
}

export class OrderCancelled extends Schema.TaggedError<OrderCancelled>()("OrderCancelled", { orderId: Schema.String }) {
  override get message() {
    return `order ${this.orderId} was cancelled before the pool decided it`
  }
}

export const PoolError = Schema.Union(
  InvalidAmount,
  InsufficientLiquidity,
  KInvariantViolated,
  SlippageExceeded,
  InsufficientCompute,
  InsufficientShares,
  PoolEmpty,
  LiquidityTooSmall,
  OrderCancelled
)
export type PoolError = typeof PoolError.Type

// Events. Every swap records the fee in force and the version of the market parameters it came from.
const feeFields = { feeBps: Amount, parametersVersion: Schema.Number }
export const ComputeIssued = Schema.TaggedStruct("ComputeIssued", {
  operationId: Schema.String,
  node: Schema.String,
  units: Amount,
  at: Schema.Number
})
export const ComputeRedeemed = Schema.TaggedStruct("ComputeRedeemed", {
  operationId: Schema.String,
  node: Schema.String,
  units: Amount,
  at: Schema.Number
})
export const ComputeBought = Schema.TaggedStruct("ComputeBought", {
  orderId: Schema.String,
  trader: Schema.String,
  ruvIn: Amount,
  computeOut: Amount,
  ...feeFields,
  /** Pricing reserves after the swap. */
  reserves: ReservesSchema,
  at: Schema.Number
})
export const ComputeSold = Schema.TaggedStruct("ComputeSold", {
  orderId: Schema.String,
  trader: Schema.String,
  computeIn: Amount,
  ruvOut: Amount,
  ...feeFields,
  reserves: ReservesSchema,
  at: Schema.Number
})
export const LiquidityAdded = Schema.TaggedStruct("LiquidityAdded", {
  orderId: Schema.String,
  provider: Schema.String,
  compute: Amount,
  ruv: Amount,
  shares: Amount,
  /** Shares locked for good by the first deposit (MINIMUM_LIQUIDITY), 0 afterwards. */
  locked: Amount,
  totalShares: Amount,
  virtualCompute: Amount,
  virtualRuv: Amount,
  at: Schema.Number
})
export const LiquidityRemoved = Schema.TaggedStruct("LiquidityRemoved", {
  orderId: Schema.String,
  provider: Schema.String,
  shares: Amount,
  compute: Amount,
  ruv: Amount,
  totalShares: Amount,
  virtualCompute: Amount,
  virtualRuv: Amount,
  at: Schema.Number
})
/** A funded order (its rUv held on the trader's account) the pool turned down: the hold is released. */
export const OrderRefused = Schema.TaggedStruct("OrderRefused", {
  orderId: Schema.String,
  account: Schema.String,
  order: Schema.Literal("buy", "addLiquidity"),
  error: PoolError,
  at: Schema.Number
})
export const LiquidityAdjusted = Schema.TaggedStruct("LiquidityAdjusted", {
  adjustmentId: Schema.String,
  utilizationPpm: Amount,
  direction: Schema.Literal("grow", "shrink"),
  ratePpm: Amount,
  growAbovePpm: Amount,
  shrinkBelowPpm: Amount,
  computeDelta: Amount,
  ruvDelta: Amount,
  before: ReservesSchema,
  after: ReservesSchema,
  kBefore: Amount,
  kAfter: Amount,
  at: Schema.Number
})
export const PoolEvent = Schema.Union(
  ComputeIssued,
  ComputeRedeemed,
  ComputeBought,
  ComputeSold,
  LiquidityAdded,
  LiquidityRemoved,
  OrderRefused,
  LiquidityAdjusted
)
export type PoolEvent = typeof PoolEvent.Type

export const PoolState = Schema.Struct({
  /** Real reserves: compute units the pool owns, rUv it owns in `pool:compute`. Only these are ever paid out. */
  compute: Amount,
  ruv: Amount,
  /**
   * Liquidity the utilization adjustment added (or, negative, took away): it moves prices, never
   * money. Pricing reserves are real + virtual; it scales with the share supply like real liquidity.
   */
  virtualCompute: Amount,
  virtualRuv: Amount,
  totalShares: Amount,
  shares: Schema.Record({ key: Schema.String, value: Amount }),
  /** Traders' compute-unit balances. */
  balances: Schema.Record({ key: Schema.String, value: Amount }),
  /** Compute units issued minus redeemed: always reserve + the sum of balances. */
  issued: Amount
})
export type PoolState = typeof PoolState.Type

export type Trade =
  | { readonly exact: "in"; readonly amountIn: bigint; readonly minAmountOut: bigint }
  | { readonly exact: "out"; readonly amountOut: bigint; readonly maxAmountIn: bigint }
/** A trade as a trader asks for it: amounts from outside, so decimal and bounded (Credits). */
export const TradeSchema = Schema.Union(
  Schema.Struct({ exact: Schema.Literal("in"), amountIn: Credits, minAmountOut: Credits }),
  Schema.Struct({ exact: Schema.Literal("out"), amountOut: Credits, maxAmountIn: Credits })
)

export interface FeeInForce {
  readonly feeBps: bigint
  readonly parametersVersion: number
}

export type PoolCommand =
  | { readonly _tag: "IssueCompute"; readonly operationId: string; readonly node: string; readonly units: bigint }
  | { readonly _tag: "RedeemCompute"; readonly operationId: string; readonly node: string; readonly units: bigint }
  | {
    readonly _tag: "Buy"
    readonly orderId: string
    readonly trader: string
    readonly trade: Trade
    readonly fee: FeeInForce
  }
  | {
    readonly _tag: "Sell"
    readonly orderId: string
    readonly trader: string
    readonly trade: Trade
    readonly fee: FeeInForce
  }
  | {
    readonly _tag: "AddLiquidity"
    readonly orderId: string
    readonly provider: string
    readonly computeDesired: bigint
    readonly ruvDesired: bigint
    readonly computeMin: bigint
    readonly ruvMin: bigint
  }
  | {
    readonly _tag: "RemoveLiquidity"
    readonly orderId: string
    readonly provider: string
    readonly shares: bigint
    readonly computeMin: bigint
    readonly ruvMin: bigint
  }
  /** Sent with the order's command id: refuses the order if the pool has not decided it yet. */
  | {
    readonly _tag: "Cancel"
    readonly orderId: string
    readonly account: string
    readonly order: "buy" | "addLiquidity"
  }
  | { readonly _tag: "AdjustLiquidity"; readonly adjustmentId: string; readonly utilizationPpm: bigint }

export const initialPoolState: PoolState = {
  compute: 0n,
  ruv: 0n,
  virtualCompute: 0n,
  virtualRuv: 0n,
  totalShares: 0n,
  shares: {},
  balances: {},
  issued: 0n
}

/** The reserves prices are computed from: real plus virtual liquidity. */
export const pricingReserves = (state: PoolState): Reserves => ({
  compute: state.compute + state.virtualCompute,
  ruv: state.ruv + state.virtualRuv
})

export const computeBalanceOf = (state: PoolState, node: string): bigint => state.balances[node] ?? 0n
export const sharesOf = (state: PoolState, node: string): bigint => state.shares[node] ?? 0n

const invalid = (amount: bigint, reason: string) => Either.left(new InvalidAmount({ amount, reason }))

/** Prices a trade against the pool and runs the pair's k check; `buy` pays rUv for compute, `sell` the reverse. */
export const priceTrade = (
  state: PoolState,
  side: "buy" | "sell",
  trade: Trade,
  feeBps: bigint
): Either.Either<{ readonly amountIn: bigint; readonly amountOut: bigint; readonly reserves: Reserves }, PoolError> => {
  if (state.totalShares === 0n) return Either.left(new PoolEmpty())
  const pricing = pricingReserves(state)
  const inSide = side === "buy" ? "ruv" : "compute"
  const outSide = side === "buy" ? "compute" : "ruv"
  const reserveIn = pricing[inSide]
  const reserveOut = pricing[outSide]
  let amountIn: bigint
  let amountOut: bigint
  if (trade.exact === "in") {
    if (trade.amountIn <= 0n) return invalid(trade.amountIn, "the amount in must be positive")
    if (trade.minAmountOut < 0n) return invalid(trade.minAmountOut, "the minimum out must not be negative")
    amountIn = trade.amountIn
    amountOut = getAmountOut(amountIn, reserveIn, reserveOut, feeBps)
    if (amountOut < trade.minAmountOut) {
      return Either.left(
        new SlippageExceeded({ limit: "minOut", unit: outSide, bound: trade.minAmountOut, actual: amountOut })
      )
    }
  } else {
    if (trade.amountOut <= 0n) return invalid(trade.amountOut, "the amount out must be positive")
    if (trade.amountOut >= reserveOut) {
      return Either.left(new InsufficientLiquidity({ side: outSide, requested: trade.amountOut, reserve: reserveOut }))
    }
    amountOut = trade.amountOut
    amountIn = getAmountIn(amountOut, reserveIn, reserveOut, feeBps)
    if (amountIn > trade.maxAmountIn) {
      return Either.left(
        new SlippageExceeded({ limit: "maxIn", unit: inSide, bound: trade.maxAmountIn, actual: amountIn })
      )
    }
  }
  // Virtual liquidity is priced but never paid out: the real reserve must cover the output.
  if (amountOut >= state[outSide]) {
    return Either.left(new InsufficientLiquidity({ side: outSide, requested: amountOut, reserve: state[outSide] }))
  }
  const amounts = side === "buy"
    ? { computeIn: 0n, ruvIn: amountIn, computeOut: amountOut, ruvOut: 0n }
    : { computeIn: amountIn, ruvIn: 0n, computeOut: 0n, ruvOut: amountOut }
  return Either.map(swap(pricing, amounts, feeBps), (reserves) => ({ amountIn, amountOut, reserves }))
}

/** Router-style deposit amounts (UniswapV2Router02._addLiquidity) and the shares they mint. */
export const priceDeposit = (
  state: PoolState,
  computeDesired: bigint,
  ruvDesired: bigint,
  computeMin: bigint,
  ruvMin: bigint
): Either.Either<
  { readonly compute: bigint; readonly ruv: bigint; readonly shares: bigint; readonly locked: bigint },
  PoolError
> => {
  if (computeDesired <= 0n) return invalid(computeDesired, "the compute deposit must be positive")
  if (ruvDesired <= 0n) return invalid(ruvDesired, "the rUv deposit must be positive")
  let compute = computeDesired
  let ruv = ruvDesired
  if (state.totalShares > 0n) {
    const ruvOptimal = quote(computeDesired, state.compute, state.ruv)
    if (ruvOptimal <= ruvDesired) {
      if (ruvOptimal < ruvMin) {
        return Either.left(new SlippageExceeded({ limit: "minOut", unit: "ruv", bound: ruvMin, actual: ruvOptimal }))
      }
      ruv = ruvOptimal
    } else {
      const computeOptimal = quote(ruvDesired, state.ruv, state.compute)
      if (computeOptimal < computeMin) {
        return Either.left(
          new SlippageExceeded({ limit: "minOut", unit: "compute", bound: computeMin, actual: computeOptimal })
        )
      }
      compute = computeOptimal
    }
  }
  const shares = sharesForDeposit(state, state.totalShares, compute, ruv)
  if (shares <= 0n) {
    return Either.left(
      new LiquidityTooSmall({
        reason: state.totalShares === 0n
          ? `the first deposit must exceed sqrt(compute * rUv) = ${MINIMUM_LIQUIDITY}`
          : "the deposit mints no share"
      })
    )
  }
  return Either.right({ compute, ruv, shares, locked: state.totalShares === 0n ? MINIMUM_LIQUIDITY : 0n })
}

// Virtual liquidity belongs to the shares like real liquidity: it scales with the supply, rounded up so
// that neither real nor pricing reserves per share ever fall on a mint or a burn.
const scaleVirtual = (
  virtual: bigint,
  totalShares: bigint,
  newTotal: bigint
) => (totalShares === 0n ? 0n : ceilDiv(virtual * newTotal, totalShares))

const decideBuyOrDeposit = (
  command: Extract<PoolCommand, { _tag: "Buy" | "AddLiquidity" }>,
  state: PoolState,
  at: number
): PoolEvent => {
  if (command._tag === "Buy") {
    const priced = priceTrade(state, "buy", command.trade, command.fee.feeBps)
    if (Either.isLeft(priced)) {
      return OrderRefused.make({
        orderId: command.orderId,
        account: command.trader,
        order: "buy",
        error: priced.left,
        at
      })
    }
    return ComputeBought.make({
      orderId: command.orderId,
      trader: command.trader,
      ruvIn: priced.right.amountIn,
      computeOut: priced.right.amountOut,
      feeBps: command.fee.feeBps,
      parametersVersion: command.fee.parametersVersion,
      reserves: priced.right.reserves,
      at
    })
  }
  const refuse = (error: PoolError) =>
    OrderRefused.make({ orderId: command.orderId, account: command.provider, order: "addLiquidity", error, at })
  const priced = priceDeposit(state, command.computeDesired, command.ruvDesired, command.computeMin, command.ruvMin)
  if (Either.isLeft(priced)) return refuse(priced.left)
  const { compute, ruv, shares, locked } = priced.right
  const available = computeBalanceOf(state, command.provider)
  if (available < compute) {
    return refuse(new InsufficientCompute({ node: command.provider, available, requested: compute }))
  }
  const totalShares = state.totalShares + shares + locked
  return LiquidityAdded.make({
    orderId: command.orderId,
    provider: command.provider,
    compute,
    ruv,
    shares,
    locked,
    totalShares,
    virtualCompute: scaleVirtual(state.virtualCompute, state.totalShares, totalShares),
    virtualRuv: scaleVirtual(state.virtualRuv, state.totalShares, totalShares),
    at
  })
}

const decide = (command: PoolCommand, state: PoolState): Effect.Effect<ReadonlyArray<PoolEvent>, PoolError> =>
  Effect.flatMap(Clock.currentTimeMillis, (at): Effect.Effect<ReadonlyArray<PoolEvent>, PoolError> => {
    switch (command._tag) {
      case "IssueCompute":
        if (command.units <= 0n) {
          return Effect.fail(new InvalidAmount({ amount: command.units, reason: "must be positive" }))
        }
        return Effect.succeed([
          ComputeIssued.make({ operationId: command.operationId, node: command.node, units: command.units, at })
        ])
      case "RedeemCompute": {
        if (command.units <= 0n) {
          return Effect.fail(new InvalidAmount({ amount: command.units, reason: "must be positive" }))
        }
        const available = computeBalanceOf(state, command.node)
        if (available < command.units) {
          return Effect.fail(new InsufficientCompute({ node: command.node, available, requested: command.units }))
        }
        return Effect.succeed([
          ComputeRedeemed.make({ operationId: command.operationId, node: command.node, units: command.units, at })
        ])
      }
      // Funded orders never fail: the trader's rUv is already held, so a refusal is recorded and releases it.
      case "Buy":
      case "AddLiquidity":
        return Effect.succeed([decideBuyOrDeposit(command, state, at)])
      case "Cancel":
        return Effect.succeed([
          OrderRefused.make({
            orderId: command.orderId,
            account: command.account,
            order: command.order,
            error: new OrderCancelled({ orderId: command.orderId }),
            at
          })
        ])
      case "Sell": {
        const available = computeBalanceOf(state, command.trader)
        const priced = priceTrade(state, "sell", command.trade, command.fee.feeBps)
        if (Either.isLeft(priced)) return Effect.fail(priced.left)
        if (available < priced.right.amountIn) {
          return Effect.fail(
            new InsufficientCompute({ node: command.trader, available, requested: priced.right.amountIn })
          )
        }
        return Effect.succeed([ComputeSold.make({
          orderId: command.orderId,
          trader: command.trader,
          computeIn: priced.right.amountIn,
          ruvOut: priced.right.amountOut,
          feeBps: command.fee.feeBps,
          parametersVersion: command.fee.parametersVersion,
          reserves: priced.right.reserves,
          at
        })])
      }
      case "RemoveLiquidity": {
        if (command.shares <= 0n) {
          return Effect.fail(new InvalidAmount({ amount: command.shares, reason: "shares to burn must be positive" }))
        }
        const held = sharesOf(state, command.provider)
        if (held < command.shares) {
          return Effect.fail(
            new InsufficientShares({ node: command.provider, available: held, requested: command.shares })
          )
        }
        const { compute, ruv } = amountsForShares(state, state.totalShares, command.shares)
        if (compute === 0n || ruv === 0n) {
          return Effect.fail(new LiquidityTooSmall({ reason: "burning these shares pays out nothing on one side" }))
        }
        if (compute < command.computeMin) {
          return Effect.fail(
            new SlippageExceeded({ limit: "minOut", unit: "compute", bound: command.computeMin, actual: compute })
          )
        }
        if (ruv < command.ruvMin) {
          return Effect.fail(new SlippageExceeded({ limit: "minOut", unit: "ruv", bound: command.ruvMin, actual: ruv }))
        }
        const totalShares = state.totalShares - command.shares
        return Effect.succeed([LiquidityRemoved.make({
          orderId: command.orderId,
          provider: command.provider,
          shares: command.shares,
          compute,
          ruv,
          totalShares,
          virtualCompute: scaleVirtual(state.virtualCompute, state.totalShares, totalShares),
          virtualRuv: scaleVirtual(state.virtualRuv, state.totalShares, totalShares),
          at
        })])
      }
      case "AdjustLiquidity": {
        const utilization = command.utilizationPpm
        if (utilization < 0n || utilization > 1_000_000n) {
          return Effect.fail(
            new InvalidAmount({ amount: utilization, reason: "utilization is parts per million: 0 to 1000000" })
          )
        }
        if (state.totalShares === 0n) return Effect.fail(new PoolEmpty())
        const direction = utilization > GROW_ABOVE_PPM ? "grow" : utilization < SHRINK_BELOW_PPM ? "shrink" : undefined
        if (direction === undefined) return Effect.succeed([])
        const before = pricingReserves(state)
        const sign = direction === "grow" ? 1n : -1n
        const computeDelta = sign * ((before.compute * ADJUST_RATE_PPM) / 1_000_000n)
        const ruvDelta = sign * ((before.ruv * ADJUST_RATE_PPM) / 1_000_000n)
        const after = { compute: before.compute + computeDelta, ruv: before.ruv + ruvDelta }
        return Effect.succeed([LiquidityAdjusted.make({
          adjustmentId: command.adjustmentId,
          utilizationPpm: utilization,
          direction,
          ratePpm: ADJUST_RATE_PPM,
          growAbovePpm: GROW_ABOVE_PPM,
          shrinkBelowPpm: SHRINK_BELOW_PPM,
          computeDelta,
          ruvDelta,
          before,
          after,
          kBefore: productOf(before),
          kAfter: productOf(after),
          at
        })])
      }
    }
  })

const withAmount = (record: Readonly<Record<string, bigint>>, key: string, delta: bigint) => {
  const next = (record[key] ?? 0n) + delta
  const { [key]: _, ...rest } = record
  return next === 0n ? rest : { ...rest, [key]: next }
}

const evolve = (state: PoolState, event: PoolEvent): PoolState => {
  switch (event._tag) {
    case "ComputeIssued":
      return {
        ...state,
        balances: withAmount(state.balances, event.node, event.units),
        issued: state.issued + event.units
      }
    case "ComputeRedeemed":
      return {
        ...state,
        balances: withAmount(state.balances, event.node, -event.units),
        issued: state.issued - event.units
      }
    case "ComputeBought":
      return {
        ...state,
        compute: state.compute - event.computeOut,
        ruv: state.ruv + event.ruvIn,
        balances: withAmount(state.balances, event.trader, event.computeOut)
      }
    case "ComputeSold":
      return {
        ...state,
        compute: state.compute + event.computeIn,
        ruv: state.ruv - event.ruvOut,
        balances: withAmount(state.balances, event.trader, -event.computeIn)
      }
    case "LiquidityAdded":
      return {
        ...state,
        compute: state.compute + event.compute,
        ruv: state.ruv + event.ruv,
        totalShares: event.totalShares,
        virtualCompute: event.virtualCompute,
        virtualRuv: event.virtualRuv,
        shares: withAmount(state.shares, event.provider, event.shares),
        balances: withAmount(state.balances, event.provider, -event.compute)
      }
    case "LiquidityRemoved":
      return {
        ...state,
        compute: state.compute - event.compute,
        ruv: state.ruv - event.ruv,
        totalShares: event.totalShares,
        virtualCompute: event.virtualCompute,
        virtualRuv: event.virtualRuv,
        shares: withAmount(state.shares, event.provider, -event.shares),
        balances: withAmount(state.balances, event.provider, event.compute)
      }
    case "OrderRefused":
      return state
    case "LiquidityAdjusted":
      return {
        ...state,
        virtualCompute: state.virtualCompute + event.computeDelta,
        virtualRuv: state.virtualRuv + event.ruvDelta
      }
  }
}

export const ComputePool: EventSourced<PoolCommand, PoolEvent, PoolState, PoolError> = {
  category: "Pool",
  decider: { initialState: initialPoolState, decide, evolve },
  event: PoolEvent,
  state: PoolState
}
