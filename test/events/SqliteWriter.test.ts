import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import * as path from "node:path"
import { NodeKey } from "../../src/content/NodeKey.js"
import { verifyChain } from "../../src/events/Audit.js"
import { Journal } from "../../src/events/Journal.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { startWriter, type WriteRequest } from "../../src/events/SqliteWriter.js"
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

const writerAt = (file: string, idleStop: Duration.DurationInput | null) =>
  startWriter({
    file,
    seed: crypto.randomBytes(32),
    busyTimeoutMs: 5_000,
    synchronous: "normal",
    maxPayloadBytes: 1024,
    headFile: null
  }, idleStop)

describe("the journal's writer thread", () => {
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
      const journal = SqliteJournal.layer({ writerIdleStop: "30 millis" }).pipe(
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
})
