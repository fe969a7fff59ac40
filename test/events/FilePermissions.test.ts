import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { generateKeyPair, loadOrCreateKeyFile, NodeKey } from "../../src/content/NodeKey.js"
import { Journal } from "../../src/events/Journal.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { tempDir } from "../support/TempDir.js"

const modeOf = (file: string) => fs.statSync(file).mode & 0o777

const appendOnce = (file: string) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    yield* journal.append("Counter-a", "any", [{ eventType: "Counted", payload: { n: 1 } }])
    // The database's files while it is open (the WAL goes away on close); journal.head is written in the background.
    return fs.readdirSync(path.dirname(file)).filter((name) => name.startsWith("journal.db")).sort().map((
      name
    ) => [name, modeOf(path.join(path.dirname(file), name))])
  }).pipe(
    Effect.provide(
      SqliteJournal.layer().pipe(
        Layer.provide(SqliteDatabase.layer({ file })),
        Layer.provide(Layer.succeed(NodeKey, generateKeyPair()))
      )
    ),
    Effect.scoped
  )

/** Runs `effect` and returns what it logged. */
const logsOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) =>
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    )
    yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return lines
  })

describe("file permissions", () => {
  it.effect("the journal's files are created 0600, in a data dir created 0700", () =>
    Effect.gen(function*() {
      const dataDir = path.join(tempDir(), "data")
      const file = path.join(dataDir, "journal.db")
      const files = yield* appendOnce(file)
      expect(modeOf(dataDir)).toBe(0o700)
      expect(files).toEqual([["journal.db", 0o600], ["journal.db-shm", 0o600], ["journal.db-wal", 0o600]])
      expect(modeOf(path.join(dataDir, "journal.head"))).toBe(0o600)
    }))

  it.effect("an existing world-readable journal is made private on open", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      yield* appendOnce(file)
      fs.chmodSync(file, 0o644)
      const files = yield* appendOnce(file)
      expect(files.every(([, mode]) => mode === 0o600)).toBe(true)
    }))

  it.effect("loading a node key that others can read warns with the fix; a private one does not", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "node.key")
      const created = yield* logsOf(loadOrCreateKeyFile(file))
      expect(modeOf(file)).toBe(0o600)
      expect(created).toEqual([])
      fs.chmodSync(file, 0o644)
      expect(yield* logsOf(loadOrCreateKeyFile(file))).toEqual([
        `WARN node.key is readable by other users (mode 0644): chmod 600 ${file}`
      ])
    }))
})
