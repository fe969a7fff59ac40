/**
 * Where each policy (durable subscription) got to in the log, so a restart resumes after the last
 * event it finished instead of starting over, and the events it gave up on (its dead letters).
 *
 * Dead letters live here, in the journal's database beside the checkpoints, not as journal events:
 * they are this node's processing state, like a checkpoint, not facts of the network. An event would
 * be hash-chained, signed and followed by every peer, and a peer replaying it would learn nothing
 * about its own policies. Kept here, a dead letter and the checkpoint that moves past its event are
 * written in one transaction: a crash cannot skip an event without its record, nor record it twice.
 */
import { Context, Duration, Effect, Layer, Schedule, Schema } from "effect"
import { isBusy, SqliteDatabase } from "./SqliteDatabase.js"

/** An event a policy failed on every time it tried, and what the last failure was. */
export const DeadLetter = Schema.Struct({
  policy: Schema.String,
  position: Schema.Number,
  streamId: Schema.String,
  eventType: Schema.String,
  /** The last failure, as the log printed it (cut to DEAD_LETTER_ERROR_CHARS). */
  error: Schema.String,
  attempts: Schema.Number,
  failedAt: Schema.String
})
export type DeadLetter = typeof DeadLetter.Type

export const PolicyCheckpoint = Schema.Struct({ name: Schema.String, position: Schema.Number })
export type PolicyCheckpoint = typeof PolicyCheckpoint.Type

/** A failure's text is kept whole up to this, so a stack trace cannot grow the table without bound. */
export const DEAD_LETTER_ERROR_CHARS = 4_000

export class Checkpoints extends Context.Tag("edge-net/Checkpoints")<
  Checkpoints,
  {
    /** The last position the named consumer finished, 0 if none. */
    readonly load: (name: string) => Effect.Effect<number>
    readonly save: (name: string, position: number) => Effect.Effect<void>
    /** Every checkpoint, by name. */
    readonly all: Effect.Effect<ReadonlyArray<PolicyCheckpoint>>
    /**
     * Records the dead letter and moves its policy's checkpoint to the event (never back), at once:
     * the policy goes on after it, and after a restart too. Recorded again, the letter takes the new
     * error and time, and adds the new attempts to the old.
     */
    readonly deadLetter: (letter: DeadLetter) => Effect.Effect<void>
    /** The newest dead letters first, at most `limit`. */
    readonly deadLetters: (limit: number) => Effect.Effect<ReadonlyArray<DeadLetter>>
    readonly deadLetterCount: Effect.Effect<number>
    /** The dead letter of `policy` at `position`, if there is one. */
    readonly findDeadLetter: (policy: string, position: number) => Effect.Effect<DeadLetter | undefined>
    /** Forgets a dead letter (its event was handled after all, or an operator let it go); false if there was none. */
    readonly removeDeadLetter: (policy: string, position: number) => Effect.Effect<boolean>
  }
