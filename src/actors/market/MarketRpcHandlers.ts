/**
 * Handlers of MarketRpcs on the Market and Auctions services, ready for the node's RPC server to
 * provide (registering them there is the node's business).
 */
import { Effect } from "effect"
import { Auctions } from "./AuctionService.js"
import { MarketRpcs } from "./MarketRpc.js"
import { Market } from "./MarketService.js"

export const MarketRpcHandlers = MarketRpcs.toLayer(
  Effect.gen(function*() {
    const market = yield* Market
    const auctions = yield* Auctions
    return {
      MarketQuote: ({ side, trade, node }) =>
        Effect.gen(function*() {
          const quote = yield* market.quote(side, trade)
          const reputation = node !== undefined && side === "buy"
            ? yield* market.quoteWithReputation(node, quote.amountOut)
            : null
          return { quote, reputation }
        }),
      MarketBuy: ({ auth, orderId, trade, trader }) => market.buy(trader, trade, orderId ?? auth?.id),
      MarketSell: ({ auth, orderId, trade, trader }) => market.sell(trader, trade, orderId ?? auth?.id),
      MarketAddLiquidity: ({ auth, orderId, provider, ...deposit }) =>
        market.addLiquidity(provider, deposit, orderId ?? auth?.id),
      MarketRemoveLiquidity: ({ auth, orderId, provider, ...withdraw }) =>
        market.removeLiquidity(provider, withdraw, orderId ?? auth?.id),
      MarketPoolState: ({ node }) =>
        Effect.zipWith(
          market.state(),
          node === undefined ? Effect.succeed(null) : market.account(node),
          (pool, trader) => ({ pool, trader })
        ),
      AuctionOpen: ({ auth: _, ...request }) => auctions.open(request),
      AuctionCommit: ({ auctionId, bidder, commitment }) => auctions.commit(auctionId, bidder, commitment),
      AuctionReveal: ({ auctionId, bidder, price, salt }) => auctions.reveal(auctionId, bidder, price, salt),
      AuctionResolve: ({ auctionId }) => auctions.resolve(auctionId),
      AuctionComplete: ({ auctionId, by }) => auctions.complete(auctionId, by),
      AuctionFail: ({ auctionId, by, reason }) => auctions.fail(auctionId, by, reason),
      AuctionState: ({ auctionId }) => auctions.state(auctionId)
    }
  })
)
