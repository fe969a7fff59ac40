/**
 * Concurrent embedding requests for one model and adapter, run together: a request that arrives while
 * a run is in progress joins the next one, so eight clients sending one text each share a model run
 * instead of queueing for eight, and each request gets back exactly its own vectors.
 *
 * A run takes what is waiting, in arrival order, up to `maxTexts` texts (a larger request runs alone).
 * Before it starts, its leader gives the event loop a few turns while requests keep joining, or while
 * the batch is smaller than recent ones were: a run blocks the JavaScript thread, so the requests that
 * arrived meanwhile are read only once it yields. A run that fails with several requests in it is run
 * again one request at a time, so a bad input fails only the request that sent it.
 */
import { Deferred, Effect, Exit, FiberId } from "effect"
import type { ModelHandle } from "../compute/inference/Model.js"
import type { Adapter } from "../compute/lora/AdapterFile.js"
import type { Encoding } from "../compute/tokenizer/Tokenizer.js"

/** Event-loop turns a leader waits at most for requests to join its run. */
const GATHER_TURNS = 4

interface Waiting<E> {
  readonly encodings: ReadonlyArray<Encoding>
  readonly done: Deferred.Deferred<ReadonlyArray<Float32Array>, E>
}

/** The requests waiting for one model and adapter, and whether a run loop is taking them. */
interface Lane<E> {
  readonly handle: ModelHandle
  readonly adapter: Adapter | undefined
  readonly waiting: Array<Waiting<E>>
  running: boolean
  /** Requests in recent runs: one small run does not shrink the next ones, a few do (down by one a run). */
  peak: number
}

export interface EmbeddingBatchesOptions<E> {
  /** Texts in one run at most; a request with more runs alone. */
  readonly maxTexts: number
  /** One model run over the texts of several requests (a permit of the node's queue around it). */
  readonly run: (
    handle: ModelHandle,
    adapter: Adapter | undefined,
    encodings: ReadonlyArray<Encoding>
  ) => Effect.Effect<Array<Float32Array>, E>
}

/** One turn of the event loop: sockets are read and their requests handled before it ends. */
const nextTurn = Effect.async<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

const adapterKeyOf = (adapter: Adapter | undefined) =>
  adapter === undefined ? "" : `${adapter.metadata.id}@${adapter.metadata.version}`

/** Run loops are forked into the caller's scope: they end with it. */
export const makeEmbeddingBatches = <E>(options: EmbeddingBatchesOptions<E>) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const lanes = new WeakMap<ModelHandle, Map<string, Lane<E>>>()

    const laneOf = (handle: ModelHandle, adapter: Adapter | undefined) => {
      let byAdapter = lanes.get(handle)
      if (byAdapter === undefined) lanes.set(handle, byAdapter = new Map())
      const key = adapterKeyOf(adapter)
      let lane = byAdapter.get(key)
      if (lane === undefined) byAdapter.set(key, lane = { handle, adapter, waiting: [], running: false, peak: 0 })
      return lane
    }

    /** Waits while requests keep joining, or while fewer wait than recent runs carried. */
    const gather = (lane: Lane<E>, turnsLeft: number, seen: number): Effect.Effect<void> =>
      Effect.zipRight(
        nextTurn,
        Effect.suspend(() => {
          const now = lane.waiting.length
          return turnsLeft > 1 && (now > seen || now < lane.peak) && textsOf(lane.waiting) < options.maxTexts
            ? gather(lane, turnsLeft - 1, now)
            : Effect.void
        })
      )

    const textsOf = (waiting: ReadonlyArray<Waiting<E>>) =>
      waiting.reduce((sum, request) => sum + request.encodings.length, 0)

    /** The waiting requests the next run takes: in arrival order, within `maxTexts` (at least one). */
    const take = (lane: Lane<E>) => {
      let texts = 0
      let count = 0
      for (const request of lane.waiting) {
        if (count > 0 && texts + request.encodings.length > options.maxTexts) break
        texts += request.encodings.length
        count++
      }
      return lane.waiting.splice(0, count)
    }

    const runAlone = (lane: Lane<E>, request: Waiting<E>) =>
      Effect.flatMap(
        Effect.exit(options.run(lane.handle, lane.adapter, request.encodings)),
        (exit) => Deferred.done(request.done, exit)
      )

    const runBatch = (lane: Lane<E>, batch: ReadonlyArray<Waiting<E>>) =>
      Effect.gen(function*() {
        if (batch.length === 1) return yield* runAlone(lane, batch[0]!)
        const exit = yield* Effect.exit(options.run(lane.handle, lane.adapter, batch.flatMap((r) => r.encodings)))
        if (Exit.isFailure(exit)) {
          // Which request's input failed the run is not known: each runs again on its own.
          return yield* Effect.forEach(batch, (request) => runAlone(lane, request), { discard: true })
        }
        let offset = 0
        for (const request of batch) {
          const count = request.encodings.length
          yield* Deferred.succeed(request.done, exit.value.slice(offset, offset + count))
          offset += count
        }
      })

    /** Runs batches until nothing waits; the lane is free again in the same step that finds it empty. */
    const drain = (lane: Lane<E>): Effect.Effect<void> =>
      Effect.gen(function*() {
        yield* gather(lane, GATHER_TURNS, lane.waiting.length)
        const batch = take(lane)
        lane.peak = Math.max(batch.length, lane.peak - 1)
        yield* runBatch(lane, batch)
        const more = yield* Effect.sync(() => {
          if (lane.waiting.length > 0) return true
          lane.running = false
          return false
        })
        if (more) yield* drain(lane)
      })

    /** A loop ended early (its scope closed, or a defect): nobody is left waiting for it. */
    const stopped = (lane: Lane<E>, exit: Exit.Exit<void>) =>
      Exit.isSuccess(exit) ? Effect.void : Effect.suspend(() => {
        lane.running = false
        const orphans = lane.waiting.splice(0)
        return Effect.forEach(orphans, (request) => Deferred.failCause(request.done, exit.cause), { discard: true })
      })

    /** Embeds one request's encodings in the next run for its model and adapter. */
    const submit = (
      handle: ModelHandle,
      adapter: Adapter | undefined,
      encodings: ReadonlyArray<Encoding>
    ): Effect.Effect<ReadonlyArray<Float32Array>, E> =>
      Effect.suspend(() => {
        if (encodings.length === 0) return Effect.succeed([])
        const lane = laneOf(handle, adapter)
        const done = Deferred.unsafeMake<ReadonlyArray<Float32Array>, E>(FiberId.none)
        lane.waiting.push({ encodings, done })
        if (lane.running) return Deferred.await(done)
        lane.running = true
        return Effect.zipRight(
          Effect.forkIn(Effect.onExit(drain(lane), (exit) => stopped(lane, exit)), scope),
          Deferred.await(done)
        )
      })

    return { submit } as const
  })
