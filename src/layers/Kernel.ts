/**
 * The event kernel a node runs on, composed from its config: SQLite journal, snapshots and checkpoints
 * in `<data>/journal.db`, the node key in `<data>/node.key`.
 */
import { Effect, Layer } from "effect"
import { NodeKey } from "../content/NodeKey.js"
import { ActorRegistry } from "../events/ActorRegistry.js"
import { findBadSnapshots, requireVerifiedJournal } from "../events/Audit.js"
import { Checkpoints } from "../events/Checkpoints.js"
import { instrumentedLayer } from "../events/JournalMetrics.js"
import * as MemoryJournal from "../events/MemoryJournal.js"
import { Snapshots } from "../events/Snapshots.js"
import { SqliteDatabase } from "../events/SqliteDatabase.js"
import * as SqliteJournal from "../events/SqliteJournal.js"
import type { NodeSettings } from "./NodeConfig.js"
import { journalFile, keyFile } from "./NodeConfig.js"

/**
 * A node writes on a journal only once its chain, signed heads and recorded head verify against the
 * node's key; snapshots that loading would ignore are reported at once (they cost a replay, not trust).
 */
const refuseUnverifiedJournal = (file: string) =>
  Layer.effectDiscard(
    Effect.gen(function*() {
      const key = yield* NodeKey
      yield* requireVerifiedJournal(file, { trustedKeys: [key.publicKey] })
      for (const bad of yield* findBadSnapshots(100)) yield* Effect.logWarning(bad.problem)
    })
  )

export const sqliteKernel = (settings: Pick<NodeSettings, "dataDir" | "synchronous">) => {
  const key = NodeKey.fromFile(keyFile(settings))
  const file = journalFile(settings)
  const stores = refuseUnverifiedJournal(file).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        instrumentedLayer(SqliteJournal.layer()),
        Snapshots.sqlite,
        Checkpoints.sqlite,
        ActorRegistry.layer
      )
    )
  )
  return stores.pipe(
    Layer.provide(SqliteDatabase.layer({ file, synchronous: settings.synchronous })),
    Layer.provideMerge(key)
  )
}

/**
 * The kernel of a copy of another node's feed (`<data>/feeds/<peer id>.db`): its journal read-only,
 * snapshots and checkpoints in memory (nothing is written to the copy), the feed's key known by its
 * public half, so its signed heads are the ones trusted.
 */
export const feedKernel = (feed: { readonly file: string; readonly publicKey: string }) =>
  Layer.mergeAll(SqliteJournal.readOnlyLayer(), Snapshots.memory, Checkpoints.memory, ActorRegistry.layer).pipe(
    Layer.provide(SqliteDatabase.layer({ file: feed.file, synchronous: "normal" })),
    Layer.provideMerge(NodeKey.publicOnly(feed.publicKey))
  )

export const memoryKernel = Layer.mergeAll(
  instrumentedLayer(MemoryJournal.layer),
  Snapshots.memory,
  Checkpoints.memory,
  ActorRegistry.layer
).pipe(
  Layer.provideMerge(NodeKey.ephemeral)
)
