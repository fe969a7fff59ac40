import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import { Deferred, Effect, Fiber, Layer, Option, Schema } from "effect"
import * as path from "node:path"
import { generateKeyPair, NodeKey, type NodeKeyPair } from "../../src/content/NodeKey.js"
import * as ActorRunner from "../../src/events/ActorRunner.js"
import { findBadSnapshots, verifyChain } from "../../src/events/Audit.js"
import { Authorization, withAuthorization } from "../../src/events/Authorization.js"
import { Checkpoints } from "../../src/events/Checkpoints.js"
import type { EventSourced } from "../../src/events/Decider.js"
import { Journal } from "../../src/events/Journal.js"
import { Snapshots } from "../../src/events/Snapshots.js"
import { SqliteDatabase } from "../../src/events/SqliteDatabase.js"
import * as SqliteJournal from "../../src/events/SqliteJournal.js"
import { memoryKernel, sqliteKernel } from "../support/Layers.js"
import { tempDir } from "../support/TempDir.js"

const Added = Schema.TaggedStruct("Added", { amount: Schema.Number })
class TooBig extends Schema.TaggedError<TooBig>()("TooBig", { amount: Schema.Number }) {}

/** A counter that refuses to pass 1000: small enough to read, strict enough to test conflicts. */
const Counter: EventSourced<{ readonly add: number }, typeof Added.Type, { readonly total: number }, TooBig> = {
  category: "Counter",
  decider: {
    initialState: { total: 0 },
    decide: (command, state) =>
      state.total + command.add > 1000
        ? Effect.fail(new TooBig({ amount: command.add }))
        : Effect.succeed(command.add === 0 ? [] : [Added.make({ amount: command.add })]),
    evolve: (state, event) => ({ total: state.total + event.amount })
  },
  event: Added,
  state: Schema.Struct({ total: Schema.Number })
}

/** A node's stores on `file` with one key across restarts, as a data dir has: its snapshots are sealed with it. */
const nodeStoresAt = (file: string, key: NodeKeyPair) =>
  Layer.mergeAll(SqliteJournal.layer(), Snapshots.sqlite, Checkpoints.sqlite).pipe(
    Layer.provide(SqliteDatabase.layer({ file })),
    Layer.provide(Layer.succeed(NodeKey, key))
  )

