import { Layer } from "effect"
import * as path from "node:path"
import { NodeKey } from "../../src/content/NodeKey.js"
import { ActorRegistry } from "../../src/events/ActorRegistry.js"
import { Checkpoints } from "../../src/events/Checkpoints.js"
import * as MemoryJournal from "../../src/events/MemoryJournal.js"
import { Snapshots } from "../../src/events/Snapshots.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { tempDir } from "./TempDir.js"

/** Journal, snapshots and checkpoints in memory. */
export const memoryKernel = () =>
  Layer.mergeAll(MemoryJournal.layer, Snapshots.memory, Checkpoints.memory, ActorRegistry.layer).pipe(
    Layer.provide(NodeKey.ephemeral)
  )

/** Journal, snapshots and checkpoints in one SQLite file (a fresh one unless `file` is given). */
export const sqliteKernel = (file = path.join(tempDir(), "journal.db")) =>
  Layer.mergeAll(SqliteJournal.layer(), Snapshots.sqlite, Checkpoints.sqlite, ActorRegistry.layer).pipe(
    Layer.provide(SqliteDatabase.layer({ file })),
    Layer.provide(NodeKey.ephemeral)
  )