>() {
  static readonly memory = Layer.sync(Checkpoints, () => {
    const store = new Map<string, number>()
    const letters = new Map<string, DeadLetter>()
    return {
      load: (name) => Effect.sync(() => store.get(name) ?? 0),
      save: (name, position) => Effect.sync(() => void store.set(name, position)),
      all: Effect.sync(() =>
        [...store].map(([name, position]) => ({ name, position })).sort((a, b) => a.name.localeCompare(b.name))
      ),
      deadLetter: (letter) =>
        Effect.sync(() => {
          const earlier = letters.get(`${letter.policy}@${letter.position}`)
          letters.set(`${letter.policy}@${letter.position}`, {
            ...letter,
            streamId: earlier?.streamId ?? letter.streamId,
            eventType: earlier?.eventType ?? letter.eventType,
            attempts: (earlier?.attempts ?? 0) + letter.attempts
          })
          store.set(letter.policy, Math.max(store.get(letter.policy) ?? 0, letter.position))
        }),
      deadLetters: (limit) =>
        Effect.sync(() =>
          [...letters.values()].sort((a, b) => b.failedAt.localeCompare(a.failedAt) || b.position - a.position).slice(
            0,
            limit
          )
        ),
      deadLetterCount: Effect.sync(() => letters.size),
      findDeadLetter: (policy, position) => Effect.sync(() => letters.get(`${policy}@${position}`)),
      removeDeadLetter: (policy, position) => Effect.sync(() => letters.delete(`${policy}@${position}`))
    }
  })

  static readonly sqlite = Layer.effect(
    Checkpoints,
    Effect.map(SqliteDatabase, ({ db }) => {
      const select = db.prepare<[string], number>("SELECT position FROM checkpoints WHERE name = ?").pluck()
      const selectAll = db.prepare<[], PolicyCheckpoint>("SELECT name, position FROM checkpoints ORDER BY name")
      const upsert = db.prepare(
        "INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position"
      )
      const advance = db.prepare(
        "INSERT INTO checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = max(position, excluded.position)"
      )
      const insertLetter = db.prepare<[string, number, string, string, string, number, string]>(
        `INSERT INTO dead_letters (policy, position, stream_id, event_type, error, attempts, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (policy, position) DO UPDATE SET error = excluded.error, attempts = attempts + excluded.attempts, failed_at = excluded.failed_at`
      )
      type LetterRow = {
        policy: string
        position: number
        stream_id: string
        event_type: string
        error: string
        attempts: number
        failed_at: string
      }
      const letterColumns = "policy, position, stream_id, event_type, error, attempts, failed_at"
      const selectLetters = db.prepare<[number], LetterRow>(
        `SELECT ${letterColumns} FROM dead_letters ORDER BY failed_at DESC, position DESC LIMIT ?`
      )
      const selectLetter = db.prepare<[string, number], LetterRow>(
        `SELECT ${letterColumns} FROM dead_letters WHERE policy = ? AND position = ?`
      )
      const deleteLetter = db.prepare<[string, number]>("DELETE FROM dead_letters WHERE policy = ? AND position = ?")
      const countLetters = db.prepare<[], number>("SELECT count(*) FROM dead_letters").pluck()
      const toLetter = (row: LetterRow): DeadLetter => ({
        policy: row.policy,
        position: row.position,
        streamId: row.stream_id,
        eventType: row.event_type,
        error: row.error,
        attempts: row.attempts,
        failedAt: row.failed_at
      })
      const recordLetter = db.transaction((letter: DeadLetter) => {
        insertLetter.run(
          letter.policy,
          letter.position,
          letter.streamId,
          letter.eventType,
          letter.error,
          letter.attempts,
          letter.failedAt
        )
        advance.run(letter.policy, letter.position)
      })
      return {
        load: (name) => Effect.sync(() => select.get(name) ?? 0),
        // Retried off the event loop while the writer thread holds the lock. Should it stay busy, the
        // checkpoint is simply older: the policy redelivers a few events, which its commands absorb.
        save: (name, position) =>
          Effect.try({ try: () => void upsert.run(name, position), catch: (error) => error }).pipe(
            Effect.retry({ while: isBusy, schedule: Schedule.exponential(Duration.millis(1)), times: 10 }),
            Effect.catchIf(isBusy, () => Effect.void),
            Effect.orDie
          ),
        all: Effect.sync(() => selectAll.all()),
        // Unlike a checkpoint, a dead letter is not skipped when busy: the policy waits for the lock, as
        // moving on without the record would lose the only trace of the event it gave up on.
        deadLetter: (letter) =>
          Effect.try({ try: () => recordLetter.immediate(letter), catch: (error) => error }).pipe(
            Effect.retry({
              while: isBusy,
              schedule: Schedule.exponential(Duration.millis(1)).pipe(
                Schedule.union(Schedule.spaced(Duration.millis(100)))
              )
            }),
            Effect.orDie
          ),
        deadLetters: (limit) => Effect.sync(() => selectLetters.all(limit).map(toLetter)),
        deadLetterCount: Effect.sync(() => countLetters.get() ?? 0),
        findDeadLetter: (policy, position) =>
          Effect.sync(() => {
            const row = selectLetter.get(policy, position)
            return row === undefined ? undefined : toLetter(row)
          }),
        // Like a dead letter, its removal waits for the lock rather than be lost.
        removeDeadLetter: (policy, position) =>
          Effect.try({ try: () => deleteLetter.run(policy, position).changes > 0, catch: (error) => error }).pipe(
            Effect.retry({ while: isBusy, schedule: Schedule.spaced(Duration.millis(20)), times: 500 }),
            Effect.orDie
          )
      }
    })
  )
}
