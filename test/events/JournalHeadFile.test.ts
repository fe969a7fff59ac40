import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { generateKeyPair, NodeKey, type NodeKeyPair } from "../../src/content/NodeKey.js"
import { verifyChain } from "../../src/events/Audit.js"
import { Journal } from "../../src/events/Journal.js"
import { readHeadFile } from "../../src/events/JournalHeadFile.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { tempDir } from "../support/TempDir.js"

const journalAt = (file: string, key: NodeKeyPair) =>
  SqliteJournal.layer().pipe(Layer.provide(SqliteDatabase.layer({ file })), Layer.provide(Layer.succeed(NodeKey, key)))

const append = (file: string, key: NodeKeyPair, count: number) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    for (let i = 0; i < count; i++) {
      yield* journal.append(`Counter-${i % 3}`, "any", [{ eventType: "Counted", payload: { n: i } }])
    }
    return yield* journal.head
  }).pipe(Effect.provide(journalAt(file, key)), Effect.scoped)

const verifyAt = (file: string, key: NodeKeyPair) =>
  verifyChain({ trustedKeys: [key.publicKey] }).pipe(Effect.provide(journalAt(file, key)), Effect.scoped)

/** What an attacker with the file does to hide the newest events: cut them and their signed heads. */
const cutTail = (file: string, keep: number) => {
  const db = new Database(file)
  db.exec(`DELETE FROM events WHERE position > ${keep}; DELETE FROM heads WHERE position > ${keep};`)
  db.close()
}

describe("journal.head", () => {
  it.effect("holds the last signed head after the commits, written 0600 beside the database", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const key = generateKeyPair()
      const head = yield* append(file, key, 30)
      const headFile = path.join(path.dirname(file), "journal.head")
      expect(readHeadFile(headFile)).toEqual({
        _tag: "Recorded",
        head: { ...head, publicKey: key.publicKey, signature: expect.any(String) }
      })
      expect(fs.statSync(headFile).mode & 0o777).toBe(0o600)
      expect(fs.readdirSync(path.dirname(file)).filter((name) => name.endsWith(".tmp"))).toEqual([])
    }))

  it.effect("a tail deleted with its signed heads is reported as truncated, and appending after it does not erase the evidence", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const key = generateKeyPair()
      const head = yield* append(file, key, 20)
      cutTail(file, 12)
      const report = yield* verifyAt(file, key)
      expect(report).toMatchObject({
        ok: false,
        firstBadPosition: 13,
        problem: `journal truncated: head file says position 20 (hash ${head.hash}), database ends at 12`
      })
      // A writer that knows nothing of the check goes on from 12: the head file keeps saying 20...
      yield* append(file, key, 3)
      expect((yield* verifyAt(file, key)).problem).toBe(
        `journal truncated: head file says position 20 (hash ${head.hash}), database ends at 15`
      )
      // ...and once the log is past 20 again, its event 20 is not the one the head file names.
      yield* append(file, key, 10)
      const [twentieth] = yield* Effect.flatMap(Journal, (journal) => journal.readAll(20, 1)).pipe(
        Effect.provide(journalAt(file, key)),
        Effect.scoped
      )
      expect(yield* verifyAt(file, key)).toMatchObject({
        ok: false,
        firstBadPosition: 20,
        problem: `journal rewritten: head file says position 20 has hash ${head.hash}, database has ${twentieth!.hash}`
      })
    }))

  it.effect("a journal from before head files gets one on open and verifies", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const key = generateKeyPair()
      yield* append(file, key, 5)
      fs.rmSync(path.join(path.dirname(file), "journal.head"))
      expect(yield* verifyAt(file, key)).toMatchObject({ ok: true, eventsChecked: 5 })
      expect(readHeadFile(path.join(path.dirname(file), "journal.head"))).toMatchObject({
        _tag: "Recorded",
        head: { position: 5 }
      })
    }))

  it.effect("a head file signed by another key, or unreadable, fails verification", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const key = generateKeyPair()
      yield* append(file, key, 5)
      const headFile = path.join(path.dirname(file), "journal.head")
      fs.writeFileSync(headFile, "{not json")
      expect((yield* verifyAt(file, key)).problem).toBe("the head file cannot be read (not a signed journal head)")
      // JSON, but not a signed head: a position as text, a short hash, a negative position, an array.
      for (
        const text of [
          `{"position":"5","hash":"${"a".repeat(64)}","publicKey":"k","signature":"s"}`,
          `{"position":5,"hash":"abc","publicKey":"k","signature":"s"}`,
          `{"position":-1,"hash":"${"a".repeat(64)}","publicKey":"k","signature":"s"}`,
          "[]"
        ]
      ) {
        fs.writeFileSync(headFile, text)
        expect((yield* verifyAt(file, key)).problem).toBe("the head file cannot be read (not a signed journal head)")
      }
      fs.rmSync(headFile)
      yield* append(file, generateKeyPair(), 1)
      expect((yield* verifyAt(file, key)).ok).toBe(false)
    }))
})
