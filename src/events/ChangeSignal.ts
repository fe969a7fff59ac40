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
