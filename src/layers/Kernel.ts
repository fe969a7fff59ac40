/**
 * The event kernel a node runs on, composed from its config: SQLite journal, snapshots and checkpoints
 * in `<data>/journal.db`, the node key in `<data>/node.key`.
 */
import { Layer } from "effect"
import { NodeKey } from "../content/NodeKey.js"
import { Checkpoints } from "../events/Checkpoints.js"
import * as MemoryJournal from "../events/MemoryJournal.js"
import { Snapshots } from "../events/Snapshots.js"
import { SqliteDatabase } from "../events/SqliteDatabase.js"
import * as SqliteJournal from "../events/SqliteJournal.js"
import type { NodeSettings } from "../node/NodeConfig.js"
import { journalFile, keyFile } from "../node/NodeConfig.js"

export const sqliteKernel = (settings: Pick<NodeSettings, "dataDir" | "synchronous">) => {
  const key = NodeKey.fromFile(keyFile(settings))
  const stores = Layer.mergeAll(SqliteJournal.layer(), Snapshots.sqlite, Checkpoints.sqlite).pipe(
    Layer.provide(SqliteDatabase.layer({ file: journalFile(settings), synchronous: settings.synchronous }))
  )
  return stores.pipe(Layer.provideMerge(key))
}

export const memoryKernel = Layer.mergeAll(MemoryJournal.layer, Snapshots.memory, Checkpoints.memory).pipe(
  Layer.provideMerge(NodeKey.ephemeral)
)
