/**
 * Snapshots of actor state every N events, so loading an entity with a long history reads one row
 * and the events after it instead of the whole stream.
 */
import { Context, Effect, Layer, Option } from "effect"
import { isBusy, SqliteDatabase } from "./SqliteDatabase.js"

export interface Snapshot {
  readonly version: number
  /** The state encoded with its Schema, as JSON. */
  readonly state: unknown
}

export class Snapshots extends Context.Tag("edge-net/Snapshots")<
  Snapshots,
  {
    readonly load: (streamId: string) => Effect.Effect<Option.Option<Snapshot>>
    readonly save: (streamId: string, snapshot: Snapshot) => Effect.Effect<void>
  }
>() {
  static readonly memory = Layer.sync(Snapshots, () => {
    const store = new Map<string, string>()
    return {
      load: (streamId) =>
        Effect.sync(() => Option.map(Option.fromNullable(store.get(streamId)), (text) => JSON.parse(text) as Snapshot)),
      save: (streamId, snapshot) => Effect.sync(() => void store.set(streamId, JSON.stringify(snapshot)))
    }
  })

  static readonly sqlite = Layer.effect(
    Snapshots,
    Effect.map(SqliteDatabase, ({ db }) => {
      const select = db.prepare<[string], { version: number; state: string }>("SELECT version, state FROM snapshots WHERE stream_id = ?")
      const upsert = db.prepare(
        `INSERT INTO snapshots (stream_id, version, state) VALUES (?, ?, ?)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, state = excluded.state WHERE excluded.version >= snapshots.version`
      )
      return {
        load: (streamId) =>
          Effect.sync(() =>
            Option.map(Option.fromNullable(select.get(streamId)), (row) => ({ version: row.version, state: JSON.parse(row.state) }))
          ),
        // A snapshot is only a shortcut: when the writer thread holds the lock, this one is skipped.
        save: (streamId, snapshot) =>
          Effect.try({ try: () => void upsert.run(streamId, snapshot.version, JSON.stringify(snapshot.state)), catch: (error) => error }).pipe(
            Effect.catchIf(isBusy, () => Effect.void),
            Effect.orDie
          )
      }
    })
  )
}
