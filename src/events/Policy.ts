/**
 * Policies (process managers): durable, checkpointed subscriptions that turn events of one subsystem
 * into commands of another. Delivery is at least once; handlers send commands whose id is derived
 * from the event's position, so a redelivered event changes nothing (effectively once).
 */
import { Chunk, Duration, Effect, Layer, Schedule, Stream } from "effect"
import { streamCategory } from "../domain/Ids.js"
import { Checkpoints } from "./Checkpoints.js"
import type { Envelope } from "./Envelope.js"
import { Journal } from "./Journal.js"

export interface PolicyDefinition<R> {
  /** Names the checkpoint; renaming a policy makes it start again from the beginning of the log. */
  readonly name: string
  readonly categories?: ReadonlyArray<string>
  readonly eventTypes?: ReadonlyArray<string>
  readonly handle: (envelope: Envelope) => Effect.Effect<void, unknown, R>
}

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

/** Runs until interrupted: resume after the checkpoint, handle each matching event, checkpoint each page. */
export const run = <R>(definition: PolicyDefinition<R>) =>
  Effect.gen(function* () {
    const journal = yield* Journal
    const checkpoints = yield* Checkpoints
    const wanted = matches(definition)
    // A failing handler is retried with backoff; the checkpoint does not move past an unhandled event.
    const handleWithRetry = (envelope: Envelope) =>
      definition.handle(envelope).pipe(
        Effect.tapError((error) =>
          Effect.logWarning(`policy ${definition.name} failed on position ${envelope.position}, retrying`, error)
        ),
        Effect.retry(Schedule.exponential(Duration.millis(50)).pipe(Schedule.union(Schedule.spaced(Duration.seconds(5))))),
        Effect.orDie
      )
    const from = (yield* checkpoints.load(definition.name)) + 1
    yield* journal.subscribe(from).pipe(
      Stream.runForEachChunk((chunk) =>
        Effect.forEach(Chunk.filter(chunk, wanted), handleWithRetry, { discard: true }).pipe(
          Effect.zipRight(checkpoints.save(definition.name, Chunk.unsafeLast(chunk).position))
        )
      )
    )
  }).pipe(Effect.withSpan(`Policy.${definition.name}`))

/** The policy as a background layer: it starts with the layer and stops when the layer's scope closes. */
export const layer = <R>(definition: PolicyDefinition<R>) => Layer.scopedDiscard(Effect.forkScoped(run(definition)))

/** Waits until the named policy has checkpointed the journal's current head (for tests and shutdown). */
export const awaitCaughtUp = (name: string) =>
  Effect.gen(function* () {
    const journal = yield* Journal
    const checkpoints = yield* Checkpoints
    const target = (yield* journal.head).position
    yield* checkpoints.load(name).pipe(
      Effect.repeat({ until: (position) => position >= target, schedule: Schedule.spaced(Duration.millis(5)) })
    )
  })
