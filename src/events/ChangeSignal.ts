/**
 * Wakes journal subscribers when a commit lands, and the catch-up-then-follow loop they share.
 * Positions are assigned inside the writer's transaction, so the log never shows a later position
 * before an earlier one: reading forward from a cursor can neither skip nor repeat an event.
 */
import type { Duration } from "effect"
import { Chunk, Effect, Stream } from "effect"
import type { Envelope } from "./Envelope.js"

export class ChangeSignal {
  private generation = 0
  private readonly waiters = new Set<() => void>()

  get current(): number {
    return this.generation
  }

  notify(): void {
    this.generation++
    for (const wake of this.waiters) wake()
    this.waiters.clear()
  }

  /** Completes once a commit happened after `generation` was read, or after `timeout` at most. */
  waitAfter(generation: number, timeout: Duration.DurationInput): Effect.Effect<void> {
    const changed = Effect.async<void>((resume) => {
      if (this.generation !== generation) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      this.waiters.add(wake)
      return Effect.sync(() => this.waiters.delete(wake))
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
 * Catch up from `fromPosition`, then follow: the generation is read *before* each query, so a commit
 * that lands between the query and the wait wakes us at once instead of being missed. The poll
 * interval catches appends made by other processes, which this process's signal never hears about.
 */
export const followLog = (
  readAll: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<Envelope>>,
  signal: ChangeSignal,
  fromPosition: number,
  pollInterval: Duration.DurationInput
): Stream.Stream<Envelope> =>
  Stream.suspend(() => {
    let cursor = Math.max(1, fromPosition)
    const nextPage: Effect.Effect<Chunk.Chunk<Envelope>> = Effect.suspend(() => {
      const generation = signal.current
      return readAll(cursor, PAGE_SIZE).pipe(
        Effect.flatMap((page) => {
          if (page.length === 0) return signal.waitAfter(generation, pollInterval).pipe(Effect.zipRight(nextPage))
          cursor = page[page.length - 1]!.position + 1
          return Effect.succeed(Chunk.unsafeFromArray(page))
        })
      )
    })
    return Stream.repeatEffectChunk(nextPage)
  })
