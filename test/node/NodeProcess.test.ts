import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { compileCli, freePort, runCompiledCli, SYSTEM_PICKED_P2P } from "../support/CompiledCli.js"
import { expectRecovered, transferUntilKilled } from "../support/LedgerLoad.js"
import { startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

describe("edge-net node process", () => {
  it.live("serves /health, /docs and the audit feed", () =>
    Effect.gen(function*() {
      const dataDir = tempDir()
      const node = yield* Effect.promise(() => startNode(dataDir))
      try {
        // The node key was made on first start, readable by its owner only.
        expect(fs.statSync(path.join(dataDir, "node.key")).mode & 0o777).toBe(0o600)
        const health = yield* Effect.promise(() => fetch(`${node.url}/health`).then((r) => r.json()))
        // The one event of a new node: its network's charter (network id and operator keys).
        expect(health).toMatchObject({ status: "ok", head: { position: 1 } })
        // Swagger UI loads on this first request for the page (Docs.ts), not at start.
        const docs = yield* Effect.promise(() => fetch(`${node.url}/docs`).then((r) => r.text()))
        expect(docs).toContain("swagger")
        expect(docs).toContain("SwaggerUIBundle({")
        const openapi = (yield* Effect.promise(() => fetch(`${node.url}/docs/openapi.json`).then((r) => r.json()))) as {
          paths: object
        }
        expect(Object.keys(openapi.paths)).toEqual(
          expect.arrayContaining(["/health", "/v1/events", "/v1/ledger/accounts/{account}"])
        )
        const bad = yield* Effect.promise(() => fetch(`${node.url}/v1/events?from=0`))
        expect(bad.status).toBe(400)
      } finally {
        yield* Effect.promise(() => node.kill("SIGTERM"))
      }
    }), 60_000)

  it.live(
    "SIGKILL mid-load loses no acknowledged transfer; the chain verifies and replay equals live state after restart",
    () =>
      Effect.gen(function*() {
        const dataDir = tempDir()
        const first = yield* Effect.promise(() => startNode(dataDir))
        const acknowledged: Array<string> = []
        yield* transferUntilKilled(first, 0, acknowledged, 400, () => first.process.kill("SIGKILL"))
        expect(yield* Effect.promise(() => first.exited)).toBeNull()
        expect(acknowledged.length).toBeGreaterThanOrEqual(400)
        const second = yield* Effect.promise(() => startNode(dataDir))
        try {
          yield* expectRecovered(second.url, acknowledged, 8_000_000n)
        } finally {
          expect(yield* Effect.promise(() => second.kill("SIGTERM"))).toBe(0)
          expect(second.output()).toContain("edge-net node stopped")
        }
      }),
    120_000
  )

  it.live(
    "a port already taken is one line naming the address and the system's reason, exit code 1",
    () =>
      Effect.gen(function*() {
        const port = yield* Effect.promise(() => freePort())
        const taken = http.createServer()
        yield* Effect.promise(() => new Promise<void>((resolve) => taken.listen(port, "127.0.0.1", resolve)))
        try {
          const dataDir = tempDir()
          const result = yield* Effect.promise(() =>
            runCompiledCli(compileCli(), ["node", "start", "--data", dataDir, "--port", String(port)], {
              EDGE_NET_HOME: dataDir,
              EDGE_NET_FIRST_START_MODELS: "off",
              ...SYSTEM_PICKED_P2P
            })
          )
          expect(result.code).toBe(1)
          const errors = result.stderr.split("\n").filter((line) => line.startsWith("edge-net:"))
          expect(errors).toEqual([
            expect.stringMatching(new RegExp(`^edge-net: cannot listen on \\S+:${port}: .*EADDRINUSE`))
          ])
        } finally {
          taken.close()
        }
      }),
    60_000
  )
})
