/**
 * The adapter pool through a running node's /rpc, as an inference service would call it: loads,
 * selection by task embedding, eviction around a pin, a refusal in one line; then the node's own audit
 * replays the pool from the log, and a restarted node serves the same pool.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, FiberRef, Layer } from "effect"
import * as path from "node:path"
import { CurrentSigner, signingClientLayer } from "../../../src/rpc/CommandSigning.js"
import { compileCli, startCompiledNode } from "../../support/CompiledCli.js"
import { nodeRpcClient, rpcProtocol } from "../../support/RpcClient.js"
import { as, DEV_NETWORK, operatorKeyOf, testKey } from "../../support/Signing.js"
import { tempDir } from "../../support/TempDir.js"

describe("adapter pool over RPC", () => {
  it.scopedLive(
    "selects, evicts around a pin, refuses in one line, replays from the log and survives a restart",
    () =>
      Effect.gen(function*() {
        const root = compileCli()
        const dataDir = path.join(tempDir(), "node")
        const first = yield* Effect.promise(() => startCompiledNode(root, dataDir))
        let before: unknown
        try {
          const rpc = yield* nodeRpcClient.pipe(Effect.provide(Layer.merge(rpcProtocol(first.url), signingClientLayer)))
          // The pool is the node's own: only its operator key changes it.
          const stranger = yield* Effect.flip(as(testKey())(rpc.PoolConfigure({ maxSlots: 1 })))
          expect(stranger.message).toBe("PoolConfigure refused: needs 1 of the 1 operator key(s), signed by 0")
          yield* FiberRef.set(CurrentSigner, { key: operatorKeyOf(dataDir), network: DEV_NETWORK })
          yield* rpc.PoolConfigure({ maxSlots: 2, memoryBudgetBytes: 1_000_000 })
          yield* rpc.PoolLoad({ adapterId: "code", version: "1.0.0", bytes: 300_000, embedding: [1, 0, 0] })
          yield* rpc.PoolLoad({ adapterId: "chat", version: "1.0.0", bytes: 200_000, embedding: [0, 1, 0], pin: true })
          const chosen = yield* rpc.PoolSelect({ embedding: [0.9, 0.2, 0] })
          expect(chosen.key).toBe("code@1.0.0")
          expect(chosen.similarity).toBeCloseTo(0.9 / Math.hypot(0.9, 0.2), 6)

          // Two slots, one pinned: the third adapter can only take the unpinned one's place.
          const loaded = yield* rpc.PoolLoad({
            adapterId: "math",
            version: "2.0.0",
            bytes: 100_000,
            embedding: [0, 0, 1]
          })
          expect(loaded.events.map((event) => event._tag)).toEqual(["AdapterEvicted", "AdapterLoaded"])
          expect(loaded.events[0]).toMatchObject({ key: "code@1.0.0", reason: "slots" })
          expect(loaded.residents.map((resident) => resident.key)).toEqual(["math@2.0.0", "chat@1.0.0"])

          const refused = yield* Effect.flip(rpc.PoolUnload({ key: "chat@1.0.0" }))
          expect(refused.message).toBe("adapter chat@1.0.0 is pinned: unpin it before unloading it")
          const mismatch = yield* Effect.flip(rpc.PoolSelect({ embedding: [1, 0] }))
          expect(mismatch.message).toBe("task embedding has 2 dimensions, the pool's adapters have 3")

          const audit = yield* rpc.AuditReplay()
          const pools = audit.actors.find((actor) => actor.category === "AdapterPool")
          expect(pools).toMatchObject({ entities: 1, mismatches: [] })
          expect(audit.ok).toBe(true)
          before = yield* rpc.PoolState()
        } finally {
          yield* Effect.promise(() => first.kill("SIGTERM"))
        }
        const second = yield* Effect.promise(() => startCompiledNode(root, dataDir))
        try {
          const rpc = yield* nodeRpcClient.pipe(Effect.provide(rpcProtocol(second.url)))
          expect(yield* rpc.PoolState()).toEqual(before)
        } finally {
          yield* Effect.promise(() => second.kill("SIGTERM"))
        }
      }),
    120_000
  )
})
