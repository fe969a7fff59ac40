import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { NodeKey } from "../../src/content/NodeKey.js"
import { verifyChain } from "../../src/events/Audit.js"
import { Journal } from "../../src/events/Journal.js"
import { readHeadFile } from "../../src/events/JournalHeadFile.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import { openDatabase } from "../../src/events/SqliteFile.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import {
  DEFAULT_INLINE_COMMITS,
  type InlineCommits,
  startWriter,
  type WriteRequest
} from "../../src/events/SqliteWriter.js"
import { tempDir } from "../support/TempDir.js"

const request = (streamId: string, n: number): WriteRequest => ({
  streamId,
  expectedVersion: "any",
  events: [{ eventType: "Counted", payload: { n } }],
  commandId: null,
  causationId: null,
  authorization: null,
  onlyAfterPrevious: false
})

/** A writer of `file`: by default every batch on the thread, as the tests of the thread want. */
const writerAt = (
  file: string,
  idleStop: Duration.DurationInput | null,
  inline: InlineCommits | null = null,
  headFile: string | null = null
) =>
  startWriter(
    {
      file,
      seed: crypto.randomBytes(32),
      busyTimeoutMs: 5_000,
      synchronous: "normal",
      maxPayloadBytes: 1024,
      headFile
    },
    idleStop,
    inline
  )

const now = () => new Date().toISOString()

/** Commits on the event loop however slow a loaded machine makes them. */
const PATIENT_INLINE: InlineCommits = { ...DEFAULT_INLINE_COMMITS, slowMs: 1_000 }

