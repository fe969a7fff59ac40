/**
 * The sources of one download and their health: which takes the next unit (least loaded, round robin),
 * what each has sent, the retry schedule a failing one is on, and the report when one is dropped.
 */
import { Duration, Effect, Schedule } from "effect"
import type { Leaf, SourceDropped, SourceStats } from "./Downloader.js"
import type { BlobSource } from "./Sources.js"

const BACKOFF_BASE_MS = 100
const BACKOFF_MAX_MS = 5_000

/**
 * When a source that failed is tried again: 100 ms doubling with each failure in a row, at most 5 s, times
 * 0.5 to 1.5 at random so that workers do not retry in step; the failure after `retries` in a row ends it.
 */
export const retrySchedule = (retries: number) =>
  Schedule.exponential(Duration.millis(BACKOFF_BASE_MS)).pipe(
    Schedule.union(Schedule.spaced(Duration.millis(BACKOFF_MAX_MS))),
    Schedule.intersect(Schedule.recurs(retries)),
    Schedule.jitteredWith({ min: 0.5, max: 1.5 })
  )

export interface SourceSlot {
  readonly source: BlobSource
  /** Attempts under way on it. */
  active: number
  /** Bytes received from it in this run, including any that failed verification. */
  bytes: number
  dropped: boolean
  /**
   * Its retry schedule, stepped by each failure in a row whichever worker saw it (so `retries` counts per
   * source) and reset when an attempt moves forward or succeeds.
   */
  readonly retry: Schedule.ScheduleDriver<unknown, unknown>
}

export class SourcePool {
  readonly dropped: Array<SourceDropped> = []
  bytesFetched = 0
  #nextTurn = 0

  private constructor(
    readonly slots: ReadonlyArray<SourceSlot>,
    readonly onSourceDropped: ((report: SourceDropped) => void) | undefined
  ) {}

  /** The sources that can serve the target: byte ranges, or blocks when its pieces are known. */
  static make(
    sources: ReadonlyArray<BlobSource>,
    leaves: ReadonlyArray<Leaf> | undefined,
    retries: number,
    onSourceDropped: ((report: SourceDropped) => void) | undefined
  ): Effect.Effect<SourcePool> {
    const usable = sources.filter((source) =>
      source.fetchRange !== undefined || (leaves !== undefined && source.fetchBlock !== undefined)
    )
    return Effect.map(
      Effect.forEach(
        usable,
        (source) =>
          Effect.map(
            Schedule.driver(retrySchedule(retries)),
            (retry): SourceSlot => ({ source, active: 0, bytes: 0, dropped: false, retry })
          )
      ),
      (slots) => new SourcePool(slots, onSourceDropped)
    )
  }

  /** Least loaded first; ties go round-robin so that equal sources share the file. */
  pick(): SourceSlot | undefined {
    let best: SourceSlot | undefined
    for (let offset = 0; offset < this.slots.length; offset++) {
      const slot = this.slots[(this.#nextTurn + offset) % this.slots.length]!
      if (!slot.dropped && (best === undefined || slot.active < best.active)) best = slot
    }
    this.#nextTurn++
    return best
  }

  received(slot: SourceSlot, bytes: number): void {
    slot.bytes += bytes
    this.bytesFetched += bytes
  }

  drop(slot: SourceSlot, reason: string): Effect.Effect<void> {
    return Effect.sync(() => {
      if (slot.dropped) return
      slot.dropped = true
      const report = { source: slot.source.name, reason: reason.replace(/\s+/g, " ") }
      this.dropped.push(report)
      try {
        this.onSourceDropped?.(report)
      } catch {
        // A caller's callback must not take the download down with it.
      }
    })
  }

  stats(): ReadonlyArray<SourceStats> {
    return this.slots.map((slot) => ({
      name: slot.source.name,
      kind: slot.source.kind,
      bytes: slot.bytes,
      dropped: slot.dropped
    }))
  }
}
