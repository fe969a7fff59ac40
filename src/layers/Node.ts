/**
 * The layers of a running node, composed once here: kernel (SQLite journal, node key) and subsystems;
 * the server (http/Server.ts) runs them with the policies (NodePolicies.ts), the CLI's direct mode without.
 */
import { Layer } from "effect"
import { AdapterPool } from "../actors/adapters/AdapterPoolService.js"
import { Adapters } from "../actors/adapters/Adapters.js"
import { AdapterTraining } from "../actors/adapters/AdapterTraining.js"
import { GossipLearning } from "../actors/learning/GossipLearning.js"
import { Learning } from "../actors/learning/Learning.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import { Models } from "../content/Models.js"
import { defaultConfig } from "../content/ModelsConfig.js"
import { TrustStore } from "../content/TrustStore.js"
import * as Peers from "../net/Peers.js"
import { charterLayer } from "./Charter.js"
import { economyAdapterSharingGate, economyServices } from "./Economy.js"
import { feedKernel, sqliteKernel } from "./Kernel.js"
import { NodeAudit } from "./NodeAudit.js"
import type { NodeSettings } from "./NodeConfig.js"
import { blobsDir, NodeConfig, trustDir } from "./NodeConfig.js"
import { NodeDeadLetters } from "./NodeDeadLetters.js"
import { NodeStatus } from "./NodeStatus.js"

/** The subsystems on a kernel: what a node runs, and what an audit of another node's feed replays. */
const subsystemsOn = <E, R>(settings: NodeSettings, kernel: Layer.Layer<KernelServices, E, R>) =>
  Layer.mergeAll(
    // The registry gates adapter sharing on the economy's reputation and the registry's parameters.
    // The gate stays in the context: the peer's adapter swarm applies it to announcements too.
    Registry.Default.pipe(Layer.provideMerge(economyAdapterSharingGate)),
    Optimizer.Default,
    AdapterPool.Default,
    AdapterTraining.Default,
    NetworkCharter.Default,
    Models.Default(nodeModelsConfig),
    Learning.Default,
    GossipLearning.Default
  ).pipe(
    Layer.provideMerge(Adapters.Default),
    Layer.provideMerge(TrustStore.Default(trustDir(settings))),
    Layer.provideMerge(BlobStore.layer({ root: blobsDir(settings), maxBytes: settings.maxContentBytes })),
    Layer.provideMerge(economyServices),
    Layer.provideMerge(kernel),
    Layer.provideMerge(NodeConfig.layer(settings))
  )

/**
 * How a node pulls: from the registry it is asked to pull from, its peers and the blobs' announced
 * holders, never from public IPFS gateways (a node on a private network must not reach out on its
 * own), and never evicting what it holds to make room (its blobs back its registry).
 */
const nodeModelsConfig = {
  ...defaultConfig(),
  ipfs: { gateways: [], timeout: 30_000 },
  cache: { ...defaultConfig().cache, autoCleanup: false }
}

type KernelServices = Layer.Layer.Success<ReturnType<typeof sqliteKernel>>

/**
 * Subsystems and node services on the node's data dir, with no server and no background policies;
 * its peers are the peer book alone (a running node's peer is `nodeLive`'s).
 */
export const nodeServices = (settings: NodeSettings) =>
  Layer.mergeAll(
    NodeStatus.Default,
    NodeAudit.Default,
    NodeDeadLetters.Default,
    charterLayer(settings),
    Peers.offline(settings.dataDir)
  ).pipe(
    Layer.provideMerge(subsystemsOn(settings, sqliteKernel(settings)))
  )

/**
 * The audit of a followed feed's verified copy: the same subsystems replayed from the copy, which
 * nothing writes to (no charter founded, no policies, snapshots in memory).
 */
export const feedServices = (settings: NodeSettings, feed: { readonly file: string; readonly publicKey: string }) =>
  NodeAudit.Default.pipe(Layer.provideMerge(subsystemsOn(settings, feedKernel(feed))))
