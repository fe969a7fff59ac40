/**
 * The shared tail many subscribers of one journal read through: each page is read once, a partial
 * page is extended by what was committed since rather than read again, and no subscriber ever sees
 * less than what was committed before it asked.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ChangeSignal, sharedPages } from "../../src/events/ChangeSignal.js"
import type { Envelope } from "../../src/events/Envelope.js"

/** A log of `committed` events whose reads are counted, and the rows each returned. */
const countedLog = () => {
  const log = { committed: 0, queries: 0, rows: 0 }
  const readAll = (from: number, limit: number) =>
    Effect.sync(() => {
      log.queries++
      const last = Math.min(log.committed, from + limit - 1)
      const page = Array.from({ length: Math.max(0, last - from + 1) }, (_, i) => ({ position: from + i }) as Envelope)
      log.rows += page.length
      return page
    })
  return { log, readAll }
}

describe("sharedPages", () => {
  it.effect("reads each page once for every subscriber, and extends a partial page by what came since", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const { log, readAll } = countedLog()
      const tail = sharedPages(readAll, signal)
      log.committed = 3
      signal.notify()
      const first = yield* Effect.all([tail(1, 1024), tail(1, 1024), tail(1, 1024)])
      expect(first.map((page) => page.length)).toEqual([3, 3, 3])
      expect(log.queries).toBe(1)

      log.committed = 5
      signal.notify()
      const second = yield* tail(1, 1024)
      expect(second.map((envelope) => envelope.position)).toEqual([1, 2, 3, 4, 5])
      // Only the two new rows were read.
      expect(log.rows).toBe(5)
      expect(yield* tail(1, 1024)).toBe(second)

      // Other limits pass through.
      yield* tail(1, 10)
      expect(log.queries).toBe(3)
    }))

  it.effect("an empty page is read again: appends by another process wake no signal", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const { log, readAll } = countedLog()
      const tail = sharedPages(readAll, signal)
      expect(yield* tail(1, 1024)).toEqual([])
      log.committed = 2
      expect((yield* tail(1, 1024)).length).toBe(2)
    }))

  it.effect("a full page is served from memory whatever was committed after it", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const { log, readAll } = countedLog()
      const tail = sharedPages(readAll, signal)
      log.committed = 2_000
      signal.notify()
      expect((yield* tail(1, 1024)).length).toBe(1024)
      log.committed = 3_000
      signal.notify()
      expect((yield* tail(1, 1024)).length).toBe(1024)
      expect(log.queries).toBe(1)
      expect((yield* tail(1025, 1024)).length).toBe(1024)
      expect(log.queries).toBe(2)
    }))
})
