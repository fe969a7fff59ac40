import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as fc from "fast-check"
import type {
  AdapterPoolCommand,
  AdapterPoolEvent,
  AdapterPoolState
} from "../../../src/actors/adapters/AdapterPool.js"
import {
  AdapterEvicted,
  AdapterLoaded,
  AdapterPinned,
  AdapterPoolEvent as AdapterPoolEventSchema,
  AdapterPools,
  AdapterPoolState as AdapterPoolStateSchema,
  AdapterUnloaded,
  AdapterUnpinned,
  AdapterUsed,
  evictionOrder,
  MAX_SLOTS,
  nearestAdapter,
  PoolConfigured,
  usedBytes
} from "../../../src/actors/adapters/AdapterPool.js"
import { fold } from "../../../src/events/Decider.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"

const spec = DeciderSpecification.for(AdapterPools.decider)

const loaded = (
  adapterId: string,
  bytes: number,
  options: { embedding?: ReadonlyArray<number>; pinned?: boolean; version?: string } = {}
) => {
  const version = options.version ?? "1"
  return AdapterLoaded.make({
    key: `${adapterId}@${version}`,
    adapterId,
    version,
    bytes,
    embedding: options.embedding ?? null,
    pinned: options.pinned ?? false
  })
}
const budget = (memoryBudgetBytes: number, maxSlots = MAX_SLOTS) => PoolConfigured.make({ maxSlots, memoryBudgetBytes })
const evicted = (key: string, bytes: number, reason: typeof AdapterEvicted.Type["reason"]) =>
  AdapterEvicted.make({ key, bytes, reason })
const load = (
  adapterId: string,
  bytes: number,
  extra: { embedding?: ReadonlyArray<number>; pin?: boolean } = {}
): AdapterPoolCommand => ({ _tag: "Load", adapterId, version: "1", bytes, ...extra })

