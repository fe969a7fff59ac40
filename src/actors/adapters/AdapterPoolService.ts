/**
 * The adapter pool service: loads, uses, pins and unloads the node's resident adapters on its pool
 * entity (`AdapterPool-local`), and picks the resident adapter nearest a task embedding, recording the use.
 */
import { Effect, Layer, Schema } from "effect"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { AdapterPoolEvent, AdapterPoolState, AdapterToLoad, PoolLimits } from "./AdapterPool.js"
import {
  AdapterPoolEvent as AdapterPoolEventSchema,
  AdapterPools,
  MAX_SLOTS,
  nearestAdapter,
  usedBytes
} from "./AdapterPool.js"

/** A node runs one pool: its adapters live in its own memory. */
export const LOCAL_POOL = "local"

export const ResidentView = Schema.Struct({
  key: Schema.String,
  adapterId: Schema.String,
  version: Schema.String,
  bytes: Schema.Number,
  pinned: Schema.Boolean,
  lastUsed: Schema.Number,
  /** Length of the adapter's task embedding, null when it has none (never selected by embedding). */
  dimensions: Schema.NullOr(Schema.Number)
})
export type ResidentView = typeof ResidentView.Type

export const PoolView = Schema.Struct({
  maxSlots: Schema.Number,
  memoryBudgetBytes: Schema.Number,
  usedBytes: Schema.Number,
  /** Most recently used first. */
  residents: Schema.Array(ResidentView),
  version: Schema.Number
})
export type PoolView = typeof PoolView.Type

export const PoolReceipt = Schema.Struct({
  ...PoolView.fields,
  /** What this command recorded: loads, evictions (with their reason), uses, pins. */
  events: Schema.Array(AdapterPoolEventSchema),
  position: Schema.Number
})
export type PoolReceipt = typeof PoolReceipt.Type

export const Selection = Schema.Struct({ ...PoolReceipt.fields, key: Schema.String, similarity: Schema.Number })
export type Selection = typeof Selection.Type

const toView = (state: AdapterPoolState, version: number): PoolView => ({
  maxSlots: state.maxSlots,
  memoryBudgetBytes: state.memoryBudgetBytes,
  usedBytes: usedBytes(state),
  residents: Object.entries(state.residents)
    .map(([key, resident]): ResidentView => ({
      key,
      adapterId: resident.adapterId,
      version: resident.version,
      bytes: resident.bytes,
      pinned: resident.pinned,
      lastUsed: resident.lastUsed,
      dimensions: resident.embedding?.length ?? null
    }))
    .sort((a, b) => b.lastUsed - a.lastUsed),
  version
})

const receipt = (result: ActorRunner.CommandResult<AdapterPoolEvent, AdapterPoolState>): PoolReceipt => ({
  ...toView(result.state, result.version),
  events: result.events,
  position: result.position
})

export class AdapterPool extends Effect.Service<AdapterPool>()("edge-net/AdapterPool", {
  effect: Effect.gen(function*() {
    const pools = yield* ActorRunner.make(AdapterPools, { snapshotEvery: 100 })

    /** Makes the adapter resident, evicting least recently used unpinned adapters as slots and memory require. */
    const load = Effect.fn("AdapterPool.load")(function*(adapter: AdapterToLoad) {
      return receipt(yield* pools.send(LOCAL_POOL, { _tag: "Load", ...adapter }))
    })

    /** Marks a resident adapter (`<adapterId>@<version>`) as just used. */
    const use = Effect.fn("AdapterPool.use")(function*(key: string) {
      return receipt(yield* pools.send(LOCAL_POOL, { _tag: "Use", key }))
    })

    /** Keeps a resident adapter until it is unpinned: never evicted. */
    const pin = Effect.fn("AdapterPool.pin")(function*(key: string) {
      return receipt(yield* pools.send(LOCAL_POOL, { _tag: "Pin", key }))
    })

    const unpin = Effect.fn("AdapterPool.unpin")(function*(key: string) {
      return receipt(yield* pools.send(LOCAL_POOL, { _tag: "Unpin", key }))
    })

    const unload = Effect.fn("AdapterPool.unload")(function*(key: string) {
      return receipt(yield* pools.send(LOCAL_POOL, { _tag: "Unload", key }))
    })

    /** New limits (at most 16 slots); lowering one evicts least recently used unpinned adapters. */
    const configure = Effect.fn("AdapterPool.configure")(function*(limits: PoolLimits) {
      return receipt(yield* pools.send(LOCAL_POOL, { _tag: "Configure", ...limits }))
    })

    /** The resident adapter nearest the task embedding (cosine), recorded as used. */
    const select = Effect.fn("AdapterPool.select")(function*(embedding: ReadonlyArray<number>) {
      const result = yield* pools.send(LOCAL_POOL, { _tag: "Select", embedding })
      // Select decides exactly one AdapterUsed, carrying the similarity it chose by.
      const used = result.events[0] as Extract<AdapterPoolEvent, { _tag: "AdapterUsed" }>
      return { ...receipt(result), key: used.key, similarity: used.similarity ?? 0 } satisfies Selection
    })

    /**
     * The resident adapters nearest the task embedding (cosine), best first, without recording a use:
     * a caller that must also filter them (an inference server wants one made for its base model)
     * records the one it runs with `use`.
     */
    const nearest = Effect.fn("AdapterPool.nearest")(function*(embedding: ReadonlyArray<number>, k = MAX_SLOTS) {
      const { state } = yield* pools.state(LOCAL_POOL)
      return yield* nearestAdapter(state, embedding, k)
    })

    const state = Effect.fn("AdapterPool.state")(function*() {
      const { state, version } = yield* pools.state(LOCAL_POOL)
      return toView(state, version)
    })

    return { load, use, pin, unpin, unload, configure, select, nearest, state } as const
  })
}) {}

/**
 * The pool as a node runs it: the service, with the node's limits applied at start (no event when they
 * are already in force). Pinned adapters above a lowered limit keep the recorded limits, with a warning,
 * rather than stop the node.
 */
export const adapterPoolLive = (limits: PoolLimits = {}) =>
  Layer.effectDiscard(
    Effect.flatMap(AdapterPool, (pool) =>
      pool.configure(limits).pipe(
        Effect.catchTag(
          "PinnedAdaptersExceedLimit",
          (refused) => Effect.logWarning(`adapter pool: keeping its limits: ${refused.message}`)
        )
      ))
  ).pipe(Layer.provideMerge(AdapterPool.Default))
