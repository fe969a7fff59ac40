/**
 * The layers of a running node, composed once here: kernel (SQLite journal, node key), subsystems and
 * policies. The server (http/Server.ts) runs on them; the CLI's direct mode uses them without one.
 */
import { Layer } from "effect"
import { AdapterPool } from "../actors/adapters/AdapterPoolService.js"
import { creditsPolicy } from "../actors/economy/Ledger.js"
import { rewardsSettlementPolicy } from "../actors/economy/RewardService.js"
import { stakingSettlementPolicy } from "../actors/economy/StakeService.js"
import { parameterChangesPolicy } from "../actors/governance/GovernancePolicies.js"
import { auctionSettlementPolicy } from "../actors/market/AuctionPolicies.js"
import { leaseOutcomesPolicy } from "../actors/market/LeasePolicies.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import * as Peers from "../net/Peers.js"
import { charterLayer } from "./Charter.js"
import { economyAdapterSharingGate, economyServices } from "./Economy.js"
import { sqliteKernel } from "./Kernel.js"
import { NodeAudit } from "./NodeAudit.js"
import type { NodeSettings } from "./NodeConfig.js"
import { blobsDir, NodeConfig } from "./NodeConfig.js"
import { NodeStatus } from "./NodeStatus.js"

/**
 * Subsystems and node services on the node's data dir, with no server and no background policies;
 * its peers are the peer book alone (a running node's peer is `nodeLive`'s).
 */
export const nodeServices = (settings: NodeSettings) =>
  Layer.mergeAll(NodeStatus.Default, NodeAudit.Default, charterLayer(settings), Peers.offline(settings.dataDir)).pipe(
    // The registry gates adapter sharing on the economy's reputation and the registry's parameters.
    Layer.provideMerge(Layer.mergeAll(
      Registry.Default.pipe(Layer.provide(economyAdapterSharingGate)),
      Optimizer.Default,
      AdapterPool.Default,
      NetworkCharter.Default,
      BlobStore.layer({ root: blobsDir(settings), maxBytes: settings.maxContentBytes })
    )),
    Layer.provideMerge(economyServices),
    Layer.provideMerge(sqliteKernel(settings)),
    Layer.provideMerge(NodeConfig.layer(settings))
  )

/** The policies that carry one subsystem's events into another's commands, each on its own checkpoint. */
export const nodePolicies = Layer.mergeAll(
  creditsPolicy,
  stakingSettlementPolicy,
  rewardsSettlementPolicy,
  auctionSettlementPolicy,
  leaseOutcomesPolicy,
  parameterChangesPolicy
)