describe("adapter pool decider", () => {
  it.effect("loads an adapter into a free slot with its task embedding normalized", () =>
    spec.given([]).when(load("code", 100, { embedding: [3, 4] })).then([
      loaded("code", 100, { embedding: [0.6, 0.8] })
    ]))

  it.effect("loading a resident version again is a use (and a pin when asked)", () =>
    Effect.gen(function*() {
      const given = spec.given([loaded("code", 100)])
      yield* given.when(load("code", 100)).then([AdapterUsed.make({ key: "code@1" })])
      yield* given.when(load("code", 100, { pin: true })).then([
        AdapterUsed.make({ key: "code@1" }),
        AdapterPinned.make({ key: "code@1" })
      ])
    }))

  it.effect("a full pool evicts the least recently used adapter, counting uses", () =>
    spec
      .given([budget(10_000, 3), loaded("a", 10), loaded("b", 10), loaded("c", 10), AdapterUsed.make({ key: "a@1" })])
      .when(load("d", 10))
      .then([evicted("b@1", 10, "slots"), loaded("d", 10)]))

  it.effect("memory pressure evicts as many least recently used adapters as the new one needs, each recorded", () =>
    spec
      .given([budget(1_000), loaded("a", 300), loaded("b", 300), loaded("c", 300), AdapterUsed.make({ key: "a@1" })])
      .when(load("d", 600))
      .then([evicted("b@1", 300, "memory"), evicted("c@1", 300, "memory"), loaded("d", 600)]))

  it.effect("pinned adapters are never evicted, however long unused", () =>
    spec
      .given([budget(1_000, 2), loaded("a", 500, { pinned: true }), loaded("b", 100), AdapterUsed.make({ key: "b@1" })])
      .when(load("c", 400))
      .then([evicted("b@1", 100, "slots"), loaded("c", 400)]))

  it.effect("a load that fits only by evicting pinned adapters is refused, with nothing evicted", () =>
    Effect.gen(function*() {
      yield* spec
        .given([budget(1_000), loaded("a", 800, { pinned: true }), loaded("b", 100)])
        .when(load("c", 300))
        .thenFails((e) =>
          e.message ===
            "cannot load c@1 (300 bytes): pinned adapters hold 800 of the 1000-byte budget; unpin some first"
        )
      yield* spec
        .given([budget(1_000, 2), loaded("a", 10, { pinned: true }), loaded("b", 10, { pinned: true })])
        .when(load("c", 10, { pin: true }))
        .thenFails((e) => e.message === "cannot load c@1: pinned adapters fill all 2 slots; unpin one first")
    }))

  it.effect("an adapter larger than the whole budget is refused in one line", () =>
    spec
      .given([budget(1_000)])
      .when(load("huge", 1_001))
      .thenFails((e) =>
        e._tag === "AdapterTooLarge" &&
        e.message === "adapter huge@1 needs 1001 bytes, more than the pool's whole memory budget of 1000 bytes"
      ))

  it.effect("lowering the budget evicts least recently used unpinned adapters first; pinned ones above it refuse", () =>
    Effect.gen(function*() {
      const given = spec.given([
        loaded("a", 300, { pinned: true }),
        loaded("b", 300),
        loaded("c", 300),
        AdapterUsed.make({ key: "b@1" })
      ])
      yield* given.when({ _tag: "Configure", memoryBudgetBytes: 500 }).then([
        evicted("c@1", 300, "budget-lowered"),
        evicted("b@1", 300, "budget-lowered"),
        budget(500)
      ])
      yield* given.when({ _tag: "Configure", memoryBudgetBytes: 700 }).then([
        evicted("c@1", 300, "budget-lowered"),
        budget(700)
      ])
      yield* given.when({ _tag: "Configure", maxSlots: 2 }).then([
        evicted("c@1", 300, "slots-lowered"),
        budget(256 * 1024 * 1024, 2)
      ])
      yield* given.when({ _tag: "Configure", memoryBudgetBytes: 299 }).thenFails((e) =>
        e.message === "cannot lower the memory budget to 299 bytes: pinned adapters hold 300 bytes; unpin some first"
      )
      yield* given.when({ _tag: "Configure", maxSlots: 16 }).thenNothing()
    }))

  it.effect("16 slots is a hard cap: configuring more is refused, the 17th load evicts, 16 pinned refuse a 17th", () =>
    Effect.gen(function*() {
      yield* spec.given([]).when({ _tag: "Configure", maxSlots: 17 }).thenFails((e) =>
        e.message === "invalid adapter pool configuration: maxSlots must be an integer from 1 to 16, got 17"
      )
      yield* spec.given([]).when({ _tag: "Configure", maxSlots: 0 }).thenFails((e) => e._tag === "InvalidPoolConfig")
      const sixteen = Array.from({ length: 16 }, (_, i) => loaded(`a${i}`, 1))
      yield* spec.given(sixteen).when(load("a16", 1)).then([evicted("a0@1", 1, "slots"), loaded("a16", 1)])
      const pinned = Array.from({ length: 16 }, (_, i) => loaded(`a${i}`, 1, { pinned: true }))
      yield* spec.given(pinned).when(load("a16", 1)).thenFails((e) =>
        e._tag === "PinnedAdaptersFillPool" && e.limit === "slots"
      )
    }))

  it.effect("pins, unpins and unloads only resident adapters; a pinned one must be unpinned before unloading", () =>
    Effect.gen(function*() {
      const given = spec.given([loaded("a", 10), loaded("b", 20, { pinned: true })])
      yield* given.when({ _tag: "Pin", key: "a@1" }).then([AdapterPinned.make({ key: "a@1" })])
      yield* given.when({ _tag: "Pin", key: "b@1" }).thenNothing()
      yield* given.when({ _tag: "Unpin", key: "b@1" }).then([AdapterUnpinned.make({ key: "b@1" })])
      yield* given.when({ _tag: "Unload", key: "a@1" }).then([AdapterUnloaded.make({ key: "a@1", bytes: 10 })])
      yield* given.when({ _tag: "Unload", key: "b@1" }).thenFails((e) =>
        e.message === "adapter b@1 is pinned: unpin it before unloading it"
      )
      yield* given.when({ _tag: "Use", key: "zzz@1" }).thenFails((e) =>
        e.message === "adapter zzz@1 is not resident in the pool"
      )
      yield* given.when({ _tag: "Pin", key: "a@2" }).thenFails((e) => e._tag === "AdapterNotResident")
    }))

  it.effect("refuses bad sizes, ids and embeddings", () =>
    Effect.gen(function*() {
      yield* spec.given([]).when(load("a", 0)).thenFails((e) =>
        e.message === "invalid adapter a@1: bytes must be a positive integer, got 0"
      )
      yield* spec.given([]).when(load("a", 1.5)).thenFails((e) => e._tag === "InvalidAdapter")
      yield* spec.given([]).when({ _tag: "Load", adapterId: "a", version: "1@2", bytes: 1 }).thenFails((e) =>
        e._tag === "InvalidAdapter"
      )
      yield* spec.given([]).when(load("a", 1, { embedding: [0, 0] })).thenFails((e) =>
        e.message === "invalid task embedding: its length is zero (or overflows)"
      )
      yield* spec.given([]).when(load("a", 1, { embedding: [] })).thenFails((e) => e._tag === "InvalidEmbedding")
      yield* spec.given([]).when(load("a", 1, { embedding: [1, Number.NaN] })).thenFails((e) =>
        e._tag === "InvalidEmbedding"
      )
      yield* spec.given([loaded("a", 1, { embedding: [1, 0] })]).when(load("b", 1, { embedding: [1, 0, 0] })).thenFails(
        (e) => e.message === "task embedding has 3 dimensions, the pool's adapters have 2"
      )
    }))
})

