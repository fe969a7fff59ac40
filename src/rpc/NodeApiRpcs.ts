/** Every RPC group a node serves at /rpc, merged: the contract clients build against. */
import { AdapterPoolRpcs } from "../actors/adapters/AdapterPoolRpc.js"
import { AdapterTrainingRpcs } from "../actors/adapters/AdapterTrainingRpc.js"
import { EconomyRpcs } from "../actors/economy/EconomyRpc.js"
import { LedgerRpcs } from "../actors/economy/LedgerRpc.js"
import { GovernanceRpcs } from "../actors/governance/GovernanceRpc.js"
import { LearningPeerRpcs, LearningRpcs } from "../actors/learning/LearningRpc.js"
import { MarketRpcs } from "../actors/market/MarketRpc.js"
import { OptimizerRpcs } from "../actors/optimizer/OptimizerRpc.js"
import { RegistryRpcs } from "../actors/registry/RegistryRpc.js"
import { AdapterPeersRpcs } from "./AdapterPeersRpc.js"
import { AdaptersRpcs } from "./AdaptersRpc.js"
import { ModelsRpcs } from "./ModelsRpc.js"
import { NodeRpcs } from "./NodeRpc.js"
import { OperatorRpcs } from "./OperatorRpc.js"
import { PeersRpcs } from "./PeersRpc.js"

export const NodeApiRpcs = NodeRpcs.merge(LedgerRpcs).merge(RegistryRpcs).merge(EconomyRpcs).merge(MarketRpcs).merge(
  GovernanceRpcs
).merge(OperatorRpcs).merge(AdapterPoolRpcs).merge(PeersRpcs)
  .merge(AdapterPeersRpcs).merge(OptimizerRpcs).merge(AdapterTrainingRpcs).merge(AdaptersRpcs)
  .merge(ModelsRpcs).merge(LearningRpcs).merge(LearningPeerRpcs)
