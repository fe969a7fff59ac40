/**
 * The contract every Journal store passes: expected versions, conflicts, reads, group commit,
 * subscriptions without gaps or duplicates, and a verifiable chain.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Stream } from "effect"
import type { Layer } from "effect"
import { canonicalize } from "../../src/domain/CanonicalJson.js"
import { verifyChain } from "../../src/events/Audit.js"
import { Authorization } from "../../src/events/Authorization.js"
import { Journal, PayloadTooLarge, VersionConflict } from "../../src/events/Journal.js"

const event = (n: number) => ({ eventType: "Counted", payload: { n } })

export interface ContractJournalOptions {
  readonly maxPayloadBytes?: number
}

export const journalContract = (
  name: string,
  makeLayer: (options?: ContractJournalOptions) => Layer.Layer<Journal, unknown>
) =>
  describe(`Journal contract: ${name}`, () => {
    it.scoped("appends with expected versions and reads streams back in order", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        const first = yield* journal.append("Counter-a", "none", [event(1), event(2)])
        expect(first.streamVersion).toBe(2)
        expect(first.envelopes.map((e) => e.position)).toEqual([1, 2])
        yield* journal.append("Counter-b", "any", [event(3)])
        const third = yield* journal.append("Counter-a", 2, [event(4)], { commandId: "cmd-4", causationId: "cause" })
        expect(third.envelopes[0]).toMatchObject({
          position: 4,
          streamVersion: 3,
          commandId: "cmd-4",
          causationId: "cause"
        })
        const stream = yield* journal.readStream("Counter-a")
        expect(stream.map((e) => (e.payload as { n: number }).n)).toEqual([1, 2, 4])
        expect((yield* journal.readStream("Counter-a", 2, 1)).map((e) => e.streamVersion)).toEqual([2])
        expect((yield* journal.readAll(2, 2)).map((e) => e.position)).toEqual([2, 3])
        expect(yield* journal.streamVersion("Counter-a")).toBe(3)
        expect((yield* journal.head).position).toBe(4)
      }).pipe(Effect.provide(makeLayer())))

    it.scoped("rejects a wrong expected version with a typed VersionConflict and writes nothing", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-a", "none", [event(1)])
        const stale = yield* Effect.flip(journal.append("Counter-a", 0, [event(2)]))
        expect(stale).toBeInstanceOf(VersionConflict)
        expect(stale).toMatchObject({ streamId: "Counter-a", expected: 0, actual: 1 })
        const exists = yield* Effect.flip(journal.append("Counter-a", "none", [event(2)]))
        expect(exists).toMatchObject({ _tag: "VersionConflict", actual: 1 })
        const ahead = yield* Effect.flip(journal.append("Counter-new", 3, [event(2)]))
        expect(ahead).toMatchObject({ _tag: "VersionConflict", actual: 0 })
        expect((yield* journal.head).position).toBe(1)
      }).pipe(Effect.provide(makeLayer())))

    it.scoped("commits a batch across streams in one go, failing only the conflicting stream", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-a", "none", [event(0)])
        const outcomes = yield* journal.appendBatch([
          { streamId: "Counter-a", expectedVersion: 1, events: [event(1)] },
          { streamId: "Counter-b", expectedVersion: 5, events: [event(2)] },
          { streamId: "Counter-a", expectedVersion: 2, events: [event(3)] }
        ])
        expect(outcomes.map(Either.isRight)).toEqual([true, false, true])
        expect((yield* journal.readStream("Counter-a")).length).toBe(3)
        const heads = yield* journal.signedHeads(1, 100)
        expect(heads.map((head) => head.position)).toEqual([1, 3])
      }).pipe(Effect.provide(makeLayer())))

    it.scoped("a request marked onlyAfterPrevious is written only with the one before it", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-a", "none", [event(0)])
        const refused = yield* journal.appendBatch([
          { streamId: "Counter-a", expectedVersion: 0, events: [event(1)] },
          { streamId: "Counter-b", expectedVersion: "any", events: [event(2)], onlyAfterPrevious: true },
          { streamId: "Counter-c", expectedVersion: "any", events: [event(3)] }
        ])
        expect(refused.map(Either.isRight)).toEqual([false, false, true])
        expect(yield* journal.streamVersion("Counter-b")).toBe(0)
        const written = yield* journal.appendBatch([
          { streamId: "Counter-a", expectedVersion: 1, events: [event(4)] },
          { streamId: "Counter-b", expectedVersion: "any", events: [event(5)], onlyAfterPrevious: true }
        ])
        expect(written.map(Either.isRight)).toEqual([true, true])
        // On a batch's first request the mark means nothing: there is no request of its caller before it.
        const first = yield* journal.appendBatch([
          { streamId: "Counter-d", expectedVersion: "any", events: [event(6)], onlyAfterPrevious: true }
        ])
        expect(first.map(Either.isRight)).toEqual([true])
      }).pipe(Effect.provide(makeLayer())))

    it.scoped("serializes concurrent appends with the same expected version: one wins, the rest conflict", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        const attempts = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, i) => i),
          (i) => Effect.either(journal.append("Counter-race", 0, [event(i)])),
          { concurrency: "unbounded" }
        )
        expect(attempts.filter(Either.isRight).length).toBe(1)
        expect(yield* journal.streamVersion("Counter-race")).toBe(1)
      }).pipe(Effect.provide(makeLayer())))

    it.live("subscribe catches up, then follows concurrent appends with no gap and no duplicate", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) =>
          journal.append(`Counter-${i % 5}`, "any", [event(i)]))
        const total = 50 + 8 * 100
        const reader = yield* journal.subscribe(1).pipe(Stream.take(total), Stream.runCollect, Effect.fork)
        yield* Effect.forEach(
          Array.from({ length: 8 }, (_, writer) =>
            writer),
          (writer) =>
            Effect.forEach(
              Array.from({ length: 100 }, (_, i) => i),
              (i) =>
                journal.append(`Counter-w${writer}`, "any", [event(i)]).pipe(
                  Effect.zipLeft(i % 7 === 0 ? Effect.yieldNow() : Effect.void)
                )
            ),
          { concurrency: "unbounded" }
        )
        const seen = Chunk.toReadonlyArray(yield* Fiber.join(reader)).map((e) => e.position)
        expect(seen).toEqual(Array.from({ length: total }, (_, i) => i + 1))
      }).pipe(Effect.scoped, Effect.provide(makeLayer())))

    it.live("subscribe from a later position starts exactly there", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-a", "any", [event(1), event(2), event(3)])
        const seen = yield* journal.subscribe(2).pipe(Stream.take(2), Stream.runCollect)
        expect(Chunk.toReadonlyArray(seen).map((e) => e.position)).toEqual([2, 3])
      }).pipe(Effect.scoped, Effect.provide(makeLayer())))

    it.scoped("keeps a hash chain and signed heads that verify", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i) =>
          journal.append(`Counter-${i % 3}`, "any", [event(i), event(-i)]), {
          concurrency: 4
        })
        const report = yield* verifyChain()
        expect(report).toMatchObject({ ok: true, eventsChecked: 60, firstBadPosition: null })
        expect(report.headsChecked).toBeGreaterThan(0)
        const all = yield* journal.readAll(1, 100)
        for (let i = 1; i < all.length; i++) {
          expect(all[i]!.prevHash).toBe(all[i - 1]!.hash)
        }
      }).pipe(Effect.provide(makeLayer())))

    it.live("stores a command's authorization with its events and returns it on every read path", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        const signed = { command: { _tag: "Add", n: 2 }, publicKey: "ab".repeat(32), signature: "cd".repeat(64) }
        const text = canonicalize(signed)
        yield* journal.append("Counter-a", "none", [event(1)])
        const appended = yield* journal.append("Counter-a", 1, [event(2), event(3)], {
          commandId: "cmd-2",
          authorization: Authorization.of(signed)
        })
        yield* journal.appendBatch([{
          streamId: "Counter-b",
          expectedVersion: "any",
          events: [event(4)],
          authorization: Authorization.fromText(text)
        }])
        yield* journal.append("Counter-a", "any", [event(5)], { authorization: null })
        const expected = [null, signed, signed, signed, null]
        expect(appended.envelopes.map((e) => e.authorization)).toEqual([signed, signed])
        expect((yield* journal.readAll(1, 10)).map((e) => e.authorization)).toEqual(expected)
        expect((yield* journal.readStream("Counter-a")).map((e) => e.authorization)).toEqual([
          null,
          signed,
          signed,
          null
        ])
        expect((yield* journal.readRecords(1, 10)).map((r) => r.authorizationText)).toEqual(
          expected.map((a) => (a === null ? null : text))
        )
        const followed = yield* journal.subscribe(1).pipe(Stream.take(5), Stream.runCollect)
        expect(Chunk.toReadonlyArray(followed).map((e) => e.authorization)).toEqual(expected)
        expect(yield* verifyChain()).toMatchObject({ ok: true, eventsChecked: 5 })
      }).pipe(Effect.scoped, Effect.provide(makeLayer())))

    it.scoped("refuses an event whose payload is over the size limit with a one-line error, writing nothing of its request", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-a", "none", [event(1)])
        const huge = { eventType: "Counted", payload: { text: "é".repeat(150_000) } } // 300,000 bytes of UTF-8
        const refused = yield* Effect.flip(journal.append("Counter-a", 1, [event(2), huge]))
        expect(refused).toBeInstanceOf(PayloadTooLarge)
        expect(refused.message).toBe(
          "event Counted on Counter-a is 300011 bytes of JSON, more than the journal's limit of 262144"
        )
        const outcomes = yield* journal.appendBatch([
          { streamId: "Counter-b", expectedVersion: "any", events: [huge] },
          { streamId: "Counter-c", expectedVersion: "any", events: [event(3)] }
        ])
        expect(outcomes.map((outcome) => (Either.isLeft(outcome) ? outcome.left._tag : "written"))).toEqual([
          "PayloadTooLarge",
          "written"
        ])
        expect((yield* journal.readAll(1, 10)).map((e) => e.streamId)).toEqual(["Counter-a", "Counter-c"])
        expect((yield* verifyChain()).ok).toBe(true)
      }).pipe(Effect.provide(makeLayer())))

    it.scoped("the payload limit is an option of the journal", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        yield* journal.append("Counter-a", "any", [{ eventType: "Counted", payload: { text: "x".repeat(1000) } }])
        const refused = yield* Effect.flip(
          journal.append("Counter-a", "any", [{ eventType: "Counted", payload: { text: "x".repeat(1025) } }])
        )
        expect(refused).toMatchObject({ _tag: "PayloadTooLarge", bytes: 1036, maxBytes: 1034 })
        expect((yield* journal.head).position).toBe(1)
      }).pipe(Effect.provide(makeLayer({ maxPayloadBytes: 1034 }))))
  })
