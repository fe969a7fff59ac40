/**
 * Snapshots of actor state every N events, so loading an entity with a long history reads one row
 * and the events after it instead of the whole stream. A snapshot names the event it was taken at
 * (version, position, hash) and, on disk, carries the node's signature, so a doctored one is noticed.
 */
import { Context, Effect, Layer, Option } from "effect"
import * as crypto from "node:crypto"
import { NodeKey, verifySignature } from "../content/NodeKey.js"
import { isBusy, SqliteDatabase } from "./SqliteDatabase.js"

export interface Snapshot {
  /** The stream version the state includes. */
  readonly version: number
  /** Global position and hash of the stream's event at `version`: the snapshot holds only if that event does. */
  readonly position: number
  readonly eventHash: string
  /** The state encoded with its Schema, as JSON. */
  readonly state: unknown
}

/** A stored snapshot as found, for audit: `sealed` is false when its signature does not cover what is stored. */
export interface StoredSnapshot {
  readonly streamId: string
  readonly snapshot: Snapshot
  readonly sealed: boolean
}

export interface SnapshotsService {
  /** The stream's snapshot, or none; one whose seal does not verify is logged and never returned. */
  readonly load: (streamId: string) => Effect.Effect<Option.Option<Snapshot>>
  readonly save: (streamId: string, snapshot: Snapshot) => Effect.Effect<void>
  /** Stored snapshots in stream id order after `afterStreamId`, sealed or not, at most `limit`. */
  readonly stored: (afterStreamId: string, limit: number) => Effect.Effect<ReadonlyArray<StoredSnapshot>>
}

/** What the node signs for a snapshot: where it stands and the SHA-256 of the stored state text. */
const sealMessage = (streamId: string, version: number, position: number, eventHash: string, stateText: string) =>
  `edge-net/snapshot/v1\n${streamId}\n${version}\n${position}\n${eventHash}\n${crypto.hash("sha256", stateText, "hex")}`

interface SnapshotRow {
  readonly stream_id: string
  readonly version: number
  readonly position: number
  readonly event_hash: string
  readonly state: string
  readonly seal: string
}

export class Snapshots extends Context.Tag("edge-net/Snapshots")<Snapshots, SnapshotsService>() {
  static readonly memory = Layer.sync(Snapshots, (): SnapshotsService => {
    const store = new Map<string, Snapshot>()
    return {
      // Copies in and out, as on disk: a caller's later mutation cannot reach a stored state.
      load: (streamId) =>
        Effect.sync(() =>
          Option.map(Option.fromNullable(store.get(streamId)), (snapshot) => structuredClone(snapshot))
        ),
      save: (streamId, snapshot) => Effect.sync(() => void store.set(streamId, structuredClone(snapshot))),
      stored: (afterStreamId, limit) =>
        Effect.sync(() =>
          [...store.keys()]
            .filter((streamId) => streamId > afterStreamId)
            .sort()
            .slice(0, limit)
            .flatMap((streamId) => {
              const snapshot = store.get(streamId)
              return snapshot === undefined ? [] : [{ streamId, snapshot: structuredClone(snapshot), sealed: true }]
            })
        )
    }
  })

  static readonly sqlite = Layer.effect(
    Snapshots,
    Effect.gen(function*() {
      const { db } = yield* SqliteDatabase
      const key = yield* NodeKey
      const select = db.prepare<[string], SnapshotRow>(
        "SELECT stream_id, version, position, event_hash, state, seal FROM snapshots WHERE stream_id = ?"
      )
      const page = db.prepare<[string, number], SnapshotRow>(
        "SELECT stream_id, version, position, event_hash, state, seal FROM snapshots WHERE stream_id > ? ORDER BY stream_id LIMIT ?"
      )
      const upsert = db.prepare(
        `INSERT INTO snapshots (stream_id, version, position, event_hash, state, seal) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, position = excluded.position, event_hash = excluded.event_hash,
           state = excluded.state, seal = excluded.seal
         WHERE excluded.version >= snapshots.version`
      )
      const sealed = (row: SnapshotRow) =>
        verifySignature(
          key.publicKey,
          sealMessage(row.stream_id, row.version, row.position, row.event_hash, row.state),
          row.seal
        )
      const toStored = (row: SnapshotRow): StoredSnapshot => {
        const snapshot = { version: row.version, position: row.position, eventHash: row.event_hash }
        // The seal is checked first: only text this node wrote (which always parses) is parsed.
        if (!sealed(row)) return { streamId: row.stream_id, snapshot: { ...snapshot, state: null }, sealed: false }
        return { streamId: row.stream_id, snapshot: { ...snapshot, state: JSON.parse(row.state) }, sealed: true }
      }
      const service: SnapshotsService = {
        load: (streamId) =>
          Effect.suspend(() => {
            const row = select.get(streamId)
            if (row === undefined) return Effect.succeed(Option.none())
            const found = toStored(row)
            return found.sealed
              ? Effect.succeed(Option.some(found.snapshot))
              : Effect.as(
                Effect.logWarning(
                  `snapshot of ${streamId} at version ${row.version} is not sealed by this node: ignored, state rebuilt from the journal`
                ),
                Option.none()
              )
          }),
        // A snapshot is only a shortcut: when the writer thread holds the lock, this one is skipped.
        save: (streamId, snapshot) =>
          Effect.try({
            try: () => {
              const stateText = JSON.stringify(snapshot.state)
              const seal = key.sign(
                sealMessage(streamId, snapshot.version, snapshot.position, snapshot.eventHash, stateText)
              )
              upsert.run(streamId, snapshot.version, snapshot.position, snapshot.eventHash, stateText, seal)
            },
            catch: (error) => error
          }).pipe(Effect.catchIf(isBusy, () => Effect.void), Effect.orDie),
        stored: (afterStreamId, limit) => Effect.sync(() => page.all(afterStreamId, limit).map(toStored))
      }
      return service
    })
  )
}
