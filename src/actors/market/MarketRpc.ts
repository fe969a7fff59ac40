/**
 * The market's RPC contract: the compute pool (quotes, trades, liquidity) and task auctions. Amounts
 * travel as decimal strings (Schema.BigInt), never as floats; every failure is a Schema error.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import {
  anyKey,
  Authority,
  operatorOwning,
  owner,
  SignedCommands,
  signedFields
} from "../../domain/CommandAuthority.js"
import { AccountId, Credits, OperationId, PositiveCredits } from "../../domain/Money.js"
import { Sequenced } from "../../domain/Sequencing.js"
import { VersionConflict } from "../../events/Journal.js"
import { LedgerError } from "../economy/LedgerErrors.js"
import { InsufficientLiquidity, KInvariantViolated } from "./AmmMath.js"
import { AuctionView } from "./AuctionService.js"
import {
  InsufficientCompute,
  InsufficientShares,
  LiquidityTooSmall,
  OrderCancelled,
  PoolEmpty,
  SlippageExceeded,
  TradeSchema
} from "./ComputeAmm.js"
import { LiquidityReceipt, PoolView, QuoteView, ReputationQuoteView, SwapReceipt, TraderView } from "./MarketService.js"
import { AuctionError, AuctionId, NotEligible } from "./TaskAuction.js"

/** What a market call can fail with: a pool rule, the ledger, or a stream that kept moving under it. */
export const MarketFailure = Schema.Union(
  InsufficientLiquidity,
  KInvariantViolated,
  SlippageExceeded,
  InsufficientCompute,
  InsufficientShares,
  PoolEmpty,
  LiquidityTooSmall,
  OrderCancelled,
  LedgerError,
  VersionConflict
)
export const AuctionFailure = Schema.Union(AuctionError, NotEligible, LedgerError, VersionConflict)

const NonNegative = Credits
const Period = Schema.Int.pipe(Schema.positive({ message: () => "a period is a positive number of milliseconds" }))
const Side = Schema.Literal("buy", "sell")

const orderId = Schema.optional(OperationId)

export class MarketRpcs extends RpcGroup.make(
  Rpc.make("MarketQuote", {
    /** With `node` on a buy, also the price on the reputation bonding curve for the same compute out. */
    payload: { side: Side, trade: TradeSchema, node: Schema.optional(AccountId) },
    success: Schema.Struct({ quote: QuoteView, reputation: Schema.NullOr(ReputationQuoteView) }),
    error: MarketFailure
  }),
  Rpc.make("MarketBuy", {
    payload: { trader: AccountId, trade: TradeSchema, orderId, ...signedFields },
    success: SwapReceipt,
    error: MarketFailure
  }).middleware(SignedCommands).annotate(Authority, owner("trader")),
  Rpc.make("MarketSell", {
    payload: { trader: AccountId, trade: TradeSchema, orderId, ...signedFields },
    success: SwapReceipt,
    error: MarketFailure
  }).middleware(SignedCommands).annotate(Authority, owner("trader")),
  Rpc.make("MarketAddLiquidity", {
    payload: {
      provider: AccountId,
      computeDesired: PositiveCredits,
      ruvDesired: PositiveCredits,
      computeMin: Schema.optional(NonNegative),
      ruvMin: Schema.optional(NonNegative),
      orderId,
      ...signedFields
    },
    success: LiquidityReceipt,
    error: MarketFailure
  }).middleware(SignedCommands).annotate(Authority, operatorOwning("provider")),
  Rpc.make("MarketRemoveLiquidity", {
    payload: {
      provider: AccountId,
      shares: PositiveCredits,
      computeMin: Schema.optional(NonNegative),
      ruvMin: Schema.optional(NonNegative),
      orderId,
      ...signedFields
    },
    success: LiquidityReceipt,
    error: MarketFailure
  }).middleware(SignedCommands).annotate(Authority, owner("provider")),
  Rpc.make("MarketPoolState", {
    payload: { node: Schema.optional(AccountId) },
    success: Schema.Struct({ pool: PoolView, trader: Schema.NullOr(TraderView) })
  }),
  Rpc.make("AuctionOpen", {
    payload: {
      auctionId: AuctionId,
      poster: AccountId,
      task: Schema.Unknown,
      maxPrice: PositiveCredits,
      minBids: Schema.Int.pipe(Schema.positive()),
      commitPeriodMs: Period,
      revealPeriodMs: Period,
      leasePeriodMs: Period,
      ...signedFields
    },
    success: AuctionView,
    error: AuctionFailure
  }).middleware(SignedCommands).annotate(Authority, owner("poster")),
  Rpc.make("AuctionCommit", {
    /** `commitment` = sha256 hex of canonical JSON {auctionId, bidder, price (decimal string), salt}; see `commitmentOf`. */
    payload: { auctionId: AuctionId, bidder: AccountId, commitment: Schema.String, ...signedFields },
    success: AuctionView,
    error: AuctionFailure
  }).middleware(SignedCommands).annotate(Authority, owner("bidder")),
  Rpc.make("AuctionReveal", {
    payload: { auctionId: AuctionId, bidder: AccountId, price: PositiveCredits, salt: Schema.String, ...signedFields },
    success: AuctionView,
    error: AuctionFailure
  }).middleware(SignedCommands).annotate(Authority, owner("bidder")),
  Rpc.make("AuctionResolve", {
    payload: { auctionId: AuctionId, ...signedFields },
    success: AuctionView,
    error: AuctionFailure
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("AuctionComplete", {
    payload: { auctionId: AuctionId, by: AccountId, ...signedFields },
    success: AuctionView,
    error: AuctionFailure
  }).middleware(SignedCommands).annotate(Authority, owner("by")),
  Rpc.make("AuctionFail", {
    payload: {
      auctionId: AuctionId,
      by: AccountId,
      reason: Schema.Literal("incorrectResult", "challengeTimeout"),
      ...signedFields
    },
    success: AuctionView,
    error: AuctionFailure
  }).middleware(SignedCommands).annotate(Authority, owner("by")),
  Rpc.make("AuctionState", { payload: { auctionId: AuctionId }, success: AuctionView, error: AuctionFailure })
).middleware(Sequenced) {}
