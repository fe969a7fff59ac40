/**
 * A download's workers: each takes a unit from the queue, fetches it from the least loaded source, retries
 * a failing source on its schedule, and gives the unit back when that source is dropped.
 */
import { Cause, Deferred, Effect, Queue } from "effect"
import type { DownloadError } from "./Downloader.js"
import type { WorkUnit } from "./DownloadUnits.js"
import type { SourcePool, SourceSlot } from "./SourcePool.js"
import type { SourceError } from "./Sources.js"
import type { BadPiece } from "./UnitFetch.js"

export interface WorkersOptions {
  readonly pool: SourcePool
  readonly queue: Queue.Queue<WorkUnit>
  /** Units to finish before `done` succeeds. */
  readonly units: number
  readonly done: Deferred.Deferred<void, DownloadError>
  readonly fetchUnit: (unit: WorkUnit, slot: SourceSlot) => Effect.Effect<void, BadPiece | DownloadError | SourceError>
  /** Run after every finished unit but the last. */
  readonly unitFinished: Effect.Effect<unknown>
  readonly fail: (reason: string) => DownloadError
}

/** One worker, to be forked as many times as units may be fetched at once; it ends the download by `done`. */
export const makeWorker = (options: WorkersOptions): Effect.Effect<Effect.Effect<void>> =>
  Effect.gen(function*() {
    const { pool, queue, done, fetchUnit, fail } = options
    const attemptEnded = yield* Queue.sliding<void>(1)
    let unitsLeft = options.units

    const unitFinished = Effect.suspend(() => {
      unitsLeft--
      if (unitsLeft === 0) return Deferred.succeed(done, undefined)
      return options.unitFinished
    })

    // A failure on a source still in use steps its schedule: a wait before the next try, or once the
    // schedule is over, the source is dropped. Failures in a row without progress count; a source that
    // moves forward starts over.
    const attempt = (unit: WorkUnit, slot: SourceSlot) =>
      Effect.suspend(() => {
        const positionBefore = unit.position
        return Effect.tapError(fetchUnit(unit, slot), (error) => {
          if (error._tag !== "SourceError" || slot.dropped) return Effect.void
          return Effect.zipRight(
            unit.position > positionBefore ? slot.retry.reset : Effect.void,
            Effect.catchAll(slot.retry.next(error), () => pool.drop(slot, error.reason))
          )
        })
      })

    const runUnit = (unit: WorkUnit): Effect.Effect<void, DownloadError> =>
      Effect.gen(function*() {
        const slot = pool.pick()
        if (slot === undefined && pool.slots.some((candidate) => candidate.active > 0)) {
          // An attempt still under way on a dropped source may yet finish its unit, or keep what it got.
          yield* Queue.take(attemptEnded)
          return yield* Effect.asVoid(Queue.offer(queue, unit))
        }
        if (slot === undefined) {
          const failures = pool.dropped.map((report) => `${report.source}: ${report.reason}`).join("; ")
          return yield* Effect.fail(fail(`every source failed (${failures})`))
        }
        slot.active++
        yield* Effect.gen(function*() {
          // Only a source's own failures are retried, and only while it is in use: bad bytes drop it at once.
          const outcome = yield* Effect.either(
            Effect.retry(attempt(unit, slot), { while: (error) => error._tag === "SourceError" && !slot.dropped })
          )
          if (outcome._tag === "Right") {
            yield* slot.retry.reset
            return yield* unitFinished
          }
          const error = outcome.left
          if (error._tag === "DownloadError") return yield* Effect.fail(error)
          if (error._tag === "BadPiece") yield* pool.drop(slot, error.message)
          return yield* Effect.asVoid(Queue.offer(queue, unit))
        }).pipe(Effect.ensuring(Effect.sync(() => {
          slot.active--
          Queue.unsafeOffer(attemptEnded, undefined)
        })))
      })

    return Effect.forever(Effect.flatMap(Queue.take(queue), runUnit)).pipe(
      Effect.catchAllCause((cause) => Cause.isInterruptedOnly(cause) ? Effect.void : Deferred.failCause(done, cause))
    )
  })
