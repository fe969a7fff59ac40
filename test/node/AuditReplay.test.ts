/**
 * audit replay compares every entity rebuilt from the log with what the node holds for it: the state
 * in memory for an entity the node has loaded, and for one it has not, what loading it would give
 * (its sealed snapshot, then the events after it), followed in the same read of the log.
 */
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Effect, Option } from "effect"
import * as path from "node:path"
import { Ledger } from "../../src/actors/economy/Ledger.js"
import { Snapshots } from "../../src/events/Snapshots.js"
import { nodeServices } from "../../src/layers/Node.js"
import { NodeAudit, type ReplayReport } from "../../src/layers/NodeAudit.js"
import { tempDir } from "../support/TempDir.js"

const node = (dataDir: string) => nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" })

const accountReport = (report: ReplayReport) => report.actors.find((actor) => actor.category === "Account")

describe("audit replay against what loading an entity gives", () => {
  it.scoped(
    "a snapshot and the events after it replay to the log's state; a sealed snapshot that is wrong is a mismatch",
    () =>
      Effect.gen(function*() {
        const dataDir = tempDir("audit-replay-")
        // 130 mints: alice's account is snapshotted at version 100, 30 events stand after the snapshot.
        const written = yield* Effect.gen(function*() {
          const ledger = yield* Ledger
          for (let i = 0; i < 130; i++) yield* ledger.mint("alice", 10n, `mint-${i}`)
          return (yield* NodeAudit).replay()
        }).pipe(Effect.flatten, Effect.provide(node(dataDir)))
        expect(written.ok).toBe(true)

        // A node that has loaded nothing yet: alice is compared as loading her would give her.
        const fresh = yield* Effect.gen(function*() {
          const snapshot = yield* (yield* Snapshots).load("Account-alice")
          expect(Option.map(snapshot, ({ version }) => version)).toEqual(Option.some(100))
          return yield* (yield* NodeAudit).replay()
        }).pipe(Effect.provide(node(dataDir)))
        expect(fresh.ok).toBe(true)
        expect(fresh.stateDigest).toBe(written.stateDigest)

        // A node bug: a snapshot sealed by the node, standing on the right event, holding the wrong balance.
        const wrong = yield* Effect.gen(function*() {
          const snapshots = yield* Snapshots
          const snapshot = Option.getOrThrow(yield* snapshots.load("Account-alice"))
          yield* snapshots.save("Account-alice", { ...snapshot, state: { available: "5000", held: {} } })
          return yield* (yield* NodeAudit).replay()
        }).pipe(Effect.provide(node(dataDir)))
        expect(wrong.ok).toBe(false)
        expect(accountReport(wrong)?.mismatches).toEqual([{
          entityId: "alice",
          live: { version: 130, state: { available: "5300", held: {} } },
          replayed: { version: 130, state: { available: "1300", held: {} } }
        }])
        // The log itself replays as before: only what loading would give differs.
        expect(wrong.stateDigest).toBe(written.stateDigest)

        // Once alice is in memory (here: loaded from that snapshot), the audit asks the actor itself.
        const loaded = yield* Effect.gen(function*() {
          expect((yield* (yield* Ledger).balance("alice")).available).toBe(5300n)
          return yield* (yield* NodeAudit).replay()
        }).pipe(Effect.provide(node(dataDir)))
        expect(accountReport(loaded)?.mismatches).toHaveLength(1)
      }),
    60_000
  )

  it.scoped(
    "verify and replay from one read of the log report what each reports alone, and an edited event",
    () =>
      Effect.gen(function*() {
        const dataDir = tempDir("audit-both-")
        yield* Effect.gen(function*() {
          const ledger = yield* Ledger
          const audit = yield* NodeAudit
          for (let i = 0; i < 40; i++) yield* ledger.mint(`account-${i % 3}`, 10n + BigInt(i), `mint-${i}`)
          yield* ledger.transfer("account-0", "account-1", 5n, "transfer-1")
          const both = yield* audit.replayAndVerify()
          expect(both.chain).toEqual(yield* audit.verify())
          expect(both.replay).toEqual(yield* audit.replay())
          expect(both.chain.ok && both.replay.ok).toBe(true)

          // Someone with the file raises a mint behind the node's back: the chain breaks at that event.
          const db = new Database(path.join(dataDir, "journal.db"))
          const { position } = db.prepare(
            "SELECT position FROM events WHERE event_type = 'Minted' ORDER BY position LIMIT 1 OFFSET 5"
          ).get() as { position: number }
          db.prepare(`UPDATE events SET payload = '{"_tag":"Minted","amount":"1000000"}' WHERE position = ?`).run(
            position
          )
          db.close()
          const tampered = yield* audit.replayAndVerify()
          expect(tampered.chain).toMatchObject({
            ok: false,
            firstBadPosition: position,
            problem: `event ${position} was altered (hash mismatch)`
          })
          expect(tampered.chain).toEqual(yield* audit.verify())
          // The replay folds the edited log: the account no longer replays to what the node holds.
          expect(tampered.replay.ok).toBe(false)
          expect(accountReport(tampered.replay)?.mismatches).toHaveLength(1)
        }).pipe(Effect.provide(node(dataDir)))
      }),
    60_000
  )
})