describe("selection by nearest task embedding", () => {
  const residents = [
    loaded("code", 10, { embedding: [1, 0, 0] }),
    loaded("chat", 10, { embedding: [0, 1, 0] }),
    loaded("math", 10, { embedding: [0, 0.6, 0.8] }),
    loaded("plain", 10)
  ]
  const state = fold(AdapterPools.decider.evolve, AdapterPools.decider.initialState, residents)
  const keys = (query: ReadonlyArray<number>, k?: number) =>
    Either.map(nearestAdapter(state, query, k), (matches) => matches.map((match) => match.key))

  it("ranks residents with an embedding by cosine similarity, whatever the query's length", () => {
    expect(keys([0, 5, 1])).toEqual(Either.right(["chat@1"]))
    expect(keys([0, 5, 1], 3)).toEqual(Either.right(["chat@1", "math@1", "code@1"]))
    expect(keys([0, 0, -1], 10)).toEqual(Either.right(["chat@1", "code@1", "math@1"]))
    const [best] = Either.getOrThrow(nearestAdapter(state, [0, 3, 4]))
    expect(best!.key).toBe("math@1")
    expect(best!.similarity).toBeCloseTo(1, 12)
  })

  it("breaks ties by key, and refuses a query of another dimension", () => {
    expect(keys([1, 1, 0], 2)).toEqual(Either.right(["chat@1", "code@1"]))
    const mismatch = nearestAdapter(state, [1, 0])
    expect(Either.isLeft(mismatch) && mismatch.left.message).toBe(
      "task embedding has 2 dimensions, the pool's adapters have 3"
    )
    expect(nearestAdapter(AdapterPools.decider.initialState, [1, 0])).toEqual(Either.right([]))
  })

  it.effect("selecting records a use of the nearest adapter with its similarity", () =>
    Effect.gen(function*() {
      yield* spec.given(residents).when({ _tag: "Select", embedding: [2, 0, 0] }).then([
        AdapterUsed.make({ key: "code@1", similarity: 1 })
      ])
      yield* spec.given(residents).when({ _tag: "Select", embedding: [1, 0] }).thenFails((e) =>
        e._tag === "EmbeddingDimensionMismatch"
      )
      yield* spec.given([loaded("plain", 10)]).when({ _tag: "Select", embedding: [1, 0] }).thenFails((e) =>
        e.message === "no resident adapter has a task embedding to compare with"
      )
    }))
})

// Random histories over a small universe of adapters, small budgets and slot counts, so that every rule is hit.
type Step = AdapterPoolCommand | {
  readonly _tag: "OnResident"
  readonly action: "Use" | "Pin" | "Unpin" | "Unload"
  readonly pick: number
}

const keyOf = fc.record({ id: fc.integer({ min: 0, max: 19 }), version: fc.constantFrom("1", "2") }).map((
  { id, version }
) => `ad${id}@${version}`)
const embedding = fc.oneof(
  { arbitrary: fc.array(fc.integer({ min: -4, max: 4 }), { minLength: 3, maxLength: 3 }), weight: 8 },
  { arbitrary: fc.array(fc.integer({ min: -4, max: 4 }), { minLength: 2, maxLength: 2 }), weight: 1 }
)
const loadCommand = fc.record({
  id: fc.integer({ min: 0, max: 19 }),
  version: fc.constantFrom("1", "2"),
  bytes: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 400 }), weight: 9 }, {
    arbitrary: fc.integer({ min: 0, max: 3_000 }),
    weight: 1
  }),
  embedding: fc.option(embedding, { nil: undefined }),
  pin: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 })
}).map(({ id, ...rest }): Step => ({ _tag: "Load", adapterId: `ad${id}`, ...rest }))
/** Mostly on one of the adapters resident when the step runs (picked then), sometimes on any key. */
const onKey = (action: "Use" | "Pin" | "Unpin" | "Unload") =>
  fc.oneof(
    { arbitrary: fc.nat().map((pick): Step => ({ _tag: "OnResident", action, pick })), weight: 4 },
    { arbitrary: keyOf.map((key): Step => ({ _tag: action, key })), weight: 1 }
  )