describe("ActorRunner", () => {
  it.effect("runs commands against cached state and appends their events", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter)
      yield* counter.send("a", { add: 3 })
      const result = yield* counter.send("a", { add: 4 })
      expect(result).toMatchObject({ state: { total: 7 }, version: 2, duplicate: false })
      expect(yield* Effect.flip(counter.send("a", { add: 995 }))).toBeInstanceOf(TooBig)
      expect((yield* counter.send("a", { add: 0 })).events).toEqual([])
      expect(yield* counter.state("a")).toEqual({ state: { total: 7 }, version: 2 })
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("the same command id twice gives the same result and no new events", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter)
      const journal = yield* Journal
      const first = yield* counter.send("a", { add: 5 }, { commandId: "c-1" })
      const again = yield* counter.send("a", { add: 5 }, { commandId: "c-1" })
      expect(again).toMatchObject({
        duplicate: true,
        position: first.position,
        events: first.events,
        state: { total: 5 }
      })
      expect((yield* journal.head).position).toBe(1)
      // A fresh runner (a restarted process) remembers it too: the journal is the memory.
      const restarted = yield* ActorRunner.make(Counter)
      expect((yield* restarted.send("a", { add: 5 }, { commandId: "c-1" })).duplicate).toBe(true)
      expect((yield* journal.head).position).toBe(1)
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("tell runs a command once and answers a repeated id without reading the log", () =>
    Effect.gen(function*() {
      const journal = yield* Journal
      let reads = 0
      const counting = Layer.succeed(Journal, {
        ...journal,
        readAll: (from, limit) => Effect.zipRight(Effect.sync(() => reads++), journal.readAll(from, limit))
      })
      const counter = yield* Effect.provide(ActorRunner.make(Counter), counting)
      yield* counter.tell("a", { add: 5 }, { commandId: "c-1" })
      yield* counter.tell("a", { add: 5 }, { commandId: "c-1" })
      expect(yield* counter.state("a")).toEqual({ state: { total: 5 }, version: 1 })
      expect((yield* journal.head).position).toBe(1)
      expect(reads).toBe(0)
      // send, by contrast, reads back what the first delivery appended, to answer with its events.
      expect((yield* counter.send("a", { add: 5 }, { commandId: "c-1" })).events).toEqual([Added.make({ amount: 5 })])
      expect(reads).toBe(1)
      // Refusals still reach the caller.
      expect(yield* Effect.flip(counter.tell("a", { add: 999 }, { commandId: "c-2" }))).toBeInstanceOf(TooBig)
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("sendPair appends both commands in one transaction, or neither", () =>
    Effect.gen(function*() {
      const journal = yield* Journal
      const counter = yield* ActorRunner.make(Counter)
      yield* counter.send("a", { add: 1 })
      // Another writer moves a's stream: the pair catches up and decides again.
      yield* journal.append("Counter-a", 1, [{ eventType: "Added", payload: { _tag: "Added", amount: 10 } }])
      const [first, second] = yield* counter.sendPair(
        { entityId: "a", command: { add: 2 }, options: { commandId: "p-1" } },
        { entityId: "b", command: { add: 3 }, options: { commandId: "p-2" } }
      )
      expect(first).toMatchObject({ state: { total: 13 }, version: 3, duplicate: false })
      expect(second).toMatchObject({ state: { total: 3 }, version: 1, position: first.position + 1 })
      // Either refusing writes nothing for both.
      const head = (yield* journal.head).position
      expect(
        yield* Effect.flip(
          counter.sendPair({ entityId: "a", command: { add: 1 } }, { entityId: "b", command: { add: 998 } })
        )
      ).toBeInstanceOf(TooBig)
      expect((yield* journal.head).position).toBe(head)
      // Ids that ran: the pair runs nothing new, and answers each from the log.
      const [again, againSecond] = yield* counter.sendPair(
        { entityId: "a", command: { add: 2 }, options: { commandId: "p-1" } },
        { entityId: "c", command: { add: 5 }, options: { commandId: "p-3" } }
      )
      expect(again).toMatchObject({ duplicate: true, position: first.position })
      expect(againSecond.events).toEqual([])
      expect(yield* counter.state("c")).toEqual({ state: { total: 0 }, version: 0 })
      expect((yield* journal.head).position).toBe(head)
      // A fresh runner (a restarted process) decides the pair on the entities as loaded from the log.
      const restarted = yield* ActorRunner.make(Counter)
      const [loadedA] = yield* restarted.sendPair(
        { entityId: "a", command: { add: 1 } },
        { entityId: "d", command: { add: 1 } }
      )
      expect(loadedA.state).toEqual({ total: 14 })
      expect(
        yield* Effect.flip(restarted.sendPair(
          { entityId: "a", command: { add: 990 } },
          { entityId: "d", command: { add: 1 } }
        ))
      ).toBeInstanceOf(TooBig)
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("command ids survive snapshots, and the window forgets the oldest ones", () =>
    Effect.gen(function*() {
      const journal = yield* Journal
      const counter = yield* ActorRunner.make(Counter, { snapshotEvery: 5, idempotencyWindow: 10 })
      for (let i = 0; i < 12; i++) yield* counter.send("a", { add: 1 }, { commandId: `c-${i}` })
      // Restarted from the snapshot at version 10 plus two events: still knows c-2..c-11.
      const restarted = yield* ActorRunner.make(Counter, { snapshotEvery: 5, idempotencyWindow: 10 })
      const repeat = yield* restarted.send("a", { add: 1 }, { commandId: "c-3" })
      expect(repeat).toMatchObject({
        duplicate: true,
        position: 4,
        events: [{ _tag: "Added", amount: 1 }],
        state: { total: 12 }
      })
      expect((yield* journal.head).position).toBe(12)
      // c-0 fell out of the window of 10: it runs again, as documented.
      expect((yield* restarted.send("a", { add: 1 }, { commandId: "c-0" })).duplicate).toBe(false)
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("commands to one entity are serialized; 200 concurrent adds lose nothing", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter)
      yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), () => counter.send("a", { add: 1 }), {
        concurrency: "unbounded"
      })
      expect(yield* counter.state("a")).toEqual({ state: { total: 200 }, version: 200 })
    }).pipe(Effect.provide(sqliteKernel())))

  it.live("two runners on one journal (two nodes) retry on version conflicts and never double-count", () =>
    Effect.gen(function*() {
      const left = yield* ActorRunner.make(Counter)
      const right = yield* ActorRunner.make(Counter)
      yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i) => (i % 2 === 0 ? left : right).send("shared", { add: 1 }, { commandId: `add-${i % 50}` }),
        { concurrency: 8 }
      )
      // 50 distinct command ids, each sent once to each runner.
      expect((yield* left.state("shared")).state.total).toBe(50)
      expect((yield* right.state("shared")).state.total).toBe(50)
    }).pipe(Effect.provide(sqliteKernel())))

  it.effect("snapshots every N events and loads from the snapshot plus the tail", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter, { snapshotEvery: 10 })
      for (let i = 0; i < 25; i++) yield* counter.send("a", { add: 2 })
      const snapshots = yield* Snapshots
      const journal = yield* Journal
      const [twentieth] = yield* journal.readStream("Counter-a", 20, 1)
      const snapshot = Option.getOrThrow(yield* snapshots.load("Counter-a"))
      expect(snapshot).toEqual({
        version: 20,
        position: twentieth!.position,
        eventHash: twentieth!.hash,
        state: { total: 40 }
      })
      // Prove the restarted runner used the snapshot: doctor it through the store (which seals it), and it shows through.
      yield* snapshots.save("Counter-a", { ...snapshot, state: { total: 1 } })
      const restarted = yield* ActorRunner.make(Counter, { snapshotEvery: 10 })
      expect(yield* restarted.state("a")).toEqual({ state: { total: 11 }, version: 25 })
      // Replay ignores snapshots and sees the truth.
      expect((yield* restarted.replay()).get("a")).toEqual({ state: { total: 50 }, version: 25 })
    }).pipe(Effect.provide(sqliteKernel())))

  it.effect("a snapshot edited in the database is ignored: the state read is the replayed one, and audit reports it", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const kernel = nodeStoresAt(file, generateKeyPair())
      yield* Effect.gen(function*() {
        const counter = yield* ActorRunner.make(Counter, { snapshotEvery: 10 })
        for (let i = 0; i < 12; i++) yield* counter.send("a", { add: 2 })
        for (let i = 0; i < 10; i++) yield* counter.send("b", { add: 1 })
      }).pipe(Effect.provide(kernel))
      // An attacker with the file inflates a's balance in its snapshot, and moves b's to an event that is not there.
      const db = new Database(file)
      db.prepare(`UPDATE snapshots SET state = '{"total":1000000000}' WHERE stream_id = 'Counter-a'`).run()
      db.prepare(`UPDATE snapshots SET version = 5 WHERE stream_id = 'Counter-b'`).run()
      db.close()
      yield* Effect.gen(function*() {
        const counter = yield* ActorRunner.make(Counter, { snapshotEvery: 10 })
        expect(yield* counter.state("a")).toEqual({ state: { total: 24 }, version: 12 })
        expect(yield* counter.state("b")).toEqual({ state: { total: 10 }, version: 10 })
        const report = yield* verifyChain()
        expect(report).toMatchObject({
          ok: false,
          problem:
            "snapshot of Counter-a at version 10 is not sealed by this node (its state was edited): it is ignored and the state rebuilt from the journal"
        })
        expect((yield* findBadSnapshots()).map((bad) => [bad.streamId, bad.version])).toEqual([["Counter-a", 10], [
          "Counter-b",
          5
        ]])
      }).pipe(Effect.provide(kernel))
    }))

  it.effect("a sealed snapshot that names another event than the stream's is ignored too", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter, { snapshotEvery: 10 })
      for (let i = 0; i < 10; i++) yield* counter.send("a", { add: 3 })
      const snapshots = yield* Snapshots
      yield* snapshots.save("Counter-a", {
        version: 10,
        position: 10,
        eventHash: "ab".repeat(32),
        state: { total: 999 }
      })
      const restarted = yield* ActorRunner.make(Counter, { snapshotEvery: 10 })
      expect(yield* restarted.state("a")).toEqual({ state: { total: 30 }, version: 10 })
      expect((yield* findBadSnapshots())[0]?.problem).toBe(
        "snapshot of Counter-a at version 10 does not match the journal's event there: it is ignored and the state rebuilt from the journal"
      )
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("state survives a restart on the same SQLite file", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      yield* Effect.gen(function*() {
        const counter = yield* ActorRunner.make(Counter)
        yield* Effect.forEach(["a", "b", "c"], (id) => counter.send(id, { add: id.charCodeAt(0) }), { concurrency: 3 })
      }).pipe(Effect.provide(sqliteKernel(file)))
      const after = yield* ActorRunner.make(Counter).pipe(
        Effect.flatMap((counter) => Effect.forEach(["a", "b", "c"], (id) => counter.state(id))),
        Effect.provide(sqliteKernel(file))
      )
      expect(after.map((s) => s.state.total)).toEqual([97, 98, 99])
    }))

  it.effect("withAuthorization puts the signed command on the events of that command only", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter)
      const journal = yield* Journal
      const signed = Authorization.of({ command: { add: 2 }, signer: "alice" })
      yield* counter.send("a", { add: 1 })
      yield* counter.send("a", { add: 2 }).pipe(withAuthorization(signed))
      // Sent by another fiber (as a policy does), while this one is handling a signed command: carries none.
      const gate = yield* Deferred.make<void>()
      const policyLike = yield* Effect.fork(Deferred.await(gate).pipe(Effect.zipRight(counter.send("b", { add: 3 }))))
      yield* Effect.gen(function*() {
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(policyLike)
        yield* counter.send("a", { add: 4 })
      }).pipe(withAuthorization(signed))
      yield* counter.send("a", { add: 5 })
      const events = yield* journal.readAll(1, 10)
      expect(events.map((e) => [e.streamId, (e.payload as { amount: number }).amount, e.authorization])).toEqual([
        ["Counter-a", 1, null],
        ["Counter-a", 2, { command: { add: 2 }, signer: "alice" }],
        ["Counter-b", 3, null],
        ["Counter-a", 4, { command: { add: 2 }, signer: "alice" }],
        ["Counter-a", 5, null]
      ])
    }).pipe(Effect.provide(memoryKernel())))

  it.effect("a small cache evicts idle entities and reloads them correctly", () =>
    Effect.gen(function*() {
      const counter = yield* ActorRunner.make(Counter, { cacheCapacity: 4 })
      for (let round = 0; round < 3; round++) {
        yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => `e${i}`), (id) => counter.send(id, { add: 1 }), {
          concurrency: 5
        })
      }
      const totals = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => `e${i}`), (id) => counter.state(id))
      expect(totals.every((s) => s.state.total === 3 && s.version === 3)).toBe(true)
    }).pipe(Effect.provide(memoryKernel())))
})

export const CounterLayerForBench = Layer.empty
