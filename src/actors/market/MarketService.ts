/**
 * The compute market: quotes, buys and sells against the `Pool-compute` entity, liquidity, and the
 * utilization adjustment. The pool decides first; rUv then moves through the Ledger under ids derived
 * from the order id, and the `market.settlement` policy finishes whatever a crash left half done.
 */
import { Clock, Effect, Layer, Option, Random, Schedule, Schema } from "effect"
import type { AuditFolds } from "../../events/ActorRegistry.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { Envelope } from "../../events/Envelope.js"
import * as Policy from "../../events/Policy.js"
import { Ledger } from "../economy/Ledger.js"
import { InvalidAmount } from "../economy/LedgerErrors.js"
import { NetworkParameters } from "../economy/NetworkParameters.js"
import { productOf, Reserves } from "./AmmMath.js"
import { MarketReputation, ReputationBondingCurve, ReputationQuote } from "./BondingCurve.js"
import type { PoolCommand, PoolEvent, PoolState, Trade } from "./ComputeAmm.js"
import {
  computeBalanceOf,
  ComputePool,
  POOL_ACCOUNT,
  POOL_ID,
  PoolEvent as PoolEventSchema,
  priceTrade,
  pricingReserves,
  sharesOf
} from "./ComputeAmm.js"

const Side = Schema.Literal("buy", "sell")

export const PoolView = Schema.Struct({
  /** Real reserves: what the pool owns and can pay out. */
  compute: Schema.BigInt,
  ruv: Schema.BigInt,
  virtualCompute: Schema.BigInt,
  virtualRuv: Schema.BigInt,
  /** Reserves prices are computed from (real + virtual) and their product k. */
  pricing: Reserves,
  k: Schema.BigInt,
  totalShares: Schema.BigInt,
  version: Schema.Number
})
export type PoolView = typeof PoolView.Type

export const TraderView = Schema.Struct({ node: Schema.String, compute: Schema.BigInt, shares: Schema.BigInt })
export type TraderView = typeof TraderView.Type

export const QuoteView = Schema.Struct({
  side: Side,
  amountIn: Schema.BigInt,
  amountOut: Schema.BigInt,
  feeBps: Schema.BigInt,
  parametersVersion: Schema.Number,
  /** Pricing reserves after the trade, were it made now. */
  reserves: Reserves
})
export type QuoteView = typeof QuoteView.Type

export const ReputationQuoteView = Schema.Struct({
  ...ReputationQuote.fields,
  node: Schema.String,
  computeOut: Schema.BigInt,
  feeBps: Schema.BigInt,
  parametersVersion: Schema.Number
})
export type ReputationQuoteView = typeof ReputationQuoteView.Type

export const SwapReceipt = Schema.Struct({
  ...QuoteView.fields,
  orderId: Schema.String,
  /** False when the rUv leg is still on its way (the settlement policy finishes it). */
  settled: Schema.Boolean,
  duplicate: Schema.Boolean
})
export type SwapReceipt = typeof SwapReceipt.Type

export const LiquidityReceipt = Schema.Struct({
  orderId: Schema.String,
  provider: Schema.String,
  compute: Schema.BigInt,
  ruv: Schema.BigInt,
  shares: Schema.BigInt,
  totalShares: Schema.BigInt,
  settled: Schema.Boolean,
  duplicate: Schema.Boolean
})
export type LiquidityReceipt = typeof LiquidityReceipt.Type

export interface DepositRequest {
  readonly computeDesired: bigint
  readonly ruvDesired: bigint
  readonly computeMin?: bigint | undefined
  readonly ruvMin?: bigint | undefined
}

export interface WithdrawRequest {
  readonly shares: bigint
  readonly computeMin?: bigint | undefined
  readonly ruvMin?: bigint | undefined
}

/** Every pool command of one order carries this id, so an order is decided (or cancelled) once. */
export const orderCommandId = (orderId: string) => `market/order/${orderId}`
/** The hold on the trader's account that funds a buy or a deposit. */
export const orderHoldId = (orderId: string) => `market/${orderId}`
/** The ledger transfer that pays out a sale or a withdrawal. */
export const orderTransferId = (orderId: string) => `market/${orderId}`

