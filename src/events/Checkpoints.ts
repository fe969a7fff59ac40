/**
 * Where each policy (durable subscription) got to in the log, so a restart resumes after the last
 * event it finished instead of starting over.
 */
import { Context, Effect, Layer } from "effect"
import { SqliteDatabase } from "./SqliteDatabase.js"

export class Checkpoints extends Context.Tag("edge-net/Checkpoints")<
  Checkpoints,
  {
    /** The last position the named consumer finished, 0 if none. */
    readonly load: (name: string) => Effect.Effect<number>
    readonly save: (name: string, position: number) => Effect.Effect<void>
  }
>() {
  static readonly memory = Layer.sync(Checkpoints, () => {
    const store = new Map<string, number>()
    return {
      load: (name) => Effect.sync(() => store.get(name) ?? 0),
      save: (name, position) => Effect.sync(() => void store.set(name, position))
    }
  })

  static readonly sqlite = Layer.effect(
    Checkpoints,
    Effect.map(SqliteDatabase, ({ db }) => {
      const select = db.prepare<[string], number>("SELECT position FROM checkpoints WHERE name = ?").pluck()
      const upsert = db.prepare(
        "INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position"
      )
      return {
        load: (name) => Effect.sync(() => select.get(name) ?? 0),
        save: (name, position) => Effect.sync(() => void upsert.run(name, position))
      }
    })
  )
}
