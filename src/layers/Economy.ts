/**
 * The economy plugged into the subsystems that lean on it: stake decides who may bid and vote,
 * reputation prices compute and gates adapter sharing. Each subsystem names the port it needs; only
 * here, where the node is composed, is a port answered by the economy's services.
 */
import { Effect, Layer } from "effect"
import { Ledger } from "../actors/economy/Ledger.js"
import { NetworkParameters } from "../actors/economy/NetworkParameters.js"
import { Reputation } from "../actors/economy/ReputationService.js"
import { Rewards } from "../actors/economy/RewardService.js"
import { Staking } from "../actors/economy/StakeService.js"
import { Governance } from "../actors/governance/GovernanceService.js"
import { VotingPower } from "../actors/governance/VotingPower.js"
import { Auctions, BidEligibility } from "../actors/market/AuctionService.js"
import { MarketReputation } from "../actors/market/BondingCurve.js"
import { Market } from "../actors/market/MarketService.js"
import { AdapterSharingGate } from "../actors/registry/AdapterSharing.js"

/** The ports the market and governance declare, answered by stake and reputation. */
const economyAdapters = Layer.mergeAll(
  Layer.effect(
    BidEligibility,
    Effect.map(Staking, (staking) => ({ canBid: (node: string) => Effect.orDie(staking.hasMinStake(node)) }))
  ),
  Layer.effect(
    MarketReputation,
    Effect.map(Reputation, (reputation) => ({ reputationOf: (node: string) => Effect.orDie(reputation.score(node)) }))
  ),
  Layer.effect(
    VotingPower,
    Effect.map(Staking, (staking) => ({
      stakeAt: (node: string, position: number) => Effect.orDie(staking.stakeAt(node, position)),
      totalStakeAt: (position: number) => Effect.orDie(staking.totalActiveStakeAt(position)),
      activeStake: (node: string) => Effect.orDie(staking.activeStake(node))
    }))
  )
)

/** Ledger and parameters first; stake, reputation, rewards on them; market, auctions, governance on top. */
export const economyServices = Layer.mergeAll(Market.Default, Auctions.Default, Governance.Default).pipe(
  Layer.provideMerge(economyAdapters),
  Layer.provideMerge(Layer.mergeAll(Staking.Default, Reputation.Default, Rewards.Default)),
  Layer.provideMerge(Layer.mergeAll(Ledger.Default, NetworkParameters.Default))
)

/** The node's gate: bars from the registry's network parameters, reputation from the economy. */
export const economyAdapterSharingGate = Layer.effect(
  AdapterSharingGate,
  Effect.gen(function*() {
    const parameters = yield* NetworkParameters
    const reputation = yield* Reputation
    return {
      rules: Effect.map(Effect.orDie(parameters.current("registry")), ({ values }) => ({
        minReputationPpm: values["adapterShareMinReputationPpm"]!,
        sharesPerHour: Number(values["adapterSharesPerHour"]!),
        minQualityPpm: values["adapterMinQualityPpm"]!
      })),
      reputationPpm: (account: string) => Effect.orDie(reputation.score(account))
    }
  })
)
