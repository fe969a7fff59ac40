/**
 * `audit replay` on a node that used every subsystem: each actor the node runs is replayed and equal
 * to its live state, and a stream category that no actor replays fails the audit instead of passing unseen.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as crypto from "node:crypto"
import { AdapterPool } from "../../src/actors/adapters/AdapterPoolService.js"
import { AdapterTraining } from "../../src/actors/adapters/AdapterTraining.js"
import { Ledger } from "../../src/actors/economy/Ledger.js"
import { NetworkParameters } from "../../src/actors/economy/NetworkParameters.js"
import { Reputation } from "../../src/actors/economy/ReputationService.js"
import { REWARDS_ACCOUNT } from "../../src/actors/economy/Reward.js"
import { Rewards } from "../../src/actors/economy/RewardService.js"
import { Staking } from "../../src/actors/economy/StakeService.js"
import { Governance } from "../../src/actors/governance/GovernanceService.js"
import { GossipLearning } from "../../src/actors/learning/GossipLearning.js"
import { Learning } from "../../src/actors/learning/Learning.js"
import { Auctions } from "../../src/actors/market/AuctionService.js"
import { Market } from "../../src/actors/market/MarketService.js"
import { commitmentOf } from "../../src/actors/market/TaskAuction.js"
import { Optimizer } from "../../src/actors/optimizer/Optimizer.js"
import { Registry } from "../../src/actors/registry/RegistryService.js"
import { tokenizerFromFile } from "../../src/compute/tokenizer/TokenizerFile.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { parseManifest } from "../../src/content/Manifest.js"
import type { ManifestSigner } from "../../src/content/ManifestSigning.js"
import { signAsPublisher } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { streamCategory } from "../../src/domain/Ids.js"
import { Journal } from "../../src/events/Journal.js"
import { nodeServices } from "../../src/layers/Node.js"
import { NodeAudit } from "../../src/layers/NodeAudit.js"
import { storeRandomAdapter } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

const node = () => nodeServices({ dataDir: tempDir(), host: "127.0.0.1", port: 0, synchronous: "normal" })

const publisherPair = keyPairFromSeed(new Uint8Array(32).fill(7))
const publisher: ManifestSigner = {
  keyId: "team",
  publicKey: publisherPair.publicKey,
  sign: (message) => publisherPair.sign(message)
}

const manifestOf = (id: string, extra: Record<string, unknown>) =>
  Either.getOrThrow(parseManifest({
    id,
    name: id,
    version: "1.0.0",
    license: "MIT",
    artifacts: {
      model: {
        filename: "model.onnx",
        size: 1000,
        sha256: crypto.hash("sha256", id, "hex"),
        cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
      }
    },
    publishedAt: "2026-01-03T00:00:00Z",
    publishedBy: "team",
    expiresAt: "2099-01-01T00:00:00Z",
    ...extra
  }))

/** One command or more to every subsystem a node runs (the charter is founded when the node starts). */
const everySubsystemAtWork = Effect.gen(function*() {
  const ledger = yield* Ledger
  for (
    const [account, amount] of [["provider", 10_000n], ["trader", 1_000n], ["bidder", 500n], ["poster", 1_000n], [
      REWARDS_ACCOUNT,
      100n
    ]] as const
  ) {
    yield* ledger.mint(account, amount, `genesis/${account}`)
  }
  yield* ledger.transfer("trader", "poster", 10n, "tip-1")
  const market = yield* Market
  yield* market.issueCompute("provider", 1_000n, "issue-1")
  yield* market.addLiquidity("provider", { computeDesired: 1_000n, ruvDesired: 10_000n }, "seed-1")
  yield* market.buy("trader", { exact: "in", amountIn: 100n, minAmountOut: 1n }, "swap-1")
  yield* (yield* Staking).stake("bidder", 200n, "stake-1")
  yield* (yield* Reputation).recordSuccess("bidder", 1, "task-1")
  yield* (yield* Rewards).grant("bidder", 30n, "task-1")
  const auctions = yield* Auctions
  yield* auctions.open({
    auctionId: "a1",
    poster: "poster",
    task: { kind: "inference" },
    maxPrice: 100n,
    minBids: 1,
    commitPeriodMs: 60_000,
    revealPeriodMs: 60_000,
    leasePeriodMs: 60_000
  })
  yield* auctions.commit("a1", "bidder", commitmentOf({ auctionId: "a1", bidder: "bidder", price: 40n, salt: "s" }))
  yield* (yield* Governance).propose({
    proposer: "bidder",
    parameter: "feeBps",
    value: 40n,
    description: "a lower AMM fee"
  })
  yield* (yield* NetworkParameters).set("votingDelayMs", 5_000n, { commandId: "genesis/votingDelayMs" })
  yield* (yield* AdapterPool).load({ adapterId: "chat", version: "1.0.0", bytes: 1_000, embedding: [1, 0] })
  yield* (yield* Optimizer).request("job-1", { model: { sha256: "ab".repeat(32), size: 1_000 }, quantization: "INT8" })
  // A training job on bytes that are no model: requested, then failed, both recorded.
  const failedTraining = yield* Effect.either((yield* AdapterTraining).train({
    base: {
      bytes: new Uint8Array([1, 2, 3]),
      tokenizer: yield* tokenizerFromFile("models/reference/tiny-lm/tokenizer.json"),
      id: "not-a-model"
    },
    data: { content: "some text to train on", name: "notes.txt" },
    config: { rank: 2, maxSteps: 1 },
    adapter: { id: "never", version: "1.0.0" },
    storeRoot: tempDir("audit-coverage-adapters-"),
    jobId: "train-1"
  }))
  expect(Either.isLeft(failedTraining)).toBe(true)
  yield* storeRandomAdapter((yield* BlobStore).root, "tiny-lm", "round-base", 2, 3, 4)
  yield* (yield* Learning).open({
    roundId: "round-1",
    coordinator: "poster",
    base: { id: "round-base" },
    task: "style",
    rule: { _tag: "median" },
    durationMs: 60_000,
    quorum: 2,
    result: { id: "round-result", version: "1.0.0" }
  })
  yield* (yield* GossipLearning).start({ adapter: { id: "round-base" }, samples: 10, fanout: 2, intervalMs: 60_000 })
  const registry = yield* Registry
  yield* registry.publish(signAsPublisher(manifestOf("tiny-lm", { type: "text-generation" }), publisher))
  // A new key's reputation (0.5) is under the sharing bar (0.7): the bar is lowered as a test network's genesis would.
  yield* (yield* NetworkParameters).set("adapterShareMinReputationPpm", 400_000n, {
    commandId: "genesis/adapterShareMinReputationPpm"
  })
  yield* registry.publishAdapter(signAsPublisher(
    manifestOf("tiny-chat", {
      type: "adapter",
      adapter: { baseModel: "tiny-lm", rank: 4, alpha: 8, domain: "chat", quality: 0.9 }
    }),
    publisher
  ))
})

