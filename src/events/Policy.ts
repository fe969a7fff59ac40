/**
 * Policies (process managers): durable, checkpointed subscriptions that turn events of one subsystem
 * into commands of another. Delivery is at least once; handlers send commands whose id is derived
 * from the event's position, so a redelivered event changes nothing (effectively once).
 *
 * A policy never stalls: an event its handler fails on (error or defect) is retried a bounded number
 * of times with backoff, then recorded as a dead letter (Checkpoints.deadLetter) and passed over.
 */
import { Cause, Chunk, Duration, Effect, Layer, Metric, Schedule, Stream } from "effect"
import { streamCategory } from "../domain/Ids.js"
import * as Metrics from "../domain/Metrics.js"
import { Checkpoints, DEAD_LETTER_ERROR_CHARS } from "./Checkpoints.js"
import type { Envelope } from "./Envelope.js"
import { Journal } from "./Journal.js"

export interface PolicyDefinition<R> {
  /** Names the checkpoint; renaming a policy makes it start again from the beginning of the log. */
  readonly name: string
  readonly categories?: ReadonlyArray<string>
  readonly eventTypes?: ReadonlyArray<string>
  readonly handle: (envelope: Envelope) => Effect.Effect<void, unknown, R>
  /** When a failed event is tried again before it becomes a dead letter; default RETRY_SCHEDULE. */
  readonly retry?: Schedule.Schedule<unknown, unknown> | undefined
}

/**
 * Six retries from 50 ms, doubling, jittered: about 3 s in all. Long enough to ride out a busy
 * database or a conflict with another writer; an event that fails for 3 s fails for a reason a retry
 * cannot change (a payload its handler cannot decode, a command its owner refuses).
 */
export const RETRY_SCHEDULE: Schedule.Schedule<unknown, unknown> = Schedule.exponential(Duration.millis(50)).pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(6))
)

/**
 * The definition with the services its handler needs provided now: one a node can keep in a list
 * beside its other policies, and run again on a dead letter's event.
 */
export const withServices = <R>(definition: PolicyDefinition<R>): Effect.Effect<PolicyDefinition<never>, never, R> =>
  Effect.map(Effect.context<R>(), (context) => ({
    ...definition,
    handle: (envelope: Envelope) => Effect.provide(definition.handle(envelope), context)
  }))

/** A policy writes its checkpoint once quiet this long, and at least this often while busy (and when it stops). */
export const CHECKPOINT_QUIET = Duration.millis(10)
export const CHECKPOINT_EVERY = Duration.millis(250)

/** The command id a policy uses for what it does about one event: the same on every redelivery. */
export const commandIdFor = (policyName: string, envelope: Envelope, step = "0"): string =>
  `${policyName}@${envelope.position}/${step}`

const matches = <R>(definition: PolicyDefinition<R>) => {
  const categories = definition.categories === undefined ? undefined : new Set(definition.categories)
  const eventTypes = definition.eventTypes === undefined ? undefined : new Set(definition.eventTypes)
  return (envelope: Envelope) =>
    (categories === undefined || categories.has(streamCategory(envelope.streamId))) &&
    (eventTypes === undefined || eventTypes.has(envelope.eventType))
}

const metricsOf = (policy: string) => ({
  handled: Metrics.counter("edge_net_policy_events_handled_total", "Events a policy handled", { policy }),
  retries: Metrics.counter("edge_net_policy_retries_total", "Times a policy tried an event again after it failed", {
    policy
  }),
  deadLetters: Metrics.counter(
    "edge_net_policy_dead_letters_total",
    "Events a policy gave up on since the process started",
    { policy }
  )
})

