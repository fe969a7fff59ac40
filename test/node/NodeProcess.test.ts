import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schedule } from "effect"
import { AccountId } from "../../src/actors/economy/Account.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const account = AccountId.make

interface EventsPage {
  readonly events: ReadonlyArray<{ readonly eventType: string; readonly payload: { readonly transferId?: string } }>
  readonly next: number
}

const allEvents = async (url: string) => {
  const events: Array<EventsPage["events"][number]> = []
  let from = 1
  while (true) {
    const page = (await (await fetch(`${url}/v1/events?from=${from}&limit=1000`)).json()) as EventsPage
    events.push(...page.events)
    if (page.events.length < 1000) return events
    from = page.next
  }
}

describe("edge-net node process", () => {
  it.live("serves /health, /docs and the audit feed", () =>
    Effect.gen(function* () {
      const node = yield* Effect.promise(() => startNode(tempDir()))
      try {
        const health = yield* Effect.promise(() => fetch(`${node.url}/health`).then((r) => r.json()))
        expect(health).toMatchObject({ status: "ok", head: { position: 0 } })
        const docs = yield* Effect.promise(() => fetch(`${node.url}/docs`).then((r) => r.text()))
        expect(docs).toContain("swagger")
        const openapi = (yield* Effect.promise(() => fetch(`${node.url}/docs/openapi.json`).then((r) => r.json()))) as { paths: object }
        expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(["/health", "/v1/events", "/v1/ledger/accounts/{account}"]))
        const bad = yield* Effect.promise(() => fetch(`${node.url}/v1/events?from=0`))
        expect(bad.status).toBe(400)
      } finally {
        yield* Effect.promise(() => node.kill("SIGTERM"))
      }
    }), 60_000)

  it.live("SIGKILL mid-load loses no acknowledged transfer; the chain verifies and replay equals live state after restart", () =>
    Effect.gen(function* () {
      const dataDir = tempDir()
      const first = yield* Effect.promise(() => startNode(dataDir))
      const accounts = Array.from({ length: 8 }, (_, i) => account(`acct-${i}`))
      const acknowledged: Array<string> = []
      yield* Effect.gen(function* () {
        const client = yield* nodeRpcClient
        yield* Effect.forEach(accounts, (id) => client.LedgerMint({ account: id, amount: 1_000_000n }))
        // 64 callers transferring in a loop until the node dies under them.
        const caller = (n: number) =>
          Effect.gen(function* () {
            for (let i = 0; ; i++) {
              const transferId = `t-${n}-${i}`
              const outcome = yield* Effect.either(
                client.LedgerTransfer({
                  from: accounts[(n + i) % 8]!, to: accounts[(n + i + 1 + (i % 7)) % 8]!, amount: BigInt(1 + ((n * 31 + i) % 50)),
                  transferId: transferId as never
                })
              )
              if (Either.isLeft(outcome)) return
              acknowledged.push(transferId)
            }
          })
        const killer = Effect.gen(function* () {
          yield* Effect.sleep("200 millis").pipe(Effect.repeat({ until: () => acknowledged.length >= 400 }))
          first.process.kill("SIGKILL")
        })
        yield* Effect.all([Effect.forEach(Array.from({ length: 64 }, (_, n) => n), caller, { concurrency: 64 }), killer], {
          concurrency: "unbounded"
        })
      }).pipe(Effect.scoped, Effect.provide(rpcProtocol(first.url)))
      expect(yield* Effect.promise(() => first.exited)).toBeNull()
      expect(acknowledged.length).toBeGreaterThanOrEqual(400)

      const second = yield* Effect.promise(() => startNode(dataDir))
      try {
        const events = yield* Effect.promise(() => allEvents(second.url))
        const debited = new Set(events.filter((e) => e.eventType === "Debited").map((e) => e.payload.transferId))
        const credited = new Set(events.filter((e) => e.eventType === "Credited").map((e) => e.payload.transferId))
        for (const transferId of acknowledged) {
          expect(debited.has(transferId)).toBe(true)
          expect(credited.has(transferId)).toBe(true)
        }
        yield* Effect.gen(function* () {
          const client = yield* nodeRpcClient
          const chain = yield* client.AuditVerify()
          expect(chain).toMatchObject({ ok: true, firstBadPosition: null })
          expect(chain.eventsChecked).toBe(events.length)
          // Debits whose credit the kill cut off are finished by the credits policy after the restart.
          const replay = yield* client.AuditReplay().pipe(
            Effect.filterOrFail((report) => report.supply.inFlight === 0n),
            Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 200 })
          )
          expect(replay.ok).toBe(true)
          expect(replay.actors[0]!.mismatches).toEqual([])
          expect(replay.supply).toMatchObject({ minted: 8_000_000n, conserved: true, inFlight: 0n })
        }).pipe(Effect.scoped, Effect.provide(rpcProtocol(second.url)))
      } finally {
        expect(yield* Effect.promise(() => second.kill("SIGTERM"))).toBe(0)
        expect(second.output()).toContain("edge-net node stopped")
      }
    }), 120_000)
})
