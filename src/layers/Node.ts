/**
 * The layers of a running node, composed once here: kernel (SQLite journal, node key), subsystems,
 * policies, and the HTTP/RPC server. The CLI's direct mode uses the same services without a server.
 */
import { Layer } from "effect"
import { creditsPolicy, Ledger } from "../actors/economy/Ledger.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import { HttpServerLive } from "../http/Server.js"
import { NodeAudit } from "../node/NodeAudit.js"
import type { NodeSettings } from "../node/NodeConfig.js"
import { blobsDir, NodeConfig } from "../node/NodeConfig.js"
import { NodeStatus } from "../node/NodeStatus.js"
import { sqliteKernel } from "./Kernel.js"

/** Subsystems and node services on the node's data dir, with no server and no background policies. */
export const nodeServices = (settings: NodeSettings) =>
  Layer.mergeAll(NodeStatus.Default, NodeAudit.Default).pipe(
    Layer.provideMerge(Layer.mergeAll(Ledger.Default, Registry.Default, Optimizer.Default, BlobStore.layer({ root: blobsDir(settings), maxBytes: settings.maxContentBytes }))),
    Layer.provideMerge(sqliteKernel(settings)),
    Layer.provideMerge(NodeConfig.layer(settings))
  )

/** Everything `edge-net node start` runs: services, policies, and the server on host:port. */
export const nodeLive = (settings: NodeSettings) =>
  Layer.mergeAll(HttpServerLive, creditsPolicy).pipe(Layer.provide(nodeServices(settings)))
