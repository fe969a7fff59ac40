import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Ledger } from "../../../src/actors/economy/Ledger.js"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { Auctions, BidEligibility } from "../../../src/actors/market/AuctionService.js"
import { MarketRpcs } from "../../../src/actors/market/MarketRpc.js"
import { MarketRpcHandlers } from "../../../src/actors/market/MarketRpcHandlers.js"
import { Market } from "../../../src/actors/market/MarketService.js"
import { commitmentOf } from "../../../src/actors/market/TaskAuction.js"
import { AccountId, OperationId } from "../../../src/domain/Money.js"
import { memoryKernel } from "../../support/Layers.js"
import { acceptUnsigned } from "../../support/Signing.js"

const services = Layer.mergeAll(Market.Default, Auctions.Default).pipe(
  Layer.provideMerge(Layer.mergeAll(Ledger.Default, NetworkParameters.Default, BidEligibility.permissive)),
  Layer.provideMerge(memoryKernel())
)

describe("MarketRpcs", () => {
  it.scoped("serves the pool and auctions, with typed failures", () =>
    Effect.gen(function*() {
      const client = yield* RpcTest.makeClient(MarketRpcs)
      const ledger = yield* Ledger
      const market = yield* Market
      yield* ledger.mint("lp", 1_000_000n)
      yield* ledger.mint("alice", 50_000n)
      yield* market.issueCompute("lp", 200_000n, "capacity")
      const added = yield* client.MarketAddLiquidity({
        provider: AccountId.make("lp"),
        computeDesired: 100_000n,
        ruvDesired: 400_000n
      })
      expect(added).toMatchObject({ shares: 199_000n, totalShares: 200_000n })
      const { quote, reputation } = yield* client.MarketQuote({
        side: "buy",
        trade: { exact: "in", amountIn: 1_000n, minAmountOut: 0n },
        node: AccountId.make("alice")
      })
      expect(reputation).toMatchObject({ computeOut: quote.amountOut, discountPpm: 0n })
      const bought = yield* client.MarketBuy({
        trader: AccountId.make("alice"),
        trade: { exact: "in", amountIn: 1_000n, minAmountOut: quote.amountOut },
        orderId: OperationId.make("o-1")
      })
      expect(bought.amountOut).toBe(quote.amountOut)
      const slipped = yield* Effect.flip(
        client.MarketSell({
          trader: AccountId.make("alice"),
          trade: { exact: "in", amountIn: 10n, minAmountOut: 1_000n }
        })
      )
      expect(slipped._tag).toBe("SlippageExceeded")
      expect(slipped.message.startsWith("slippage:")).toBe(true)
      const state = yield* client.MarketPoolState({ node: AccountId.make("alice") })
      expect(state.trader).toMatchObject({ compute: quote.amountOut, shares: 0n })

      yield* ledger.mint("poster", 500n)
      yield* ledger.mint("b1", 50n)
      const opened = yield* client.AuctionOpen({
        auctionId: "job-7",
        poster: AccountId.make("poster"),
        task: { model: "tiny-lm" },
        maxPrice: 100n,
        minBids: 1,
        commitPeriodMs: 60_000,
        revealPeriodMs: 60_000,
        leasePeriodMs: 60_000
      })
      expect(opened).toMatchObject({ status: "open", bidDepositRuv: 10n })
      yield* client.AuctionCommit({
        auctionId: "job-7",
        bidder: AccountId.make("b1"),
        commitment: commitmentOf({ auctionId: "job-7", bidder: "b1", price: 70n, salt: "x" })
      })
      const early = yield* Effect.flip(
        client.AuctionReveal({ auctionId: "job-7", bidder: AccountId.make("b1"), price: 70n, salt: "x" })
      )
      expect(early._tag).toBe("OutsideWindow")
      expect((yield* client.AuctionState({ auctionId: "job-7" })).bids).toHaveLength(1)
      expect((yield* Effect.flip(client.AuctionState({ auctionId: "nope" })))._tag).toBe("AuctionNotFound")
    }).pipe(Effect.provide(Layer.merge(MarketRpcHandlers, acceptUnsigned).pipe(Layer.provideMerge(services)))))
})
