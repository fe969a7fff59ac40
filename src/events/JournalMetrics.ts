/**
 * A journal that counts what it appends and times each append as its caller waits for it (group
 * commit included), for /metrics: `edge_net_events_appended_total`, `edge_net_journal_append_seconds`.
 */
import { Effect, Either, Exit, Layer } from "effect"
import * as Metrics from "../domain/Metrics.js"
import { Journal, type JournalService } from "./Journal.js"

const appended = Metrics.counter("edge_net_events_appended_total", "Events appended to the journal")
const refused = Metrics.counter(
  "edge_net_journal_appends_refused_total",
  "Appends the journal refused (version conflict, payload too large)"
)
const latency = Metrics.histogram(
  "edge_net_journal_append_seconds",
  "Time from an append's call to its commit, group commit included"
)

const timed = <A, E>(
  append: Effect.Effect<A, E>,
  count: (value: A) => { readonly events: number; readonly refused: number }
) =>
  Effect.suspend(() => {
    const started = performance.now()
    return Effect.onExit(append, (exit) =>
      Effect.sync(() => {
        latency.unsafeUpdate((performance.now() - started) / 1000, [])
        if (Exit.isFailure(exit)) return refused.unsafeUpdate(1, [])
        const counted = count(exit.value)
        if (counted.events > 0) appended.unsafeUpdate(counted.events, [])
        if (counted.refused > 0) refused.unsafeUpdate(counted.refused, [])
      }))
  })

export const instrumented = (journal: JournalService): JournalService => ({
  ...journal,
  append: (streamId, expectedVersion, events, options) =>
    timed(
      journal.append(streamId, expectedVersion, events, options),
      (result) => ({ events: result.envelopes.length, refused: 0 })
    ),
  appendBatch: (requests) =>
    timed(journal.appendBatch(requests), (outcomes) => ({
      events: outcomes.reduce(
        (sum, outcome) => sum + (Either.isRight(outcome) ? outcome.right.envelopes.length : 0),
        0
      ),
      refused: outcomes.filter(Either.isLeft).length
    }))
})

/** The journal `layer` builds, instrumented. */
export const instrumentedLayer = <E, R>(layer: Layer.Layer<Journal, E, R>): Layer.Layer<Journal, E, R> =>
  Layer.effect(Journal, Effect.map(Journal, instrumented)).pipe(Layer.provide(layer))
