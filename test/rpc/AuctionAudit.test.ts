/**
 * The audit of an auction whose poster is an ordinary account and whose resolver is a stranger (anyone
 * may resolve once the reveal window closes): the lease hold on the poster's account is placed while
 * the stranger's command runs, yet the poster authorized it by signing AuctionOpen, with its maxPrice.
 * `audit verify` must accept it.
 */
import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { commitmentOf } from "../../src/actors/market/TaskAuction.js"
import { NodeKey } from "../../src/content/NodeKey.js"
import { AccountId, OperationId } from "../../src/domain/Money.js"
import { nodeServices } from "../../src/layers/Node.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"
import { NodeApiRpcHandlers } from "../../src/rpc/NodeRpcHandlers.js"
import { sequencedLayer } from "../../src/rpc/Sequencing.js"
import { signedCommandsLayer } from "../../src/rpc/SignedCommandsLive.js"
import { as, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const node = Layer.mergeAll(NodeApiRpcHandlers, signedCommandsLayer(), sequencedLayer, signingClientLayer).pipe(
  Layer.provideMerge(nodeServices({ dataDir: tempDir(), host: "127.0.0.1", port: 0, synchronous: "normal" }))
)

const [poster, bidderB, bidderC, stranger] = [testKey(), testKey(), testKey(), testKey()]

describe("the audit of an auction", () => {
  it.scoped("accepts a lease hold the poster's AuctionOpen authorized, whoever resolved the auction", () =>
    Effect.gen(function*() {
      const rpc = yield* RpcTest.makeClient(NodeApiRpcs)
      const operator = yield* NodeKey
      yield* as(operator)(rpc.LedgerMint({ account: poster.account, amount: 5_000n }))
      for (const bidder of [bidderB, bidderC]) {
        yield* as(operator)(rpc.LedgerMint({ account: bidder.account, amount: 1_000n }))
        yield* as(bidder)(
          rpc.Stake({ node: bidder.account, amount: 200n, operationId: OperationId.make(`stake-${bidder.account}`) })
        )
      }
      const auctionId = "job-x"
      const opened = yield* as(poster)(rpc.AuctionOpen({
        auctionId,
        poster: poster.account,
        task: { model: "tiny", input: auctionId },
        maxPrice: 500n,
        minBids: 2,
        commitPeriodMs: 1_000,
        revealPeriodMs: 1_000,
        leasePeriodMs: 60_000
      }))
      const prices = [[bidderB, 100n], [bidderC, 150n]] as const
      for (const [bidder, price] of prices) {
        const commitment = commitmentOf({ auctionId, bidder: bidder.account, price, salt: `salt-${bidder.account}` })
        yield* as(bidder)(rpc.AuctionCommit({ auctionId, bidder: AccountId.make(bidder.account), commitment }))
      }
      yield* TestClock.setTime(opened.commitDeadline + 1)
      for (const [bidder, price] of prices) {
        yield* as(bidder)(rpc.AuctionReveal({
          auctionId,
          bidder: AccountId.make(bidder.account),
          price,
          salt: `salt-${bidder.account}`
        }))
      }
      yield* TestClock.setTime(opened.revealDeadline + 1)
      // A stranger resolves: the lease hold lands on the poster's account while the stranger's command runs.
      const resolved = yield* as(stranger)(rpc.AuctionResolve({ auctionId }))
      expect(resolved).toMatchObject({ status: "resolved", winner: bidderB.account, price: 150n })
      expect((yield* rpc.LedgerBalance({ account: poster.account })).held).toBe(150n)

      const report = yield* rpc.AuditVerify()
      expect(report).toMatchObject({ ok: true, problem: null, firstBadPosition: null })
      expect(report.ownerEventsChecked).toBeGreaterThan(0)
    }).pipe(Effect.provide(node)))
})
