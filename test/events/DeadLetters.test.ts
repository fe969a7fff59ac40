/**
 * An operator's retry and clear of dead letters, on a policy that fails while what it needs is missing
 * and succeeds once it is there: the policy runner records the letters, a retry that fails again
 * updates its record, one that succeeds removes it, and clear removes a record without running anything.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schedule } from "effect"
import { Checkpoints } from "../../src/events/Checkpoints.js"
import * as DeadLetters from "../../src/events/DeadLetters.js"
import type { Envelope } from "../../src/events/Envelope.js"
import { Journal } from "../../src/events/Journal.js"
import * as Policy from "../../src/events/Policy.js"
import { memoryKernel, sqliteKernel } from "../support/Layers.js"

/** A policy whose handler fails on the positions in `missing` (as when the account it credits is not open yet). */
const fragile = (missing: Set<number>, handled: Array<number>): Policy.PolicyDefinition<never> => ({
  name: "orders.fragile",
  categories: ["Order"],
  retry: Schedule.spaced("2 millis").pipe(Schedule.intersect(Schedule.recurs(2))),
  handle: (envelope: Envelope) =>
    Effect.suspend(() => {
      if (missing.has(envelope.position)) {
        return Effect.fail(`order ${envelope.position}: its customer is not there (checked ${handled.length})`)
      }
      handled.push(envelope.position)
      return Effect.void
    })
})

for (const [store, kernel] of [["memory", memoryKernel], ["sqlite", () => sqliteKernel()]] as const) {
  describe(`dead letters on the ${store} store`, () => {
    it.live("retry fails again and says so, succeeds once the cause is gone and removes the record; clear removes one", () =>
      Effect.gen(function*() {
        const journal = yield* Journal
        const checkpoints = yield* Checkpoints
        for (let i = 0; i < 4; i++) {
          yield* journal.append(`Order-${i}`, "none", [{ eventType: "Placed", payload: { i } }])
        }
        const missing = new Set([2, 3])
        const handled: Array<number> = []
        const definition = fragile(missing, handled)
        yield* Effect.scoped(
          Layer.launch(Policy.layer(definition)).pipe(Effect.race(Policy.awaitCaughtUp(definition.name)))
        )
        expect(handled).toEqual([1, 4])
        expect((yield* DeadLetters.list(10)).letters.map((letter) => [letter.position, letter.attempts])).toEqual([
          [3, 3],
          [2, 3]
        ])
        const policies = new Map([[definition.name, definition]])

        // Still missing: the record keeps the letter, with the new error and one attempt more.
        const [again] = yield* DeadLetters.retry(policies, { policy: "orders.fragile", position: 2 })
        expect(again).toMatchObject({ policy: "orders.fragile", position: 2, handled: false, attempts: 4 })
        expect(again!.error).toContain("order 2: its customer is not there (checked 2)")
        const recorded = yield* checkpoints.findDeadLetter("orders.fragile", 2)
        expect(recorded).toMatchObject({ attempts: 4, streamId: "Order-1", eventType: "Placed" })
        expect(recorded!.error).toContain("(checked 2)")

        // The cause is gone: the policy handles the event and the record goes; the other stays.
        missing.delete(2)
        expect(yield* DeadLetters.retry(policies, { policy: "orders.fragile", position: 2 })).toEqual([
          { policy: "orders.fragile", position: 2, handled: true, error: null, attempts: 5 }
        ])
        expect(handled).toEqual([1, 4, 2])
        expect(yield* checkpoints.findDeadLetter("orders.fragile", 2)).toBeUndefined()
        expect((yield* DeadLetters.list(10)).count).toBe(1)
        // The policy's own checkpoint did not move back.
        expect(yield* checkpoints.load("orders.fragile")).toBe(4)

        const notFound = yield* Effect.flip(DeadLetters.retry(policies, { policy: "orders.fragile", position: 2 }))
        expect(notFound.message).toBe("no dead letter orders.fragile@2")
        // A letter of a policy this node does not run is reported, and left as it was.
        const [unknown] = yield* DeadLetters.retry(new Map(), "all")
        expect(unknown).toMatchObject({
          position: 3,
          handled: false,
          error: "no policy orders.fragile runs on this node"
        })
        expect((yield* checkpoints.findDeadLetter("orders.fragile", 3))?.attempts).toBe(3)

        const cleared = yield* DeadLetters.clear("all")
        expect(cleared.map((letter) => letter.position)).toEqual([3])
        expect(yield* DeadLetters.list(10)).toEqual({ count: 0, letters: [] })
        expect(handled).toEqual([1, 4, 2])
        expect(yield* Effect.flip(DeadLetters.clear({ policy: "orders.fragile", position: 3 }))).toBeInstanceOf(
          DeadLetters.DeadLetterNotFound
        )
      }).pipe(Effect.provide(kernel())))
  })
}
