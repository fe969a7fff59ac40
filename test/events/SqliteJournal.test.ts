import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Chunk, Effect, Fiber, Layer, Stream } from "effect"
import fc from "fast-check"
import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import { NodeKey } from "../../src/content/NodeKey.js"
import { verifyChain } from "../../src/events/Audit.js"
import { Authorization } from "../../src/events/Authorization.js"
import { chainLinkOf, envelopeHash, GENESIS_HASH, loggedLinkOf } from "../../src/events/Envelope.js"
import { Journal } from "../../src/events/Journal.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { tempDir } from "../support/TempDir.js"

const run = promisify(execFile)

const journalAt = (file: string, options?: SqliteJournal.SqliteJournalOptions) =>
  SqliteJournal.layer(options).pipe(Layer.provide(SqliteDatabase.layer({ file })), Layer.provide(NodeKey.ephemeral))

const seed = (file: string, count: number) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    for (let i = 0; i < count; i++) {
      yield* journal.append(`Counter-${i % 4}`, "any", [{ eventType: "Counted", payload: { n: i } }])
    }
  }).pipe(Effect.provide(journalAt(file)), Effect.scoped)

const verifyAt = (file: string) => verifyChain().pipe(Effect.provide(journalAt(file)), Effect.scoped)

/** Edits the SQLite file behind the journal's back, the way an attacker with disk access would. */
const tamper = (file: string, sql: string) => {
  const db = new Database(file)
  db.exec(sql)
  db.close()
}

/** Edits one payload and recomputes every hash from there on, as an attacker without the node key could. */
const rewriteChainFrom = (file: string, position: number, payload: string) => {
  const db = new Database(file)
  db.prepare("UPDATE events SET payload = ? WHERE position = ?").run(payload, position)
  const rows = db.prepare("SELECT * FROM events WHERE position >= ? ORDER BY position").all(position - 1) as Array<
    Record<string, any>
  >
  let prevHash = rows[0]!.position === position ? GENESIS_HASH : rows[0]!.hash
  for (const row of rows.filter((r) => r.position >= position)) {
    const hash = envelopeHash({
      position: row.position,
      streamId: row.stream_id,
      streamVersion: row.stream_version,
      eventType: row.event_type,
      payloadText: row.payload,
      recordedAt: row.recorded_at,
      nodeId: row.node_id,
      commandId: row.command_id,
      causationId: row.causation_id,
      authorizationText: row.authorization,
      prevHash
    })
    db.prepare("UPDATE events SET prev_hash = ?, hash = ? WHERE position = ?").run(prevHash, hash, row.position)
    prevHash = hash
  }
  db.close()
}

