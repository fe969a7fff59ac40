/**
 * Where each policy (durable subscription) got to in the log, so a restart resumes after the last
 * event it finished instead of starting over.
 */
import { Context, Duration, Effect, Layer, Schedule } from "effect"
import { isBusy, SqliteDatabase } from "./SqliteDatabase.js"

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
        // Retried off the event loop while the writer thread holds the lock. Should it stay busy, the
        // checkpoint is simply older: the policy redelivers a few events, which its commands absorb.
        save: (name, position) =>
          Effect.try({ try: () => void upsert.run(name, position), catch: (error) => error }).pipe(
            Effect.retry({ while: isBusy, schedule: Schedule.exponential(Duration.millis(1)), times: 10 }),
            Effect.catchIf(isBusy, () => Effect.void),
            Effect.orDie
          )
      }
    })
  )
}
