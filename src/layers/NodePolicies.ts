/**
 * The policies a node runs, each on its own checkpoint: they carry one subsystem's events into another's
 * commands in the background, and run once more on one event when an operator retries a dead letter.
 */
import { Effect, Layer } from "effect"
import { creditsPolicyDefinition } from "../actors/economy/Ledger.js"
import { rewardsSettlementPolicyDefinition } from "../actors/economy/RewardService.js"
import { stakingSettlementPolicyDefinition } from "../actors/economy/StakeService.js"
import { parameterChangesPolicyDefinition } from "../actors/governance/GovernancePolicies.js"
import { auctionSettlementPolicyDefinition } from "../actors/market/AuctionPolicies.js"
import { leaseOutcomesPolicyDefinition } from "../actors/market/LeasePolicies.js"
import * as Policy from "../events/Policy.js"

/** Every policy of the node, with the services it needs: what `nodePolicies` runs and a retry looks up by name. */
export const nodePolicyDefinitions = Effect.all([
  creditsPolicyDefinition,
  stakingSettlementPolicyDefinition,
  rewardsSettlementPolicyDefinition,
  auctionSettlementPolicyDefinition,
  Policy.withServices(leaseOutcomesPolicyDefinition),
  Policy.withServices(parameterChangesPolicyDefinition)
])

/** The node's policies running in the background for as long as the layer lives. */
export const nodePolicies = Layer.unwrapEffect(
  Effect.map(
    nodePolicyDefinitions,
    (definitions) => definitions.map(Policy.layer).reduce((all, layer) => Layer.merge(all, layer))
  )
)