describe("SqliteJournal", () => {
  it.effect("a journal written before authorizations existed is migrated on open and still verifies", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      yield* seed(file, 5)
      // Back to the first schema, as a journal.db from an older edge-net would be.
      tamper(file, "ALTER TABLE events DROP COLUMN authorization; PRAGMA user_version = 1;")
      yield* Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-0", "any", [{ eventType: "Counted", payload: { n: 5 } }], {
          authorization: Authorization.fromText(`{"signer":"alice"}`)
        })
        expect((yield* journal.readAll(1, 10)).map((e) => e.authorization)).toEqual([null, null, null, null, null, {
          signer: "alice"
        }])
      }).pipe(Effect.provide(journalAt(file)), Effect.scoped)
      expect(yield* verifyAt(file)).toMatchObject({ ok: true, eventsChecked: 6 })
    }))

  it.live(
    "a subscriber in this process sees appends made by another process, with no gap and no duplicate",
    () =>
      Effect.gen(function*() {
        const file = path.join(tempDir(), "journal.db")
        yield* seed(file, 10)
        const seen = yield* Effect.gen(function*() {
          const journal = yield* Journal
          const reader = yield* journal.subscribe(1).pipe(Stream.take(10 + 200 + 100), Stream.runCollect, Effect.fork)
          const child = Effect.promise(() =>
            run(process.execPath, ["--import", "tsx", "test/support/appender.ts", file, "200", "Child"])
          )
          const local = Effect.forEach(Array.from({ length: 100 }, (_, i) => i), (i) =>
            journal.append(`Local-${i % 2}`, "any", [{ eventType: "Counted", payload: { n: i } }]).pipe(
              Effect.zipLeft(Effect.sleep("2 millis"))
            ))
          yield* Effect.all([child, local], { concurrency: "unbounded" })
          return Chunk.toReadonlyArray(yield* Fiber.join(reader))
        }).pipe(Effect.provide(journalAt(file)), Effect.scoped)
        expect(seen.map((e) =>
          e.position
        )).toEqual(Array.from({ length: 310 }, (_, i) => i + 1))
        expect(seen.filter((e) => e.streamId.startsWith("Child-")).length).toBe(200)
        expect((yield* verifyAt(file)).ok).toBe(true)
      }),
    60_000
  )

  it.live(
    "wakes a subscriber that idled for seconds within a few poll intervals of another writer's append",
    () =>
      Effect.gen(function*() {
        const file = path.join(tempDir(), "journal.db")
        yield* seed(file, 3)
        const received = yield* Effect.gen(function*() {
          const journal = yield* Journal
          const reader = yield* journal.subscribe(1).pipe(Stream.take(4), Stream.runCollect, Effect.fork)
          // Idle: a subscriber's own poll backs off (0.4, 0.8, 1.6, 3.2 s... up to 30 s with the watcher),
          // so on its own it would look next 6 s after it started.
          yield* Effect.sleep("3 seconds")
          // Another connection (as another process would) appends; this journal's signal hears nothing of it.
          yield* seed(file, 1)
          const appendedAt = Date.now()
          const seen = Chunk.toReadonlyArray(yield* Fiber.join(reader))
          return { positions: seen.map((envelope) => envelope.position), after: Date.now() - appendedAt }
        }).pipe(Effect.provide(journalAt(file, { pollInterval: "200 millis" })), Effect.scoped)
        expect(received.positions).toEqual([1, 2, 3, 4])
        expect(received.after).toBeLessThan(1_000)
      }),
    20_000
  )

  describe("verifyChain finds the first position that was tampered with in the file", () => {
    const cases: ReadonlyArray<
      { readonly name: string; readonly edit: (file: string) => void; readonly expected: object }
    > = [
      {
        name: "an edited payload",
        edit: (file) => tamper(file, `UPDATE events SET payload = '{"n":999}' WHERE position = 7`),
        expected: { firstBadPosition: 7 }
      },
      {
        name: "a replaced hash",
        edit: (file) => tamper(file, `UPDATE events SET hash = '${"ab".repeat(32)}' WHERE position = 12`),
        expected: { firstBadPosition: 12 }
      },
      {
        name: "an edited payload with the whole chain after it recomputed: the signed heads catch it",
        edit: (file) => rewriteChainFrom(file, 7, `{"n":999}`),
        expected: { firstBadPosition: 7, problem: "signed head at 7 does not match the chain" }
      },
      {
        name: "a deleted row",
        edit: (file) => tamper(file, `DELETE FROM events WHERE position = 5`),
        expected: { firstBadPosition: 5 }
      },
      {
        name: "two rows swapped",
        edit: (file) =>
          tamper(
            file,
            `UPDATE events SET position = -1 WHERE position = 9;
             UPDATE events SET position = 9 WHERE position = 10;
             UPDATE events SET position = 10 WHERE position = -1;`
          ),
        expected: { firstBadPosition: 9 }
      },
      {
        name: "the newest events cut off the end",
        edit: (file) => tamper(file, `DELETE FROM events WHERE position > 17`),
        expected: { firstBadPosition: 18 }
      },
      {
        name: "a forged head signature",
        edit: (file) => tamper(file, `UPDATE heads SET signature = '${"00".repeat(64)}' WHERE position = 15`),
        expected: { firstBadPosition: 15 }
      }
    ]

    for (const { edit, expected, name } of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const file = path.join(tempDir(), "journal.db")
          yield* seed(file, 20)
          edit(file)
          expect(yield* verifyAt(file)).toMatchObject({ ok: false, ...expected })
        }))
    }

    it.effect("an edited authorization", () =>
      Effect.gen(function*() {
        const file = path.join(tempDir(), "journal.db")
        yield* seed(file, 20)
        yield* Effect.gen(function*() {
          const journal = yield* Journal
          yield* journal.append("Counter-0", "any", [{ eventType: "Counted", payload: { n: 20 } }], {
            authorization: Authorization.fromText(`{"signer":"alice"}`)
          })
        }).pipe(Effect.provide(journalAt(file)), Effect.scoped)
        expect(yield* verifyAt(file)).toMatchObject({ ok: true, eventsChecked: 21 })
        tamper(file, `UPDATE events SET authorization = '{"signer":"mallory"}' WHERE position = 21`)
        expect(yield* verifyAt(file)).toMatchObject({
          ok: false,
          firstBadPosition: 21,
          problem: "event 21 was altered (hash mismatch)"
        })
      }))

    it.effect("an untouched file verifies", () =>
      Effect.gen(function*() {
        const file = path.join(tempDir(), "journal.db")
        yield* seed(file, 20)
        expect(yield* verifyAt(file)).toMatchObject({ ok: true, eventsChecked: 20, headsChecked: 20 })
      }))
  })

  // verifyChain hashes the text SQLite assembles from the row (json_quote for strings); the writer hashed
  // the text JavaScript assembled (JSON.stringify). Any string the two escaped differently would read as
  // tampering: quotes, backslashes, control characters, non-ASCII and astral characters included.
  it.live(
    "the chain text SQLite assembles from a row is the text the writer hashed, whatever the strings",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                entity: fc.oneof(fc.string({ unit: "grapheme", maxLength: 12 }), fc.string({ unit: "binary-ascii" })),
                eventType: fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }),
                text: fc.oneof(fc.string({ unit: "grapheme" }), fc.string({ unit: "binary-ascii" })),
                commandId: fc.option(fc.string({ unit: "grapheme", maxLength: 12 })),
                causationId: fc.option(fc.string({ unit: "binary-ascii", maxLength: 12 })),
                signer: fc.option(fc.string({ unit: "grapheme", maxLength: 12 }))
              }),
              { minLength: 1, maxLength: 12 }
            ),
            (events) =>
              Effect.runPromise(
                Effect.gen(function*() {
                  const journal = yield* Journal
                  for (const event of events) {
                    yield* journal.append(
                      `Odd-${event.entity}`,
                      "any",
                      [{ eventType: event.eventType, payload: { text: event.text, [event.text]: [1, event.entity] } }],
                      {
                        commandId: event.commandId ?? undefined,
                        causationId: event.causationId ?? undefined,
                        authorization: event.signer === null
                          ? null
                          : Authorization.fromText(JSON.stringify({ signer: event.signer }))
                      }
                    )
                  }
                  const records = yield* journal.readRecords(1, 100)
                  expect(yield* journal.readChainLinks(1, 100)).toEqual(records.map(chainLinkOf))
                  expect(yield* journal.readLoggedLinks(1, 100)).toEqual(records.map(loggedLinkOf))
                  expect(yield* journal.readLoggedEvents(1, 100)).toEqual(
                    records.map(({ eventType, hash, payloadText, position, streamId, streamVersion }) => ({
                      position,
                      streamId,
                      streamVersion,
                      eventType,
                      payloadText,
                      hash
                    }))
                  )
                  expect(yield* verifyChain()).toMatchObject({ ok: true, eventsChecked: events.length })
                }).pipe(Effect.provide(journalAt(path.join(tempDir(), "journal.db"))), Effect.scoped)
              )
          ),
          { numRuns: 15 }
        )
      ),
    60_000
  )
})
