/**
 * Wakes journal subscribers when a commit lands, and the catch-up-then-follow loop they share.
 * Positions are assigned inside the writer's transaction, so the log never shows a later position
 * before an earlier one: reading forward from a cursor can neither skip nor repeat an event.
 */
import { Chunk, Duration, Effect, Stream } from "effect"
import type { Envelope } from "./Envelope.js"

/** Which events a subscriber acts on: one woken only for those (and by its poll) is not woken for the rest. */
export type Wanted = (envelope: Envelope) => boolean

/**
 * How far a subscriber's poll backs off while the database has nothing new: the poll is for other
 * processes' appends (this process's commits wake subscribers at once), and a node whose seven
 * policies each asked twenty times a second spent 6% of a core doing nothing.
 */
export const IDLE_POLL_LIMIT = Duration.seconds(1)

interface Waiter {
  readonly wanted: Wanted | undefined
  readonly wake: () => void
  /** A commit it does not want landed: wakes it a little later, unless something wakes it first. */
  readonly nudge: (() => void) | undefined
}

export class ChangeSignal {
  private generation = 0
  private readonly waiters = new Set<Waiter>()

  /**
   * `idlePollLimit`: how far a subscriber's poll may back off while nothing comes (see followLog); a
   * signal that a watcher wakes for other processes' commits too lets them wait much longer.
   */
  constructor(readonly idlePollLimit: Duration.DurationInput = IDLE_POLL_LIMIT) {}

  get current(): number {
    return this.generation
  }

  /**
   * A commit landed: wakes the waiters, those with a `wanted` only when `committed` holds an event
   * they want (all of them when the commit's events are not given); the others are nudged.
   */
  notify(committed?: ReadonlyArray<Envelope>): void {
    this.generation++
    for (const waiter of this.waiters) {
      if (waiter.wanted !== undefined && committed !== undefined && !committed.some(waiter.wanted)) {
        waiter.nudge?.()
        continue
      }
      this.waiters.delete(waiter)
      waiter.wake()
    }
  }

  /**
   * Completes once a commit happened after `generation` was read (with `wanted`, a commit holding an
   * event it wants, or `unwantedWithin` after one holding none), or after `timeout` at most.
   */
  waitAfter(
    generation: number,
    timeout: Duration.DurationInput,
    wanted?: Wanted,
    unwantedWithin?: Duration.DurationInput
  ): Effect.Effect<void> {
    const changed = Effect.async<void>((resume) => {
      if (this.generation !== generation) return resume(Effect.void)
      let later: ReturnType<typeof setTimeout> | undefined
      const waiter: Waiter = {
        wanted,
        wake: () => {
          clearTimeout(later)
          resume(Effect.void)
        },
        nudge: wanted === undefined || unwantedWithin === undefined ? undefined : () => {
          later ??= setTimeout(() => {
            this.waiters.delete(waiter)
            resume(Effect.void)
          }, Duration.toMillis(unwantedWithin))
        }
      }
      this.waiters.add(waiter)
      return Effect.sync(() => {
        clearTimeout(later)
        this.waiters.delete(waiter)
      })
    })
    return changed.pipe(Effect.timeoutOption(timeout), Effect.asVoid)
  }
}

const PAGE_SIZE = 1024

/** Pages the shared tail remembers: enough for subscribers a few pages apart. */
const SHARED_PAGES = 64

/**
 * `readAll` for many subscribers of one journal: each page a subscriber asks for is read and decoded
 * once, then served from memory to the others (a node's policies all follow the same tail, and
 * each commit used to cost every one of them its own query and decode). A full page never changes; a
 * partial one is served only while no commit has landed since it was read, and the generation is
 * read before the query, so a cached page holds at least what was committed at its generation. A
 * subscriber that got a page moves past it, so the only page asked for twice is an empty one, which
 * is never kept.
 */
export const sharedPages = (
  readAll: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<Envelope>>,
  signal: ChangeSignal
) => {
  const pages = new Map<number, { readonly generation: number; readonly page: ReadonlyArray<Envelope> }>()
  return (fromPosition: number, limit: number): Effect.Effect<ReadonlyArray<Envelope>> => {
    if (limit !== PAGE_SIZE) return readAll(fromPosition, limit)
    return Effect.suspend(() => {
      const cached = pages.get(fromPosition)
      if (cached !== undefined && (cached.page.length === limit || cached.generation === signal.current)) {
        return Effect.succeed(cached.page)
      }
      // A partial page read before later commits is extended by what came since, never read again.
      const generation = signal.current
      const held = cached?.page ?? []
      const last = held[held.length - 1]
      const rest = last === undefined ? readAll(fromPosition, limit) : readAll(last.position + 1, limit - held.length)
      return Effect.map(rest, (more) => {
        const page = held.length === 0 ? more : more.length === 0 ? held : [...held, ...more]
        // An empty page is never kept: a subscriber asks again for the same position after its poll
        // interval, and appends by another process (which this signal never hears of) must show then.
        if (page.length === 0) return page
        pages.delete(fromPosition)
        pages.set(fromPosition, { generation, page })
        if (pages.size > SHARED_PAGES) pages.delete(pages.keys().next().value as number)
        return page
      })
    })
  }
}

