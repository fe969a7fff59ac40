/**
 * The layers of a running node, composed once here: kernel (SQLite journal, node key), subsystems and
 * policies. The server (http/Server.ts) runs on them; the CLI's direct mode uses them without one.
 */
import { Effect, Layer } from "effect"
import { AdapterPool } from "../actors/adapters/AdapterPoolService.js"
import { creditsPolicy, Ledger } from "../actors/economy/Ledger.js"
import { NetworkParameters } from "../actors/economy/ParametersService.js"
import { Reputation } from "../actors/economy/ReputationService.js"
import { Rewards, rewardsSettlementPolicy } from "../actors/economy/RewardService.js"
import { Staking, stakingSettlementPolicy } from "../actors/economy/StakeService.js"
import { parameterChangesPolicy } from "../actors/governance/GovernancePolicies.js"
import { Governance } from "../actors/governance/GovernanceService.js"
import { VotingPower } from "../actors/governance/VotingPower.js"
import { auctionSettlementPolicy } from "../actors/market/AuctionPolicies.js"
import { Auctions, BidEligibility } from "../actors/market/AuctionService.js"
import { MarketReputation } from "../actors/market/BondingCurve.js"
import { leaseOutcomesPolicy } from "../actors/market/LeasePolicies.js"
import { Market } from "../actors/market/MarketService.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { economyAdapterSharingGate } from "../actors/registry/AdapterSharing.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import { NodeAudit } from "./NodeAudit.js"
import type { NodeSettings } from "./NodeConfig.js"
import { blobsDir, NodeConfig } from "./NodeConfig.js"
import { NodeStatus } from "./NodeStatus.js"
import { charterLayer } from "./Charter.js"
import { sqliteKernel } from "./Kernel.js"

/** The economy plugged into the market and governance: stake decides who may bid and vote, reputation prices. */
const economyAdapters = Layer.mergeAll(
  Layer.effect(BidEligibility, Effect.map(Staking, (staking) => ({ canBid: (node: string) => Effect.orDie(staking.hasMinStake(node)) }))),
  Layer.effect(MarketReputation, Effect.map(Reputation, (reputation) => ({ reputationOf: (node: string) => Effect.orDie(reputation.score(node)) }))),
  Layer.effect(VotingPower, Effect.map(Staking, (staking) => ({
    stakeAt: (node: string, position: number) => Effect.orDie(staking.stakeAt(node, position)),
    totalStakeAt: (position: number) => Effect.orDie(staking.totalActiveStakeAt(position)),
    activeStake: (node: string) => Effect.orDie(staking.activeStake(node))
  })))
)

/** Ledger and parameters first; stake, reputation, rewards on them; market, auctions, governance on top. */
const economyServices = Layer.mergeAll(Market.Default, Auctions.Default, Governance.Default).pipe(
  Layer.provideMerge(economyAdapters),
  Layer.provideMerge(Layer.mergeAll(Staking.Default, Reputation.Default, Rewards.Default)),
  Layer.provideMerge(Layer.mergeAll(Ledger.Default, NetworkParameters.Default))
)

/** Subsystems and node services on the node's data dir, with no server and no background policies. */
export const nodeServices = (settings: NodeSettings) =>
  Layer.mergeAll(NodeStatus.Default, NodeAudit.Default, charterLayer(settings)).pipe(
    // The registry gates adapter sharing on the economy's reputation and the registry's parameters.
    Layer.provideMerge(Layer.mergeAll(
      Registry.Default.pipe(Layer.provide(economyAdapterSharingGate)), Optimizer.Default, AdapterPool.Default, NetworkCharter.Default, BlobStore.layer({ root: blobsDir(settings), maxBytes: settings.maxContentBytes })
    )),
    Layer.provideMerge(economyServices),
    Layer.provideMerge(sqliteKernel(settings)),
    Layer.provideMerge(NodeConfig.layer(settings))
  )

/** The policies that carry one subsystem's events into another's commands, each on its own checkpoint. */
export const nodePolicies = Layer.mergeAll(
  creditsPolicy, stakingSettlementPolicy, rewardsSettlementPolicy, auctionSettlementPolicy, leaseOutcomesPolicy, parameterChangesPolicy
)
