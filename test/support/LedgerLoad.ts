/**
 * Load and checks shared by the crash tests: 64 RPC callers transferring rUv until told to stop, and
 * the checks a restarted node must pass (every acknowledged transfer whole, chain verifies, replay
 * equals live state, rUv conserved once the credits policy has caught up).
 */
import { Effect, Either, Layer, Schedule } from "effect"
import { expect } from "vitest"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import type { RunningNode } from "./NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "./RpcClient.js"
import { as, operatorKeyOf, testKey } from "./Signing.js"

/** Eight account holders, the same keys in every round and every restart. */
export const holders = Array.from({ length: 8 }, (_, i) => testKey(`ledger-load-${i}`))
export const accounts = holders.map((holder) => holder.account)

interface EventsPage {
  readonly events: ReadonlyArray<{ readonly eventType: string; readonly payload: { readonly transferId?: string } }>
  readonly next: number
}

export const allEvents = async (url: string) => {
  const events: Array<EventsPage["events"][number]> = []
  let from = 1
  while (true) {
    const page = (await (await fetch(`${url}/v1/events?from=${from}&limit=1000`)).json()) as EventsPage
    for (const item of page.events) events.push(item)
    if (page.events.length < 1000) return events
    from = page.next
  }
}

/** Mints into every account (idempotently, per round), then 64 callers transfer until `kill` runs. */
export const transferUntilKilled = (
  node: Pick<RunningNode, "url" | "dataDir">,
  round: number,
  acknowledged: Array<string>,
  killAfter: number,
  kill: () => void
) =>
  Effect.gen(function*() {
    const client = yield* nodeRpcClient
    const operator = operatorKeyOf(node.dataDir)
    yield* Effect.forEach(accounts, (account) =>
      as(operator)(
        client.LedgerMint({ account, amount: 1_000_000n, operationId: `mint-${round}-${account}` as never })
      ))
    const caller = (n: number) =>
      Effect.gen(function*() {
        for (let i = 0;; i++) {
          const transferId = `t-${round}-${n}-${i}`
          const payer = holders[(n + i) % 8]!
          const outcome = yield* Effect.either(
            as(payer)(client.LedgerTransfer({
              from: payer.account,
              to: accounts[(n + i + 1 + (i % 7)) % 8]!,
              amount: BigInt(1 + ((n * 31 + i) % 50)),
              transferId: transferId as never
            }))
          )
          if (Either.isLeft(outcome)) return
          acknowledged.push(transferId)
        }
      })
    const target = acknowledged.length + killAfter
    const killer = Effect.sleep("50 millis").pipe(
      Effect.repeat({ until: () => acknowledged.length >= target }),
      Effect.zipRight(Effect.sync(kill))
    )
    yield* Effect.all([Effect.forEach(Array.from({ length: 64 }, (_, n) => n), caller, { concurrency: 64 }), killer], {
      concurrency: "unbounded"
    })
  }).pipe(Effect.scoped, Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer)))

/** Everything a node restarted after a crash must show. */
export const expectRecovered = (url: string, acknowledged: ReadonlyArray<string>, minted: bigint) =>
  Effect.gen(function*() {
    const events = yield* Effect.promise(() => allEvents(url))
    const debited = new Set(events.filter((e) => e.eventType === "Debited").map((e) => e.payload.transferId))
    const credited = new Set(events.filter((e) => e.eventType === "Credited").map((e) => e.payload.transferId))
    const lost = acknowledged.filter((transferId) => !debited.has(transferId) || !credited.has(transferId))
    expect(lost).toEqual([])
    const client = yield* nodeRpcClient
    const chain = yield* client.AuditVerify()
    expect(chain).toMatchObject({ ok: true, firstBadPosition: null })
    expect(chain.eventsChecked).toBeGreaterThanOrEqual(events.length)
    // Debits whose credit the kill cut off are finished by the credits policy after the restart.
    const replay = yield* client.AuditReplay().pipe(
      Effect.filterOrFail((report) => report.supply.inFlight === 0n),
      Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 200 })
    )
    expect(replay.ok).toBe(true)
    expect(replay.actors[0]!.mismatches).toEqual([])
    expect(replay.supply).toMatchObject({ minted, conserved: true, inFlight: 0n })
  }).pipe(Effect.scoped, Effect.provide(rpcProtocol(url)))
