/**
 * Soak: five rounds of load, SIGKILL at a different point each round, restart, full recovery checks.
 * Minutes, not seconds: `npm run test:slow`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { expectRecovered, transferUntilKilled } from "../support/LedgerLoad.js"
import { startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

describe("crash soak", () => {
  it.live(
    "five SIGKILLs under load on one data dir lose nothing and leave a verifiable log",
    () =>
      Effect.gen(function*() {
        const dataDir = tempDir()
        const acknowledged: Array<string> = []
        for (let round = 0; round < 5; round++) {
          const node = yield* Effect.promise(() => startNode(dataDir))
          if (round > 0) yield* expectRecovered(node.url, acknowledged, BigInt(round) * 8_000_000n)
          yield* transferUntilKilled(node, round, acknowledged, 300 + round * 450, () => node.process.kill("SIGKILL"))
          expect(yield* Effect.promise(() => node.exited)).toBeNull()
        }
        const last = yield* Effect.promise(() => startNode(dataDir))
        try {
          yield* expectRecovered(last.url, acknowledged, 5n * 8_000_000n)
        } finally {
          expect(yield* Effect.promise(() => last.kill("SIGTERM"))).toBe(0)
        }
      }),
    600_000
  )
})