/** Every stream category the log holds, read from the stored records. */
const categoriesInLog = Effect.gen(function*() {
  const journal = yield* Journal
  const categories = new Set<string>()
  for (const record of yield* journal.readRecords(1, 100_000)) categories.add(streamCategory(record.streamId))
  return [...categories].sort()
})

describe("audit replay covers every actor the node runs", () => {
  it.scoped(
    "after every subsystem has worked, each actor is reported, has entities, and equals its replay",
    () =>
      Effect.gen(function*() {
        yield* everySubsystemAtWork
        const report = yield* (yield* NodeAudit).replay()
        const reported = report.actors.map((actor) => actor.category)
        // The node's actors, each written to by the work above: a new actor the work leaves out shows here as 0 entities.
        expect(reported).toEqual([
          "Account",
          "Adapter",
          "AdapterPool",
          "Auction",
          "Charter",
          "Gossip",
          "Model",
          "OptimizerJob",
          "Parameters",
          "Pool",
          "Proposal",
          "Reputation",
          "Reward",
          "Round",
          "Stake",
          "TrainingJob"
        ])
        expect(report.actors.filter((actor) => actor.entities === 0).map((actor) => actor.category)).toEqual([])
        // Every category the log holds is one the audit replayed.
        expect((yield* categoriesInLog).filter((category) => !reported.includes(category))).toEqual([])
        expect(report.unreplayed).toEqual([])
        expect(report.actors.flatMap((actor) => actor.mismatches)).toEqual([])
        expect(report.ok).toBe(true)
      }).pipe(Effect.provide(node())),
    60_000
  )

  it.scoped(
    "events of a category no actor replays fail the audit, named with their count",
    () =>
      Effect.gen(function*() {
        yield* (yield* Ledger).mint("alice", 10n, "genesis/alice")
        const journal = yield* Journal
        // Written past every service, as a rogue writer on the node's journal would.
        yield* journal.append("Backdoor-1", "none", [{ eventType: "Granted", payload: { to: "mallory" } }, {
          eventType: "Granted",
          payload: { to: "eve" }
        }])
        const report = yield* (yield* NodeAudit).replay()
        expect(report.unreplayed).toEqual([{ category: "Backdoor", events: 2 }])
        expect(report.actors.flatMap((actor) => actor.mismatches)).toEqual([])
        expect(report.ok).toBe(false)
      }).pipe(Effect.provide(node())),
    60_000
  )
})
