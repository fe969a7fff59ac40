import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { AdapterPool, adapterPoolLive } from "../../../src/actors/adapters/AdapterPoolService.js"
import { makeStreamId } from "../../../src/domain/Ids.js"
import { Journal } from "../../../src/events/Journal.js"
import type { Snapshots } from "../../../src/events/Snapshots.js"
import { replayMismatches } from "../../support/Actors.js"
import { memoryKernel, sqliteKernel } from "../../support/Layers.js"
import { tempDir } from "../../support/TempDir.js"

const poolOn = (file: string, pool: Layer.Layer<AdapterPool, unknown, Journal | Snapshots> = AdapterPool.Default) =>
  pool.pipe(Layer.provideMerge(sqliteKernel(file)))

describe("AdapterPool service", () => {
  it.effect("records loads, evictions, pins and selections in the journal, and a restart replays the same pool", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const before = yield* Effect.gen(function*() {
        const pool = yield* AdapterPool
        yield* pool.configure({ maxSlots: 4, memoryBudgetBytes: 1_000 })
        yield* pool.load({ adapterId: "code", version: "1.0.0", bytes: 400, embedding: [1, 0, 0], pin: true })
        yield* pool.load({ adapterId: "chat", version: "1.0.0", bytes: 300, embedding: [0, 1, 0] })
        yield* pool.load({ adapterId: "math", version: "2.1.0", bytes: 200, embedding: [0, 0, 1] })

        const chosen = yield* pool.select([0.1, 0.9, 0])
        expect(chosen.key).toBe("chat@1.0.0")
        expect(chosen.similarity).toBeCloseTo(0.9 / Math.hypot(0.1, 0.9), 12)

        // 900 + 300 bytes: the least recently used unpinned adapter (math, chat was just selected) goes.
        const loaded = yield* pool.load({ adapterId: "vision", version: "1", bytes: 300 })
        expect(loaded.events).toMatchObject([{ _tag: "AdapterEvicted", key: "math@2.1.0", reason: "memory" }, {
          _tag: "AdapterLoaded",
          key: "vision@1"
        }])
        expect(loaded.residents.map((resident) => resident.key)).toEqual(["vision@1", "chat@1.0.0", "code@1.0.0"])
        expect(loaded.usedBytes).toBe(1_000)

        // Refused: only evicting the pinned adapter would make room, so nothing is recorded.
        const refused = yield* Effect.flip(pool.load({ adapterId: "huge", version: "1", bytes: 700 }))
        expect(refused.message).toBe(
          "cannot load huge@1 (700 bytes): pinned adapters hold 400 of the 1000-byte budget; unpin some first"
        )
        const after = yield* pool.state()
        expect(after.version).toBe(loaded.version)
        expect(after.residents).toEqual(loaded.residents)

        const history = yield* (yield* Journal).readStream(makeStreamId("AdapterPool", "local"), 1)
        expect(history.map((envelope) => envelope.eventType)).toEqual([
          "PoolConfigured",
          "AdapterLoaded",
          "AdapterLoaded",
          "AdapterLoaded",
          "AdapterUsed",
          "AdapterEvicted",
          "AdapterLoaded"
        ])
        return after
      }).pipe(Effect.provide(poolOn(file)))

      // A fresh process on the same file: the pool is rebuilt from the log alone, recency included.
      yield* Effect.gen(function*() {
        const pool = yield* AdapterPool
        expect(yield* pool.state()).toEqual(before)
        expect(yield* replayMismatches("AdapterPool")).toEqual([])
        const next = yield* pool.load({ adapterId: "audio", version: "1", bytes: 300 })
        expect(next.events[0]).toMatchObject({ _tag: "AdapterEvicted", key: "chat@1.0.0", reason: "memory" })
      }).pipe(Effect.provide(poolOn(file)))
    }))

  it.effect("the live layer applies the node's limits at start, and keeps them when pinned adapters exceed the new ones", () =>
    // One journal, the service built anew on it for each start, as a restarted node would.
    Effect.gen(function*() {
      const startWith = (memoryBudgetBytes: number) => Effect.provide(adapterPoolLive({ memoryBudgetBytes }))
      yield* Effect.gen(function*() {
        const pool = yield* AdapterPool
        yield* pool.load({ adapterId: "base", version: "1", bytes: 400, pin: true })
        yield* pool.load({ adapterId: "old", version: "1", bytes: 300 })
        yield* pool.load({ adapterId: "new", version: "1", bytes: 300 })
      }).pipe(startWith(1_000))

      const lowered = yield* AdapterPool.pipe(Effect.flatMap((pool) => pool.state()), startWith(800))
      expect(lowered.memoryBudgetBytes).toBe(800)
      expect(lowered.residents.map((resident) => resident.key)).toEqual(["new@1", "base@1"])
      const history = yield* (yield* Journal).readStream(makeStreamId("AdapterPool", "local"), 1)
      expect(history.slice(-2).map((envelope) => envelope.payload)).toEqual([
        { _tag: "AdapterEvicted", key: "old@1", bytes: 300, reason: "budget-lowered" },
        { _tag: "PoolConfigured", maxSlots: 16, memoryBudgetBytes: 800 }
      ])

      const kept = yield* AdapterPool.pipe(Effect.flatMap((pool) => pool.state()), startWith(300))
      expect(kept).toEqual(lowered)
    }).pipe(Effect.provide(memoryKernel())))
})