/** Runs until interrupted: resume after the checkpoint, handle each matching event, checkpoint as it goes. */
export const run = <R>(definition: PolicyDefinition<R>) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const checkpoints = yield* Checkpoints
    const wanted = matches(definition)
    const metrics = metricsOf(definition.name)
    const retry = definition.retry ?? RETRY_SCHEDULE

    // Interruption is the policy being stopped, never a failure of the event: it is not retried or recorded.
    const giveUp = (envelope: Envelope, cause: Cause.Cause<unknown>, attempts: number) =>
      Effect.gen(function*() {
        const error = Cause.pretty(cause).slice(0, DEAD_LETTER_ERROR_CHARS)
        yield* Effect.logError(
          `policy ${definition.name} gave up on position ${envelope.position} after ${attempts} attempts: dead letter recorded`,
          cause
        )
        yield* checkpoints.deadLetter({
          policy: definition.name,
          position: envelope.position,
          streamId: envelope.streamId,
          eventType: envelope.eventType,
          error,
          attempts,
          failedAt: new Date().toISOString()
        })
        yield* Metric.increment(metrics.deadLetters)
      })

    const handleOrGiveUp = (envelope: Envelope) =>
      Effect.suspend(() => {
        let attempts = 0
        return Effect.suspend(() => {
          attempts++
          return definition.handle(envelope)
        }).pipe(
          Effect.sandbox,
          Effect.tapError((cause) =>
            Cause.isInterruptedOnly(cause)
              ? Effect.void
              : Effect.logWarning(
                `policy ${definition.name} failed on position ${envelope.position} (attempt ${attempts})`,
                cause
              ).pipe(
                Effect.zipRight(Metric.increment(metrics.retries))
              )
          ),
          Effect.retry({ schedule: retry, while: (cause) => !Cause.isInterruptedOnly(cause) }),
          Effect.zipRight(Metric.increment(metrics.handled)),
          Effect.catchAll((
            cause
          ) => (Cause.isInterruptedOnly(cause) ? Effect.failCause(cause) : giveUp(envelope, cause, attempts))),
          Effect.orDie
        )
      })

    const from = (yield* checkpoints.load(definition.name)) + 1
    // Listed among the checkpoints from its first start, so its lag shows before it finished a page.
    if (from === 1) yield* checkpoints.save(definition.name, 0)
    // The checkpoint is written once the policy has been quiet for CHECKPOINT_QUIET, at least every
    // CHECKPOINT_EVERY while events keep coming, and when it stops; not after every page: on a busy node
    // that was a write transaction per policy per commit, taking the database's write lock from the
    // journal's writer. A crash redelivers at most what was handled since, which the handlers' command
    // ids absorb. One saver fiber at a time, started by the first page after a write.
    let handled = from - 1
    let saved = handled
    let savedAt = Date.now()
    let handledAt = 0
    let saving = false
    const saveHandled = Effect.suspend(() => {
      if (handled === saved) return Effect.void
      saved = handled
      savedAt = Date.now()
      return checkpoints.save(definition.name, saved)
    })
    const saver: Effect.Effect<void> = Effect.zipRight(
      Effect.sleep(CHECKPOINT_QUIET),
      Effect.suspend(() => {
        const now = Date.now()
        if (
          now - handledAt < Duration.toMillis(CHECKPOINT_QUIET) && now - savedAt < Duration.toMillis(CHECKPOINT_EVERY)
        ) {
          return saver
        }
        saving = false
        return saveHandled
      })
    )
    const progressed = (position: number) =>
      Effect.suspend(() => {
        handled = position
        handledAt = Date.now()
        if (saving) return Effect.void
        saving = true
        return Effect.asVoid(Effect.fork(saver))
      })
    yield* journal.subscribe(from, wanted).pipe(
      Stream.runForEachChunk((chunk) =>
        Effect.forEach(Chunk.filter(chunk, wanted), handleOrGiveUp, { discard: true }).pipe(
          Effect.zipRight(progressed(Chunk.unsafeLast(chunk).position))
        )
      ),
      Effect.ensuring(saveHandled)
    )
  }).pipe(Effect.withSpan(`Policy.${definition.name}`))

/**
 * The policy as a background layer: it starts with the layer and stops when the layer's scope closes.
 * Should the policy itself die (its store, not an event), it is logged and started again after its checkpoint.
 */
export const layer = <R>(definition: PolicyDefinition<R>) =>
  Layer.scopedDiscard(Effect.forkScoped(
    run(definition).pipe(
      Effect.sandbox,
      Effect.tapError((cause) => (Cause.isInterruptedOnly(cause)
        ? Effect.void
        : Effect.logError(`policy ${definition.name} stopped; restarting`, cause))
      ),
      Effect.retry({
        schedule: Schedule.spaced(Duration.seconds(1)),
        while: (cause) => !Cause.isInterruptedOnly(cause)
      }),
      Effect.ignore
    )
  ))

/** Waits until the named policy has checkpointed the journal's current head (for tests and shutdown). */
export const awaitCaughtUp = (name: string) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const checkpoints = yield* Checkpoints
    const target = (yield* journal.head).position
    yield* checkpoints.load(name).pipe(
      Effect.repeat({ until: (position) => position >= target, schedule: Schedule.spaced(Duration.millis(5)) })
    )
  })
