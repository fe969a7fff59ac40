/**
 * The auction's money as a policy, in log order: deposits into escrow, refunds and forfeits at
 * resolution, and the lease (hold on the poster at AuctionResolved, capture to the winner on
 * completion, release on failure). The service takes the same steps inline; this finishes them.
 */
import { Effect, Layer } from "effect"
import * as Policy from "../../events/Policy.js"
import { Auctions } from "./AuctionService.js"
import { TaskAuction } from "./TaskAuction.js"

export const AUCTION_SETTLEMENT = "auction.settlement"

/**
 * BidCommitted -> the deposit hold captured into `escrow:auction:<id>`.
 * AuctionResolved / AuctionCancelled -> revealed deposits refunded, unrevealed ones forfeited to
 * `treasury`; on AuctionResolved also `Ledger.hold(poster, auction/<id>, price)`, the lease, or, when
 * the poster cannot pay, LeaseFailed {reason: "leaseUnfunded"}.
 * LeaseCompleted -> the hold captured to the winner. LeaseFailed -> the hold released to the poster.
 * Slashing and reputation on LeaseCompleted / LeaseFailed belong to a policy of the economy.
 */
export const auctionSettlementPolicyDefinition = Effect.map(Auctions, (auctions): Policy.PolicyDefinition<never> => ({
  name: AUCTION_SETTLEMENT,
  categories: [TaskAuction.category],
  eventTypes: ["BidCommitted", "AuctionResolved", "AuctionCancelled", "LeaseCompleted", "LeaseFailed"],
  handle: auctions.settleEnvelope
}))

export const auctionSettlementPolicy = Layer.unwrapEffect(Effect.map(auctionSettlementPolicyDefinition, Policy.layer))