/**
 * The events this process committed last, in position order, for subscribers following the tail:
 * they take what was just written from here instead of reading it back (on a busy node every
 * commit woke each policy into a query of its own). Only an unbroken run of positions is kept; a
 * commit that does not follow on (another process wrote in between) starts the run again, and a
 * subscriber before the run reads the database. The envelopes are the ones the appenders were
 * answered with, whose payloads the journal stored as their canonical JSON.
 */
export class RecentTail {
  private events: Array<Envelope> = []

  constructor(private readonly capacity = 4 * PAGE_SIZE) {}

  /** Adds a commit's events, in position order. */
  add(envelopes: ReadonlyArray<Envelope>): void {
    for (const envelope of envelopes) {
      const last = this.events[this.events.length - 1]
      if (last !== undefined && envelope.position !== last.position + 1) this.events = []
      this.events.push(envelope)
    }
    if (this.events.length > 2 * this.capacity) this.events = this.events.slice(this.events.length - this.capacity)
  }

  /** The position of this process's newest commit, or 0 before its first. */
  get newest(): number {
    return this.events[this.events.length - 1]?.position ?? 0
  }

  /**
   * At most `limit` events from `position` on; empty when `position` is past the newest one, undefined
   * when the run does not reach back to `position`. A subscriber can be past the newest one: its poll
   * read a commit from the database before this process had the writer's answer. What lies beyond
   * comes from this process's next commits, or from the poll when another process wrote it.
   */
  from(position: number, limit: number): ReadonlyArray<Envelope> | undefined {
    const first = this.events[0]
    if (first === undefined || position < first.position) return undefined
    const index = position - first.position
    return index >= this.events.length ? [] : this.events.slice(index, index + limit)
  }
}

/**
 * Catch up from `fromPosition`, then follow: the generation is read *before* each query, so a commit
 * that lands between the query and the wait wakes us at once instead of being missed. The poll
 * interval catches appends made by other processes, which this process's signal never hears about.
 * With `recent`, this process's own commits come from memory, and the database is asked only to
 * catch up, and once a poll interval for what other processes appended. With `wanted` too, commits
 * holding no event it wants do not wake the subscriber: it takes them with the next that does, or
 * a poll interval after it (a policy that handles one kind of event in a hundred is woken for that
 * one). Each poll of the database that finds nothing doubles the wait for the next one, up to
 * the signal's `idlePollLimit` (or the interval, if longer); any event read brings it back to the interval.
 */
export const followLog = (
  readAll: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<Envelope>>,
  signal: ChangeSignal,
  fromPosition: number,
  pollInterval: Duration.DurationInput,
  recent?: RecentTail,
  wanted?: Wanted
): Stream.Stream<Envelope> =>
  Stream.suspend(() => {
    let cursor = Math.max(1, fromPosition)
    const pollMillis = Duration.toMillis(pollInterval)
    const idleLimit = Math.max(pollMillis, Duration.toMillis(signal.idlePollLimit))
    // The wait before the next poll: the interval while events come, longer while none do.
    let waitMillis = pollMillis
    // When the database was last asked for what lies past the cursor.
    let askedAt = -Infinity
    const emit = (page: ReadonlyArray<Envelope>) => {
      cursor = page[page.length - 1]!.position + 1
      waitMillis = pollMillis
      return Effect.succeed(Chunk.unsafeFromArray(page))
    }
    const nextPage: Effect.Effect<Chunk.Chunk<Envelope>> = Effect.suspend(() => {
      const generation = signal.current
      const remembered = recent?.from(cursor, PAGE_SIZE)
      if (remembered !== undefined && remembered.length > 0) return emit(remembered)
      if (remembered !== undefined) {
        // Caught up with this process's commits: wait for the next that holds an event it wants (the
        // others are taken from memory with it), or for the poll to be due.
        const due = askedAt + waitMillis - Date.now()
        if (due > 0) {
          return signal.waitAfter(generation, Duration.millis(due), wanted, pollInterval).pipe(
            Effect.zipRight(nextPage)
          )
        }
      }
      askedAt = Date.now()
      return readAll(cursor, PAGE_SIZE).pipe(
        Effect.flatMap((page) => {
          if (page.length > 0) return emit(page)
          waitMillis = Math.min(idleLimit, waitMillis * 2)
          const filter = recent === undefined ? undefined : wanted
          return signal.waitAfter(generation, Duration.millis(waitMillis), filter, pollInterval).pipe(
            Effect.zipRight(nextPage)
          )
        })
      )
    })
    return Stream.repeatEffectChunk(nextPage)
  })
