/**
 * Concurrent embedding requests for one model and adapter, run together: a request that arrives while
 * a run is in progress joins the next one, so eight clients sending one text each share a model run
 * instead of queueing for eight, and each request gets back exactly its own vectors and token counts.
 *
 * A run takes what is waiting, in arrival order, up to `maxTexts` texts (a larger request runs alone).
 * Up to `runsAtOnce` runs of one lane go at once (one per model worker). A run first takes its turn
 * (a permit of the node's queue), then gives the event loop a few turns while requests keep joining, or
 * while the batch is smaller than recent ones were, so what arrived while it waited goes with it. A run
 * that fails with several requests in it is run again one request at a time, so a bad input (an empty
 * text) fails only the request that sent it.
 */
import { Deferred, Effect, Exit, FiberId } from "effect"

/** Event-loop turns a run waits at most for requests to join it. */
const GATHER_TURNS = 4

/** What a run gives back: a vector per text, and the tokens each text was read as. */
export interface EmbeddedTexts {
  readonly vectors: ReadonlyArray<Float32Array>
  readonly tokens: ReadonlyArray<number>
}

interface Waiting<E> {
  readonly texts: ReadonlyArray<string>
  readonly done: Deferred.Deferred<EmbeddedTexts, E>
}

/** The requests waiting for one model and adapter, and how many runs are taking them. */
interface Lane<C, E> {
  readonly key: string
  readonly context: C
  readonly waiting: Array<Waiting<E>>
  running: number
  /** Requests in recent runs: one small run does not shrink the next ones, a few do (down by one a run). */
  peak: number
}

export interface EmbeddingBatchesOptions<C, E> {
  /** Texts in one run at most; a request with more runs alone. */
  readonly maxTexts: number
  /** Runs of one lane at once (default 1). */
  readonly runsAtOnce?: number | undefined
  /** Held from before a run gathers its requests until it ends: a permit of the node's queue. */
  readonly turn: <A, E1>(run: Effect.Effect<A, E1>) => Effect.Effect<A, E1>
  /** One model run over the texts of several requests. */
  readonly run: (context: C, texts: ReadonlyArray<string>) => Effect.Effect<EmbeddedTexts, E>
}

/** One turn of the event loop: sockets are read and their requests handled before it ends. */
const nextTurn = Effect.async<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

/** Run loops are forked into the caller's scope: they end with it. */
export const makeEmbeddingBatches = <C, E>(options: EmbeddingBatchesOptions<C, E>) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const runsAtOnce = Math.max(1, options.runsAtOnce ?? 1)
    const lanes = new Map<string, Lane<C, E>>()

    const textsOf = (waiting: ReadonlyArray<Waiting<E>>) =>
      waiting.reduce((sum, request) => sum + request.texts.length, 0)

    /** Waits while requests keep joining, or while fewer wait than recent runs carried. */
    const gather = (lane: Lane<C, E>, turnsLeft: number, seen: number): Effect.Effect<void> =>
      Effect.zipRight(
        nextTurn,
        Effect.suspend(() => {
          const now = lane.waiting.length
          return turnsLeft > 1 && (now > seen || now < lane.peak) && textsOf(lane.waiting) < options.maxTexts
            ? gather(lane, turnsLeft - 1, now)
            : Effect.void
        })
      )

    /** The waiting requests the next run takes: in arrival order, within `maxTexts` (at least one). */
    const take = (lane: Lane<C, E>) => {
      let texts = 0
      let count = 0
      for (const request of lane.waiting) {
        if (count > 0 && texts + request.texts.length > options.maxTexts) break
        texts += request.texts.length
        count++
      }
      return lane.waiting.splice(0, count)
    }

    const runAlone = (lane: Lane<C, E>, request: Waiting<E>) =>
      Effect.flatMap(Effect.exit(options.run(lane.context, request.texts)), (exit) => Deferred.done(request.done, exit))

    const runBatch = (lane: Lane<C, E>, batch: ReadonlyArray<Waiting<E>>) =>
      Effect.gen(function*() {
        if (batch.length === 1) return yield* runAlone(lane, batch[0]!)
        const exit = yield* Effect.exit(options.run(lane.context, batch.flatMap((request) => request.texts)))
        if (Exit.isFailure(exit)) {
          // Which request's input failed the run is not known: each runs again on its own.
          return yield* Effect.forEach(batch, (request) => runAlone(lane, request), { discard: true })
        }
        let offset = 0
        for (const request of batch) {
          const count = request.texts.length
          yield* Deferred.succeed(request.done, {
            vectors: exit.value.vectors.slice(offset, offset + count),
            tokens: exit.value.tokens.slice(offset, offset + count)
          })
          offset += count
        }
      })

    /** Whether more waits; when not, this loop ends in the same step that finds the lane empty. */
    const goOn = (lane: Lane<C, E>) =>
      Effect.sync(() => {
        if (lane.waiting.length > 0) return true
        lane.running--
        if (lane.running === 0) lanes.delete(lane.key)
        return false
      })

    /** Runs batches until nothing waits. */
    const drain = (lane: Lane<C, E>): Effect.Effect<void> =>
      Effect.gen(function*() {
        yield* options.turn(Effect.gen(function*() {
          yield* gather(lane, GATHER_TURNS, lane.waiting.length)
          const batch = take(lane)
          if (batch.length === 0) return
          lane.peak = Math.max(batch.length, lane.peak - 1)
          yield* runBatch(lane, batch)
        }))
        if (yield* goOn(lane)) yield* drain(lane)
      })

    /** A loop ended early (its scope closed, or a defect): nobody is left waiting for it. */
    const stopped = (lane: Lane<C, E>, exit: Exit.Exit<void>) =>
      Exit.isSuccess(exit) ? Effect.void : Effect.suspend(() => {
        lane.running--
        if (lane.running > 0) return Effect.void
        lanes.delete(lane.key)
        const orphans = lane.waiting.splice(0)
        return Effect.forEach(orphans, (request) => Deferred.failCause(request.done, exit.cause), { discard: true })
      })

    /** Embeds one request's texts in the next run of its lane (one model and adapter: `key`). */
    const submit = (key: string, context: C, texts: ReadonlyArray<string>): Effect.Effect<EmbeddedTexts, E> =>
      Effect.suspend(() => {
        if (texts.length === 0) return Effect.succeed({ vectors: [], tokens: [] })
        let lane = lanes.get(key)
        if (lane === undefined) lanes.set(key, lane = { key, context, waiting: [], running: 0, peak: 0 })
        const done = Deferred.unsafeMake<EmbeddedTexts, E>(FiberId.none)
        lane.waiting.push({ texts, done })
        if (lane.running >= runsAtOnce) return Deferred.await(done)
        lane.running++
        const started = lane
        return Effect.zipRight(
          Effect.forkIn(Effect.onExit(drain(started), (exit) => stopped(started, exit)), scope),
          Deferred.await(done)
        )
      })

    return { submit } as const
  })
