/**
 * The shared tail many subscribers of one journal read through: each page is read once, a partial
 * page is extended by what was committed since rather than read again, and no subscriber ever sees
 * less than what was committed before it asked.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Option, Stream } from "effect"
import { ChangeSignal, followLog, RecentTail, sharedPages } from "../../src/events/ChangeSignal.js"
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

const at = (...positions: ReadonlyArray<number>) => positions.map((position) => ({ position }) as Envelope)
const positionsOf = (page: ReadonlyArray<Envelope> | undefined) => page?.map((envelope) => envelope.position)

describe("RecentTail", () => {
  it("answers from an unbroken run of positions, and starts again after a gap", () => {
    const recent = new RecentTail(4)
    expect(recent.from(1, 10)).toBeUndefined()
    recent.add(at(5, 6))
    recent.add(at(7))
    expect(positionsOf(recent.from(5, 10))).toEqual([5, 6, 7])
    expect(positionsOf(recent.from(6, 1))).toEqual([6])
    // Past the newest: nothing new from this process (yet). Before the run: unknown.
    expect(recent.from(8, 10)).toEqual([])
    expect(recent.from(9, 10)).toEqual([])
    expect(recent.from(4, 10)).toBeUndefined()
    // Another process wrote 8 and 9: the run starts again at 10, and 8 must come from the database.
    recent.add(at(10, 11))
    expect(recent.from(8, 10)).toBeUndefined()
    expect(positionsOf(recent.from(10, 10))).toEqual([10, 11])
  })

  it("keeps the newest events within twice its capacity", () => {
    const recent = new RecentTail(4)
    for (let position = 1; position <= 8; position++) recent.add(at(position))
    expect(positionsOf(recent.from(1, 10))).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    // The ninth goes past twice the capacity: the run keeps its newest four.
    recent.add(at(9))
    expect(recent.from(5, 10)).toBeUndefined()
    expect(positionsOf(recent.from(6, 10))).toEqual([6, 7, 8, 9])
  })
})

describe("followLog with the recent tail", () => {
  it.live("takes this process's commits from memory, and another process's from the database at the poll", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const { log, readAll } = countedLog()
      const recent = new RecentTail()
      const reader = yield* followLog(readAll, signal, 1, "50 millis", recent).pipe(
        Stream.take(6),
        Stream.runCollect,
        Effect.fork
      )
      // This process commits 1..3: the subscriber catches up from the database once, then follows memory.
      log.committed = 3
      recent.add(at(1, 2, 3))
      signal.notify()
      yield* Effect.sleep("10 millis")
      const afterOwn = log.queries
      log.committed = 4
      recent.add(at(4))
      signal.notify()
      yield* Effect.sleep("10 millis")
      // One query in all, made before anything was committed; the commits came from memory.
      expect(afterOwn).toBe(1)
      expect(log.queries).toBe(1)
      // Another process commits 5 and 6: no signal and nothing in memory, so the poll finds them.
      log.committed = 6
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(reader))
      expect(seen.map((envelope) => envelope.position)).toEqual([1, 2, 3, 4, 5, 6])
    }))

  it.live("polls less and less while nothing comes, up to once a second, and at the interval again once it does", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const { log, readAll } = countedLog()
      const reader = yield* followLog(readAll, signal, 1, "50 millis", new RecentTail()).pipe(
        Stream.take(2),
        Stream.runCollect,
        Effect.fork
      )
      // Idle for 1.6 s: at a steady 50 ms that is 32 queries; backing off (100, 200, 400, 800 ms) about 5.
      yield* Effect.sleep("1600 millis")
      const idleQueries = log.queries
      expect(idleQueries).toBeGreaterThanOrEqual(3)
      expect(idleQueries).toBeLessThanOrEqual(7)
      // Another process appends: the next poll, at most a second away, finds it.
      log.committed = 1
      const appendedAt = Date.now()
      for (let waited = 0; waited < 2_000 && log.rows === 0; waited += 10) yield* Effect.sleep("10 millis")
      expect(log.rows).toBe(1)
      expect(Date.now() - appendedAt).toBeLessThan(1_300)
      // Found something: the poll is back at the interval, so a second append is read within ~100 ms.
      const before = log.queries
      log.committed = 2
      const seen = Chunk.toReadonlyArray(yield* Fiber.join(reader))
      expect(seen.map((envelope) => envelope.position)).toEqual([1, 2])
      expect(log.queries - before).toBeLessThanOrEqual(3)
    }))
})

describe("ChangeSignal", () => {
  it.live("wakes a waiter with a filter only for a commit holding an event it wants, or at its timeout", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const wanted = (envelope: Envelope) => envelope.eventType === "Wanted"
      const event = (position: number, eventType: string) => ({ position, eventType }) as Envelope
      const picky = yield* Effect.fork(signal.waitAfter(signal.current, "5 seconds", wanted))
      const any = yield* Effect.fork(signal.waitAfter(signal.current, "5 seconds"))
      yield* Effect.sleep("5 millis")
      signal.notify([event(1, "Other")])
      yield* Effect.sleep("5 millis")
      expect(yield* Fiber.poll(any)).not.toEqual(Option.none())
      expect(yield* Fiber.poll(picky)).toEqual(Option.none())
      signal.notify([event(2, "Other"), event(3, "Wanted")])
      yield* Fiber.join(picky)
      // A commit whose events are not given wakes everyone; the timeout ends any wait.
      const unknown = yield* Effect.fork(signal.waitAfter(signal.current, "5 seconds", wanted))
      yield* Effect.sleep("5 millis")
      signal.notify()
      yield* Fiber.join(unknown)
      const started = Date.now()
      yield* signal.waitAfter(signal.current, "30 millis", wanted)
      expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    }))

  it.live("wakes a filtered waiter a little after a commit it does not want, when asked to", () =>
    Effect.gen(function*() {
      const signal = new ChangeSignal()
      const wanted = (envelope: Envelope) => envelope.eventType === "Wanted"
      const other = { position: 1, eventType: "Other" } as Envelope
      // The waiter notes when it woke: a test fiber's own sleep can overrun on a loaded machine.
      const nudged = yield* Effect.fork(
        Effect.zipRight(
          signal.waitAfter(signal.current, "5 seconds", wanted, "100 millis"),
          Effect.sync(() => Date.now())
        )
      )
      yield* Effect.sleep("5 millis")
      const committedAt = Date.now()
      signal.notify([other])
      // Not at once (the commit holds nothing it wants), but 100 ms later rather than at its 5 s timeout.
      const waited = (yield* Fiber.join(nudged)) - committedAt
      expect(waited).toBeGreaterThanOrEqual(90)
      expect(waited).toBeLessThan(2_000)
    }))
})
