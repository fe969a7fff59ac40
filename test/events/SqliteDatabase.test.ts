/**
 * The background checkpointer: a thread of its own, started only once the WAL has grown, so a node
 * that writes little holds no second connection and no thread that wakes ten times a second.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import { tempDir } from "../support/TempDir.js"

/** Rows of about 1 KB each into a table of the test's own, through the layer's connection. */
const write = (rows: number) =>
  Effect.flatMap(SqliteDatabase, ({ db }) =>
    Effect.sync(() => {
      db.exec("CREATE TABLE IF NOT EXISTS filler (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
      const insert = db.prepare("INSERT OR REPLACE INTO filler (k, v) VALUES (?, ?)")
      for (let i = 0; i < rows; i++) insert.run(`s-${i}`, "x".repeat(1_000))
    }))

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe("the WAL checkpointer", () => {
  it.live("does not start while the WAL stays under its threshold", () =>
    Effect.gen(function*() {
      yield* write(20)
      yield* sleep(1_500)
      const { checkpointing, file } = yield* SqliteDatabase
      expect(fs.statSync(`${file}-wal`).size).toBeLessThan(1024 * 1024)
      expect(checkpointing()).toBe(false)
    }).pipe(
      Effect.provide(
        SqliteDatabase.layer({ file: path.join(tempDir(), "quiet.db"), checkpointerAfterWalBytes: 1024 * 1024 })
      )
    ))

  it.live("starts once the WAL passes it, and stops with the layer", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "busy.db")
      const started = yield* Effect.gen(function*() {
        const { checkpointing } = yield* SqliteDatabase
        yield* write(300)
        expect(fs.statSync(`${file}-wal`).size).toBeGreaterThan(64 * 1024)
        for (let waited = 0; waited < 5_000 && !checkpointing(); waited += 100) yield* sleep(100)
        return checkpointing()
      }).pipe(
        Effect.provide(SqliteDatabase.layer({ file, checkpointerAfterWalBytes: 64 * 1024 })),
        Effect.scoped
      )
      expect(started).toBe(true)
      // Closed: the last connection folded the WAL back into the database and removed it.
      expect(fs.existsSync(`${file}-wal`)).toBe(false)
    }))

  it.live("stops once the WAL is checkpointed and quiet, having truncated it, and starts again when it grows", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "rests.db")
      yield* Effect.gen(function*() {
        const { checkpointing } = yield* SqliteDatabase
        const waitFor = (wanted: boolean) =>
          Effect.gen(function*() {
            for (let waited = 0; waited < 10_000 && checkpointing() !== wanted; waited += 100) yield* sleep(100)
            return checkpointing()
          })
        yield* write(300)
        expect(yield* waitFor(true)).toBe(true)
        expect(yield* waitFor(false)).toBe(false)
        expect(fs.statSync(`${file}-wal`).size).toBe(0)

        yield* write(300)
        expect(yield* waitFor(true)).toBe(true)
        expect(yield* waitFor(false)).toBe(false)
        // Nothing was lost to the truncation: every row is in the database.
        const { db } = yield* SqliteDatabase
        expect(db.prepare("SELECT count(*) AS n FROM filler").get()).toEqual({ n: 300 })
      }).pipe(
        Effect.provide(
          SqliteDatabase.layer({ file, checkpointerAfterWalBytes: 64 * 1024, checkpointerIdleStopMs: 500 })
        ),
        Effect.scoped
      )
    }))
})