const configure = fc.record({
  maxSlots: fc.option(fc.integer({ min: 0, max: 17 }), { nil: undefined }),
  memoryBudgetBytes: fc.option(fc.integer({ min: 100, max: 3_000 }), { nil: undefined })
}).map((limits): Step => ({ _tag: "Configure", ...limits }))
const step = fc.oneof(
  { arbitrary: loadCommand, weight: 10 },
  { arbitrary: onKey("Use"), weight: 3 },
  { arbitrary: onKey("Pin"), weight: 2 },
  { arbitrary: onKey("Unpin"), weight: 2 },
  { arbitrary: onKey("Unload"), weight: 2 },
  { arbitrary: configure, weight: 2 },
  { arbitrary: embedding.map((query): Step => ({ _tag: "Select", embedding: query })), weight: 2 }
)
const history = fc.tuple(
  fc.record({ maxSlots: fc.integer({ min: 1, max: 16 }), memoryBudgetBytes: fc.integer({ min: 300, max: 3_000 }) })
    .map((limits): Step => ({ _tag: "Configure", ...limits })),
  fc.array(step, { minLength: 1, maxLength: 80, size: "max" })
).map(([first, rest]) => [first, ...rest])

const commandFor = (next: Step, state: AdapterPoolState): AdapterPoolCommand => {
  if (next._tag !== "OnResident") return next
  const keys = Object.keys(state.residents).sort()
  return { _tag: next.action, key: keys.length === 0 ? "none@1" : keys[next.pick % keys.length]! }
}

const pinnedKeys = (state: AdapterPoolState) =>
  Object.keys(state.residents).filter((key) => state.residents[key]!.pinned)

const expectFits = (state: AdapterPoolState) => {
  expect(state.maxSlots).toBeLessThanOrEqual(MAX_SLOTS)
  expect(Object.keys(state.residents).length).toBeLessThanOrEqual(state.maxSlots)
  expect(usedBytes(state)).toBeLessThanOrEqual(state.memoryBudgetBytes)
}

const roundTrip = <A, I>(schema: Schema.Schema<A, I>, value: A): A =>
  Schema.decodeUnknownSync(schema)(JSON.parse(JSON.stringify(Schema.encodeSync(schema)(value))))

describe("adapter pool histories", () => {
  it("limits hold after every event, eviction takes the least recently used unpinned adapter, and replay equals the live fold", () =>
    fc.assert(
      fc.property(history, (steps) => {
        const { decide, evolve, initialState } = AdapterPools.decider
        const log: Array<AdapterPoolEvent> = []
        let state = initialState
        for (const planned of steps) {
          const next = commandFor(planned, state)
          const outcome = Effect.runSync(Effect.either(decide(next, state)))
          if (Either.isLeft(outcome)) {
            // Refusals are the typed, one-line errors a user reads; they record nothing.
            expect(outcome.left.message).not.toContain("\n")
            if (
              next._tag === "Load" && next.embedding === undefined && Number.isSafeInteger(next.bytes) && next.bytes > 0
            ) {
              const key = `${next.adapterId}@${next.version}`
              const pinned = pinnedKeys(state).map((pinnedKey) => state.residents[pinnedKey]!)
              const fits = pinned.length + 1 <= state.maxSlots &&
                pinned.reduce((sum, adapter) => sum + adapter.bytes, 0) + next.bytes <= state.memoryBudgetBytes
              expect(!Object.hasOwn(state.residents, key) && !fits).toBe(true)
            }
            continue
          }
          const pinnedBefore = pinnedKeys(state)
          for (const event of outcome.right) {
            if (event._tag === "AdapterEvicted") expect(event.key).toBe(evictionOrder(state)[0])
            state = evolve(state, event)
            expectFits(state)
            log.push(event)
          }
          // Pinned adapters leave only by an unpin: never evicted, never unloaded.
          for (const key of pinnedBefore) {
            expect(Object.hasOwn(state.residents, key)).toBe(true)
            if (!(next._tag === "Unpin" && next.key === key)) expect(state.residents[key]!.pinned).toBe(true)
          }
          if (next._tag === "Load") {
            expect(Object.hasOwn(state.residents, `${next.adapterId}@${next.version}`)).toBe(true)
          }
        }
        // Replay from the stored form of the events (and of a snapshot of the state) gives the live state.
        const replayed = fold(evolve, initialState, log.map((event) => roundTrip(AdapterPoolEventSchema, event)))
        expect(replayed).toEqual(state)
        expect(roundTrip(AdapterPoolStateSchema, state)).toEqual(state)
      }),
      { numRuns: 300 }
    ))
})
