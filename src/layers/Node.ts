/**
 * The layers of a running node, composed once here: kernel (SQLite journal, node key) and subsystems;
 * the server (http/Server.ts) runs them with the policies (NodePolicies.ts), the CLI's direct mode without.
 */
import { Layer } from "effect"
import { AdapterPool } from "../actors/adapters/AdapterPoolService.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import { charterLayer } from "./Charter.js"
import { economyAdapterSharingGate, economyServices } from "./Economy.js"
import { sqliteKernel } from "./Kernel.js"
import { NodeAudit } from "./NodeAudit.js"
import type { NodeSettings } from "./NodeConfig.js"
import { blobsDir, NodeConfig } from "./NodeConfig.js"
import { NodeDeadLetters } from "./NodeDeadLetters.js"
import { NodeStatus } from "./NodeStatus.js"

/** Subsystems and node services on the node's data dir, with no server and no background policies. */
export const nodeServices = (settings: NodeSettings) =>
  Layer.mergeAll(NodeStatus.Default, NodeAudit.Default, NodeDeadLetters.Default, charterLayer(settings)).pipe(
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
