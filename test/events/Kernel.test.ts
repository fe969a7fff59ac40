import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Effect, Exit } from "effect"
import { JournalDoesNotVerify } from "../../src/events/Audit.js"
import { Journal } from "../../src/events/Journal.js"
import { sqliteKernel } from "../../src/layers/Kernel.js"
import { tempDir } from "../support/TempDir.js"

const settingsIn = (dataDir: string) => ({ dataDir, synchronous: "normal" as const })

const appendIn = (dataDir: string, count: number) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    for (let i = 0; i < count; i++) {
      yield* journal.append(`Counter-${i % 2}`, "any", [{ eventType: "Counted", payload: { n: i } }])
    }
  }).pipe(Effect.provide(sqliteKernel(settingsIn(dataDir))), Effect.scoped)

const edit = (dataDir: string, sql: string) => {
  const db = new Database(`${dataDir}/journal.db`)
  db.exec(sql)
  db.close()
}

describe("the node's kernel", () => {
  it.effect("opens a journal that verifies, again and again", () =>
    Effect.gen(function*() {
      const dataDir = tempDir()
      yield* appendIn(dataDir, 10)
      yield* appendIn(dataDir, 10)
      const head = yield* Effect.flatMap(Journal, (journal) => journal.head).pipe(
        Effect.provide(sqliteKernel(settingsIn(dataDir))),
        Effect.scoped
      )
      expect(head.position).toBe(20)
    }))

  for (
    const { expected, name, sql } of [
      {
        name: "an edited payload",
        sql: `UPDATE events SET payload = '{"n":999}' WHERE position = 4`,
        expected: "at position 4 (event 4 was altered (hash mismatch))"
      },
      {
        name: "a tail deleted with its heads",
        sql: "DELETE FROM events WHERE position > 6; DELETE FROM heads WHERE position > 6;",
        expected: "at position 7 (journal truncated: head file says position 10"
      }
    ]
  ) {
    it.effect(`refuses to write on a journal with ${name}, in one line that says how to recover`, () =>
      Effect.gen(function*() {
        const dataDir = tempDir()
        yield* appendIn(dataDir, 10)
        edit(dataDir, sql)
        const exit = yield* Effect.exit(appendIn(dataDir, 1))
        expect(Exit.isFailure(exit)).toBe(true)
        const error = Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error : undefined
        expect(error).toBeInstanceOf(JournalDoesNotVerify)
        expect(error?.message).toContain(`journal.db does not verify ${expected}`)
        expect(error?.message).toMatch(
          /restore it from a follower or a backup, or run `edge-net audit verify` to see where$/
        )
        expect(error?.message).not.toContain("\n")
        const db = new Database(`${dataDir}/journal.db`)
        expect(db.prepare("SELECT count(*) FROM events").pluck().get()).toBe(name === "an edited payload" ? 10 : 6)
        db.close()
      }))
  }
})