describe("the journal's writer", () => {
  it.scopedLive("stops after its idle time, and the next batch starts another that goes on from the same head", () =>
    Effect.gen(function*() {
      const writer = yield* writerAt(path.join(tempDir(), "journal.db"), "100 millis")
      const first = yield* writer.commit([request("Counter-1", 1)], new Date().toISOString())
      expect(first[0]).toMatchObject({ ok: true, position: 1 })
      expect(writer.running).toBe(true)

      yield* Effect.sleep("1 second")
      expect(writer.running).toBe(false)

      const second = yield* writer.commit([request("Counter-1", 2), request("Counter-2", 3)], new Date().toISOString())
      expect(second).toMatchObject([{ ok: true, position: 2, streamVersion: 2 }, { ok: true, position: 3 }])
      expect(writer.running).toBe(true)
    }))

  it.scopedLive("keeps its thread while batches keep coming, and for good with no idle time", () =>
    Effect.gen(function*() {
      const busy = yield* writerAt(path.join(tempDir(), "busy.db"), "1 second")
      const forever = yield* writerAt(path.join(tempDir(), "forever.db"), null)
      for (let n = 0; n < 6; n++) {
        yield* busy.commit([request("Counter", n)], new Date().toISOString())
        yield* forever.commit([request("Counter", n)], new Date().toISOString())
        yield* Effect.sleep("100 millis")
        expect(busy.running).toBe(true)
      }
      yield* Effect.sleep("2 seconds")
      expect(busy.running).toBe(false)
      expect(forever.running).toBe(true)
    }))

  it.live("batches sent while the thread stops or starts are written in order, and the chain verifies", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const journal = SqliteJournal.layer({ writerIdleStop: "30 millis", inlineCommits: null }).pipe(
        Layer.provide(SqliteDatabase.layer({ file })),
        Layer.provide(NodeKey.ephemeral)
      )
      const report = yield* Effect.gen(function*() {
        const log = yield* Journal
        for (let round = 0; round < 5; round++) {
          // Concurrent appends around the moment the idle thread stops.
          yield* Effect.forEach(
            [0, 1, 2, 3],
            (i) => log.append(`Counter-${i}`, "any", [{ eventType: "Counted", payload: { round, i } }]),
            { concurrency: "unbounded" }
          )
          yield* Effect.sleep(`${20 + round * 10} millis`)
        }
        const events = yield* log.readAll(0, 100)
        expect(events.map((event) => event.position)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
        return yield* verifyChain()
      }).pipe(Effect.provide(journal), Effect.scoped)
      expect(report).toMatchObject({ ok: true, eventsChecked: 20, problem: null })
    }))

  it.scopedLive("commits a quiet journal's batches on the event loop, with no thread, and records their head", () =>
    Effect.gen(function*() {
      const directory = tempDir()
      const headFile = path.join(directory, "journal.head")
      const writer = yield* writerAt(path.join(directory, "journal.db"), "1 second", PATIENT_INLINE, headFile)
      for (let n = 1; n <= 5; n++) {
        const [outcome] = yield* writer.commit([request("Counter", n)], now())
        expect(outcome).toMatchObject({ ok: true, position: n, streamVersion: n })
        yield* Effect.sleep("50 millis")
      }
      expect(writer.running).toBe(false)
      // The head file is written off the commit path, as the thread writes it.
      yield* Effect.sleep("500 millis")
      expect(readHeadFile(headFile)).toMatchObject({ _tag: "Recorded", head: { position: 5 } })
    }))

  it.scopedLive("starts the thread once batches come fast, and commits on the event loop again once it stopped", () =>
    Effect.gen(function*() {
      const writer = yield* writerAt(path.join(tempDir(), "journal.db"), "200 millis", {
        batchesPerSecond: 3,
        slowMs: 1_000
      })
      let position = 0
      const commit = Effect.gen(function*() {
        const [outcome] = yield* writer.commit([request("Counter", ++position)], now())
        expect(outcome).toMatchObject({ ok: true, position, streamVersion: position })
      })
      for (let n = 0; n < 3; n++) yield* commit
      expect(writer.running).toBe(false)
      // The fourth within the second starts the thread, which takes the batches after it too.
      for (let n = 0; n < 3; n++) yield* commit
      expect(writer.running).toBe(true)
      yield* Effect.sleep("1 second")
      expect(writer.running).toBe(false)
      yield* commit
      expect(writer.running).toBe(false)
    }))

  it.scopedLive("hands over to the thread after a commit on the event loop that took too long", () =>
    Effect.gen(function*() {
      const writer = yield* writerAt(path.join(tempDir(), "journal.db"), "1 second", {
        batchesPerSecond: 20,
        slowMs: 0
      })
      expect(yield* writer.commit([request("Counter", 1)], now())).toMatchObject([{ ok: true, position: 1 }])
      expect(writer.running).toBe(true)
      expect(yield* writer.commit([request("Counter", 2)], now())).toMatchObject([{ ok: true, position: 2 }])
    }))

  it.scopedLive("sends a batch to the thread when another connection holds the lock: the event loop never waits on it", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const writer = yield* writerAt(file, "1 second", PATIENT_INLINE)
      yield* writer.commit([request("Counter", 1)], now())
      expect(writer.running).toBe(false)
      const other = openDatabase({ file })
      other.exec("BEGIN IMMEDIATE")
      // Ticks of the event loop while the batch waits for the lock, released after 300 ms.
      let ticks = 0
      const ticker = setInterval(() => ticks++, 10)
      setTimeout(() => other.exec("COMMIT"), 300)
      const started = performance.now()
      const [outcome] = yield* writer.commit([request("Counter", 2)], now())
      clearInterval(ticker)
      other.close()
      expect(outcome).toMatchObject({ ok: true, position: 2 })
      expect(performance.now() - started).toBeGreaterThanOrEqual(250)
      expect(ticks).toBeGreaterThanOrEqual(10)
      expect(writer.running).toBe(true)
    }))

  it.live("batches on the event loop and on the thread, around stops and starts, are written in order", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const journal = SqliteJournal.layer({
        writerIdleStop: "30 millis",
        inlineCommits: { batchesPerSecond: 6, slowMs: 1_000 }
      }).pipe(Layer.provide(SqliteDatabase.layer({ file })), Layer.provide(NodeKey.ephemeral))
      const report = yield* Effect.gen(function*() {
        const log = yield* Journal
        for (let round = 0; round < 8; round++) {
          yield* Effect.forEach(
            [0, 1, 2, 3],
            (i) => log.append(`Counter-${i}`, "any", [{ eventType: "Counted", payload: { round, i } }]),
            { concurrency: "unbounded" }
          )
          yield* Effect.sleep(`${round * 40} millis`)
        }
        const events = yield* log.readAll(0, 100)
        expect(events.map((event) => event.position)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1))
        return yield* verifyChain()
      }).pipe(Effect.provide(journal), Effect.scoped)
      expect(report).toMatchObject({ ok: true, eventsChecked: 32, problem: null })
    }))
})