const UNBOUNDED = 2n ** 256n
const newId = Effect.zipWith(
  Clock.currentTimeMillis,
  Random.nextInt,
  (now, n) => `${now.toString(36)}-${(n >>> 0).toString(36)}`
)
const decodeEvent = Schema.decodeUnknown(PoolEventSchema)

/** Whether a decision recorded under an order id is the decision of this command (and not of another order reusing the id). */
const sameOrder = (command: PoolCommand, event: PoolEvent): boolean => {
  switch (command._tag) {
    case "Buy":
      if (event._tag === "OrderRefused") return event.account === command.trader && event.order === "buy"
      return event._tag === "ComputeBought" && event.trader === command.trader &&
        (command.trade.exact === "in"
          ? event.ruvIn === command.trade.amountIn
          : event.computeOut === command.trade.amountOut)
    case "Sell":
      return event._tag === "ComputeSold" && event.trader === command.trader &&
        (command.trade.exact === "in"
          ? event.computeIn === command.trade.amountIn
          : event.ruvOut === command.trade.amountOut)
    case "AddLiquidity":
      if (event._tag === "OrderRefused") return event.account === command.provider && event.order === "addLiquidity"
      return event._tag === "LiquidityAdded" && event.provider === command.provider &&
        event.ruv <= command.ruvDesired && event.compute <= command.computeDesired
    case "RemoveLiquidity":
      return event._tag === "LiquidityRemoved" && event.provider === command.provider && event.shares === command.shares
    default:
      return true
  }
}

const toPoolView = (state: PoolState, version: number): PoolView => {
  const pricing = pricingReserves(state)
  return {
    compute: state.compute,
    ruv: state.ruv,
    virtualCompute: state.virtualCompute,
    virtualRuv: state.virtualRuv,
    pricing,
    k: productOf(pricing),
    totalShares: state.totalShares,
    version
  }
}

