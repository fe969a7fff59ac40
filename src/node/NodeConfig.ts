/**
 * Where a node keeps its state and where it listens. Resolved once at the edge (CLI flags, then
 * environment, then defaults) and handed to every layer that needs it.
 */
import { Context, Layer } from "effect"
import * as path from "node:path"
import type { Synchronous } from "../events/SqliteDatabase.js"

export interface NodeSettings {
  readonly dataDir: string
  readonly host: string
  readonly port: number
  readonly synchronous: Synchronous
  /** Cap of the node's blob store (`<data>/content`); published artifacts are pinned and never evicted. */
  readonly maxContentBytes?: number | undefined
  /** Parameter values applied at start while never changed (`EDGE_NET_GENESIS`, e.g. for a test network). */
  readonly genesisParameters?: Readonly<Record<string, bigint>> | undefined
}

export const DEFAULT_PORT = 7878
export const DEFAULT_HOST = "127.0.0.1"

/** `--data`, else `EDGE_NET_HOME`, else `./.edge-net`. */
export const resolveDataDir = (flag: string | undefined): string =>
  path.resolve(flag ?? process.env["EDGE_NET_HOME"] ?? ".edge-net")

export const journalFile = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "journal.db")
export const blobsDir = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "content")
export const keyFile = (settings: Pick<NodeSettings, "dataDir">) => path.join(settings.dataDir, "node.key")

export class NodeConfig extends Context.Tag("edge-net/NodeConfig")<NodeConfig, NodeSettings>() {
  static readonly layer = (settings: NodeSettings) => Layer.succeed(NodeConfig, settings)
}