export class Market extends Effect.Service<Market>()("edge-net/Market", {
  effect: Effect.gen(function*() {
    // One entity takes every order: it remembers the ids of its last 10_000 commands, so a retried order is answered, not redone.
    const pool = yield* ActorRunner.make(ComputePool, { snapshotEvery: 100, idempotencyWindow: 10_000 })
    const ledger = yield* Ledger
    const parameters = yield* NetworkParameters
    const reputationSource = yield* Effect.serviceOption(MarketReputation)
    const reputationOf = (node: string) =>
      Option.match(reputationSource, {
        onNone: () => Effect.succeed(0n),
        onSome: (source) => source.reputationOf(node)
      })

    const feeInForce = Effect.map(
      parameters.current("market"),
      (current) => ({ feeBps: current.values["feeBps"]!, parametersVersion: current.version })
    )

    /** The ledger leg of a pool decision; every step is idempotent under ids derived from the order. */
    const settle = (event: PoolEvent) => {
      switch (event._tag) {
        case "ComputeBought":
          return captureOrder(event.trader, event.orderId, event.ruvIn)
        case "LiquidityAdded":
          return captureOrder(event.provider, event.orderId, event.ruv)
        case "OrderRefused":
          // A cancelled order may never have been funded: no hold to release is fine.
          return ledger.release(event.account, orderHoldId(event.orderId)).pipe(
            Effect.asVoid,
            Effect.catchTag("UnknownHold", () => Effect.void)
          )
        case "ComputeSold":
          return Effect.asVoid(
            ledger.transfer(POOL_ACCOUNT, event.trader, event.ruvOut, orderTransferId(event.orderId))
          )
        case "LiquidityRemoved":
          return Effect.asVoid(ledger.transfer(POOL_ACCOUNT, event.provider, event.ruv, orderTransferId(event.orderId)))
        default:
          return Effect.void
      }
    }

    const captureOrder = (account: string, orderId: string, amount: bigint) =>
      ledger.capture(account, orderHoldId(orderId), POOL_ACCOUNT, amount).pipe(
        Effect.asVoid,
        // Cannot happen while order ids stay unique: the pool decided on a hold that is gone. Logged, not retried forever.
        Effect.catchTag(
          "UnknownHold",
          () => Effect.logError(`market: order ${orderId} was decided but its hold on ${account} is gone`)
        )
      )

    // A payout can wait for a capture still on its way into `pool:compute`; past a few tries the policy finishes it.
    const settleNow = (events: ReadonlyArray<PoolEvent>) =>
      Effect.forEach(events, settle, { discard: true }).pipe(
        Effect.retry({
          schedule: Schedule.spaced("10 millis"),
          times: 5,
          while: (error) => error._tag === "InsufficientFunds"
        }),
        Effect.as(true),
        Effect.catchAll((error) => Effect.as(Effect.logWarning("market: settlement left to the policy", error), false))
      )

    const sendOrder = (orderId: string, command: PoolCommand) =>
      pool.send(POOL_ID, command, { commandId: orderCommandId(orderId) })

    const checkSameOrder = (orderId: string, command: PoolCommand, event: PoolEvent | undefined) =>
      event === undefined || sameOrder(command, event)
        ? Effect.void
        : Effect.fail(
          new InvalidAmount({ amount: 0n, reason: `order id ${orderId} was already used for another order` })
        )

    const cancelOrder = (orderId: string, account: string, order: "buy" | "addLiquidity") =>
      sendOrder(orderId, { _tag: "Cancel", orderId, account, order })

    /**
     * A buy or a deposit: hold the rUv, let the pool decide, capture what it took or release it all.
     * A retry with the same order id finds the hold and the decision already made and repeats neither.
     */
    const funded = (
      account: string,
      orderId: string,
      order: "buy" | "addLiquidity",
      holdAmount: bigint,
      command: PoolCommand
    ) =>
      Effect.gen(function*() {
        const holdId = orderHoldId(orderId)
        const held = yield* ledger.hold(account, holdId, holdAmount)
        const open = held.holds[holdId]
        if (open !== undefined && open !== holdAmount) {
          return yield* Effect.fail(
            new InvalidAmount({ amount: holdAmount, reason: `order id ${orderId} was already used for another amount` })
          )
        }
        // No open hold: an earlier attempt was settled. Cancelling under the order's command id returns
        // that attempt's decision, or (if the pool never decided) refuses the order for good.
        const result = yield* (open === undefined ? cancelOrder(orderId, account, order) : sendOrder(orderId, command))
          .pipe(
            Effect.tapErrorTag("VersionConflict", () =>
              cancelOrder(orderId, account, order).pipe(
                Effect.flatMap((cancelled) => settleNow(cancelled.events)),
                Effect.ignore
              ))
          )
        const event = result.events[0]!
        if (!sameOrder(command, event)) {
          // The id belongs to another order: finish that one if the hold is its own, else return the hold just made.
          const itsHold = (event._tag === "ComputeBought" && event.trader === account) ||
            (event._tag === "LiquidityAdded" && event.provider === account) ||
            (event._tag === "OrderRefused" && event.account === account)
          if (itsHold) {
            yield* settleNow(result.events)
          } else if (open !== undefined) {
            yield* Effect.ignore(ledger.release(account, holdId))
          }
          return yield* Effect.fail(
            new InvalidAmount({ amount: holdAmount, reason: `order id ${orderId} was already used for another order` })
          )
        }
        const settled = yield* settleNow(result.events)
        if (event._tag === "OrderRefused") return yield* Effect.fail(event.error)
        return { event, settled, duplicate: result.duplicate }
      })

    const toSwapReceipt = (event: PoolEvent, settled: boolean, duplicate: boolean): SwapReceipt => {
      if (event._tag === "ComputeBought") {
        return {
          orderId: event.orderId,
          side: "buy",
          amountIn: event.ruvIn,
          amountOut: event.computeOut,
          feeBps: event.feeBps,
          parametersVersion: event.parametersVersion,
          reserves: event.reserves,
          settled,
          duplicate
        }
      }
      if (event._tag === "ComputeSold") {
        return {
          orderId: event.orderId,
          side: "sell",
          amountIn: event.computeIn,
          amountOut: event.ruvOut,
          feeBps: event.feeBps,
          parametersVersion: event.parametersVersion,
          reserves: event.reserves,
          settled,
          duplicate
        }
      }
      throw new Error(`not a swap: ${event._tag}`)
    }

    const toLiquidityReceipt = (event: PoolEvent, settled: boolean, duplicate: boolean): LiquidityReceipt => {
      if (event._tag !== "LiquidityAdded" && event._tag !== "LiquidityRemoved") {
        throw new Error(`not a liquidity change: ${event._tag}`)
      }
      return {
        orderId: event.orderId,
        provider: event.provider,
        compute: event.compute,
        ruv: event.ruv,
        shares: event.shares,
        totalShares: event.totalShares,
        settled,
        duplicate
      }
    }

    const state = Effect.fn("Market.state")(function*() {
      const current = yield* pool.state(POOL_ID)
      return toPoolView(current.state, current.version)
    })

    const account = Effect.fn("Market.account")(function*(node: string) {
      const { state: current } = yield* pool.state(POOL_ID)
      return { node, compute: computeBalanceOf(current, node), shares: sharesOf(current, node) } satisfies TraderView
    })

    const quote = Effect.fn("Market.quote")(function*(side: "buy" | "sell", trade: Trade) {
      const fee = yield* feeInForce
      const { state: current } = yield* pool.state(POOL_ID)
      const priced = yield* priceTrade(current, side, trade, fee.feeBps)
      return {
        side,
        amountIn: priced.amountIn,
        amountOut: priced.amountOut,
        feeBps: fee.feeBps,
        parametersVersion: fee.parametersVersion,
        reserves: priced.reserves
      } satisfies QuoteView
    })

    /** What `computeOut` units cost `node` on the reputation bonding curve: the pool's price, discounted. */
    const quoteWithReputation = Effect.fn("Market.quoteWithReputation")(function*(node: string, computeOut: bigint) {
      const base = yield* quote("buy", { exact: "out", amountOut: computeOut, maxAmountIn: UNBOUNDED })
      const market = yield* parameters.current("market")
      const reputationPpm = yield* reputationOf(node)
      const curve = ReputationBondingCurve.quote(base.amountIn, reputationPpm, market.values["maxDiscountPpm"]!)
      return {
        ...curve,
        node,
        computeOut,
        feeBps: base.feeBps,
        parametersVersion: market.version
      } satisfies ReputationQuoteView
    })

    /** Buys compute units with rUv: exact rUv in (minimum out) or exact compute out (maximum rUv in). */
    const buy = Effect.fn("Market.buy")(function*(trader: string, trade: Trade, orderId?: string) {
      const id = orderId ?? (yield* newId)
      const holdAmount = trade.exact === "in" ? trade.amountIn : trade.maxAmountIn
      if (holdAmount <= 0n) {
        return yield* Effect.fail(
          new InvalidAmount({ amount: holdAmount, reason: "a buy must offer a positive amount of rUv" })
        )
      }
      const fee = yield* feeInForce
      const { event, settled, duplicate } = yield* funded(trader, id, "buy", holdAmount, {
        _tag: "Buy",
        orderId: id,
        trader,
        trade,
        fee
      })
      return toSwapReceipt(event, settled, duplicate)
    })

    /** Sells compute units for rUv: exact compute in (minimum rUv out) or exact rUv out (maximum compute in). */
    const sell = Effect.fn("Market.sell")(function*(trader: string, trade: Trade, orderId?: string) {
      const id = orderId ?? (yield* newId)
      const fee = yield* feeInForce
      const command: PoolCommand = { _tag: "Sell", orderId: id, trader, trade, fee }
      const result = yield* sendOrder(id, command)
      yield* checkSameOrder(id, command, result.events[0])
      const settled = yield* settleNow(result.events)
      return toSwapReceipt(result.events[0]!, settled, result.duplicate)
    })

    const addLiquidity = Effect.fn("Market.addLiquidity")(
      function*(provider: string, deposit: DepositRequest, orderId?: string) {
        const id = orderId ?? (yield* newId)
        if (deposit.ruvDesired <= 0n) {
          return yield* Effect.fail(
            new InvalidAmount({ amount: deposit.ruvDesired, reason: "the rUv deposit must be positive" })
          )
        }
        const { event, settled, duplicate } = yield* funded(provider, id, "addLiquidity", deposit.ruvDesired, {
          _tag: "AddLiquidity",
          orderId: id,
          provider,
          computeDesired: deposit.computeDesired,
          ruvDesired: deposit.ruvDesired,
          computeMin: deposit.computeMin ?? 0n,
          ruvMin: deposit.ruvMin ?? 0n
        })
        return toLiquidityReceipt(event, settled, duplicate)
      }
    )

    const removeLiquidity = Effect.fn("Market.removeLiquidity")(
      function*(provider: string, withdraw: WithdrawRequest, orderId?: string) {
        const id = orderId ?? (yield* newId)
        const command: PoolCommand = {
          _tag: "RemoveLiquidity",
          orderId: id,
          provider,
          shares: withdraw.shares,
          computeMin: withdraw.computeMin ?? 0n,
          ruvMin: withdraw.ruvMin ?? 0n
        }
        const result = yield* sendOrder(id, command)
        yield* checkSameOrder(id, command, result.events[0])
        const settled = yield* settleNow(result.events)
        return toLiquidityReceipt(result.events[0]!, settled, result.duplicate)
      }
    )

    /** Refuses an order the pool has not decided yet and returns its hold; a decided order is returned as it was. */
    const cancel = Effect.fn("Market.cancel")(
      function*(orderId: string, accountId: string, order: "buy" | "addLiquidity") {
        const result = yield* cancelOrder(orderId, accountId, order)
        yield* settleNow(result.events)
        return result.events[0]!
      }
    )

    /** Compute units a provider brings to the market (its capacity), credited to its balance in the pool. */
    const issueCompute = Effect.fn("Market.issueCompute")(function*(node: string, units: bigint, operationId: string) {
      yield* pool.send(POOL_ID, { _tag: "IssueCompute", operationId, node, units }, {
        commandId: `market/issue/${operationId}`
      })
      return yield* account(node)
    })

    /** Compute units spent on work: they leave the holder's balance. */
    const redeemCompute = Effect.fn("Market.redeemCompute")(
      function*(node: string, units: bigint, operationId: string) {
        yield* pool.send(POOL_ID, { _tag: "RedeemCompute", operationId, node, units }, {
          commandId: `market/redeem/${operationId}`
        })
        return yield* account(node)
      }
    )

    /** The seed's utilization rule as a command: above 80% both pricing reserves grow 2.5%, below 20% they shrink 2.5%. */
    const adjustLiquidity = Effect.fn("Market.adjustLiquidity")(
      function*(utilizationPpm: bigint, adjustmentId: string) {
        const result = yield* pool.send(POOL_ID, { _tag: "AdjustLiquidity", adjustmentId, utilizationPpm }, {
          commandId: `market/adjust/${adjustmentId}`
        })
        const adjusted = result.events[0]
        return {
          adjustment: adjusted?._tag === "LiquidityAdjusted" ? adjusted : null,
          pool: toPoolView(result.state, result.version)
        }
      }
    )

    /** The rUv the pool says it holds, folded from the log alone: what the audit expects in the pool's account. */
    const reserveFromLog = Effect.fn("Market.reserveFromLog")(function*(folds?: AuditFolds) {
      return (yield* pool.replayedIn(folds)).get(POOL_ID)?.state.ruv ?? 0n
    })

    /** For the settlement policy: the ledger leg of one stored pool event. */
    const settleEnvelope = (envelope: Envelope) => Effect.flatMap(Effect.orDie(decodeEvent(envelope.payload)), settle)

    return {
      state,
      account,
      quote,
      quoteWithReputation,
      buy,
      sell,
      addLiquidity,
      removeLiquidity,
      cancel,
      issueCompute,
      redeemCompute,
      adjustLiquidity,
      reserveFromLog,
      settle,
      settleEnvelope
    } as const
  })
}) {}

/** Finishes the ledger leg of every pool decision a crash interrupted: at least once, applied once. */
export const settlementPolicy = Layer.unwrapEffect(
  Effect.map(Market, (market) =>
    Policy.layer({
      name: "market.settlement",
      categories: [ComputePool.category],
      eventTypes: ["ComputeBought", "ComputeSold", "LiquidityAdded", "LiquidityRemoved", "OrderRefused"],
      handle: market.settleEnvelope
    }))
)
