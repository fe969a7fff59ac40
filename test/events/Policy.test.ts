import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema } from "effect"
import * as path from "node:path"
import * as ActorRunner from "../../src/events/ActorRunner.js"
import { Checkpoints } from "../../src/events/Checkpoints.js"
import type { EventSourced } from "../../src/events/Decider.js"
import type { Envelope } from "../../src/events/Envelope.js"
import { Journal } from "../../src/events/Journal.js"
import * as Policy from "../../src/events/Policy.js"
import { sqliteKernel } from "../support/Layers.js"
import { tempDir } from "../support/TempDir.js"

const Noted = Schema.TaggedStruct("Noted", { from: Schema.Number })
/** Counts what a policy tells it; the count is the thing that must not double. */
const Tally: EventSourced<{ readonly from: number }, typeof Noted.Type, { readonly count: number }> = {
  category: "Tally",
  decider: {
    initialState: { count: 0 },
    decide: (command) => Effect.succeed([Noted.make({ from: command.from })]),
    evolve: (state) => ({ count: state.count + 1 })
  },
  event: Noted,
  state: Schema.Struct({ count: Schema.Number })
}

const appendOrders = (count: number) =>
  Effect.flatMap(
    Journal,
    (journal) =>
      Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
        journal.append(`Order-${i % 3}`, "any", [{ eventType: "Placed", payload: { n: i } }]))
  )

/** A policy that turns every Order event into a Tally command, and records what it was handed. */
const tallyPolicy = (
  tally: ActorRunner.Actor<{ readonly from: number }, typeof Noted.Type, { readonly count: number }, never, never>,
  seen: Array<number>
) =>
  Policy.layer({
    name: "orders.tally",
    categories: ["Order"],
    handle: (envelope: Envelope) => {
      seen.push(envelope.position)
      return tally.send("all", { from: envelope.position }, {
        commandId: Policy.commandIdFor("orders.tally", envelope)
      })
    }
  })

describe("Policy", () => {
  it.live("resumes after its checkpoint on restart, and a redelivered event changes nothing", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const kernel = sqliteKernel(file)
      const firstRun: Array<number> = []
      const secondRun: Array<number> = []
      yield* Effect.gen(function*() {
        const tally = yield* ActorRunner.make(Tally)
        yield* appendOrders(5)
        yield* Effect.scoped(
          Layer.launch(tallyPolicy(tally, firstRun)).pipe(
            Effect.race(Policy.awaitCaughtUp("orders.tally").pipe(Effect.delay("20 millis")))
          )
        )
        expect(firstRun).toEqual([1, 2, 3, 4, 5])
        expect((yield* tally.state("all")).state.count).toBe(5)
      }).pipe(Effect.provide(kernel))

      // "Restart" on the same file with more events; then a crash that lost the last checkpoint.
      yield* Effect.gen(function*() {
        const tally = yield* ActorRunner.make(Tally)
        yield* appendOrders(3)
        const checkpoints = yield* Checkpoints
        expect(yield* checkpoints.load("orders.tally")).toBeGreaterThanOrEqual(5)
        yield* checkpoints.save("orders.tally", 3) // as if the process died after commanding 4..5 but before checkpointing them
        yield* Effect.scoped(Layer.launch(tallyPolicy(tally, secondRun)).pipe(Effect.race(waitForTally(tally, 8))))
        expect(secondRun[0]).toBe(4)
        expect(secondRun).toContain(11)
        // 4 and 5 were delivered twice; the idempotent commands counted them once.
        expect((yield* tally.state("all")).state.count).toBe(8)
      }).pipe(Effect.provide(sqliteKernel(file)))
    }))
})

/** A policy that cannot handle one event (as with a payload its handler cannot decode), whatever it tries. */
const poisonedPolicy = (poison: number, seen: Array<number>, attempts: Map<number, number>) =>
  Policy.layer({
    name: "orders.poisoned",
    categories: ["Order"],
    retry: Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(3))),
    handle: (envelope: Envelope) =>
      Effect.suspend(() => {
        attempts.set(envelope.position, (attempts.get(envelope.position) ?? 0) + 1)
        if (envelope.position === poison) return Effect.die(new Error(`cannot decode order at ${envelope.position}`))
        seen.push(envelope.position)
        return Effect.void
      })
  })

describe("Policy dead letters", () => {
  it.live("an event that always fails is retried a bounded number of times, dead-lettered, and passed over, across a restart", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir(), "journal.db")
      const firstRun: Array<number> = []
      const attempts = new Map<number, number>()
      yield* Effect.gen(function*() {
        yield* appendOrders(5)
        yield* Effect.scoped(
          Layer.launch(poisonedPolicy(3, firstRun, attempts)).pipe(Effect.race(Policy.awaitCaughtUp("orders.poisoned")))
        )
        // Later events were handled; the poisoned one was tried once and retried three times, no more.
        expect(firstRun).toEqual([1, 2, 4, 5])
        expect(attempts.get(3)).toBe(4)
        const checkpoints = yield* Checkpoints
        const [letter, ...others] = yield* checkpoints.deadLetters(10)
        expect(others).toEqual([])
        expect(letter).toMatchObject({
          policy: "orders.poisoned",
          position: 3,
          streamId: "Order-2",
          eventType: "Placed",
          attempts: 4
        })
        expect(letter?.error).toContain("cannot decode order at 3")
        expect(yield* checkpoints.load("orders.poisoned")).toBe(5)
      }).pipe(Effect.provide(sqliteKernel(file)))

      // Restart on the same file: the dead letter and the checkpoint past it are still there; the
      // poisoned event is not tried again and new events are handled.
      const secondRun: Array<number> = []
      yield* Effect.gen(function*() {
        yield* appendOrders(2)
        const checkpoints = yield* Checkpoints
        expect(yield* checkpoints.deadLetterCount).toBe(1)
        expect(yield* checkpoints.all).toContainEqual({ name: "orders.poisoned", position: 5 })
        yield* Effect.scoped(
          Layer.launch(poisonedPolicy(3, secondRun, attempts)).pipe(
            Effect.race(Policy.awaitCaughtUp("orders.poisoned"))
          )
        )
        expect(secondRun).toEqual([6, 7])
        expect(attempts.get(3)).toBe(4)
      }).pipe(Effect.provide(sqliteKernel(file)))
    }))

  it.live("an event that fails with an error (not a defect) is dead-lettered the same way; interruption is not a failure", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      yield* appendOrders(3)
      const failing = Policy.layer({
        name: "orders.refused",
        categories: ["Order"],
        retry: Schedule.recurs(1),
        handle: (
          envelope: Envelope
        ) => (envelope.position === 1
          ? Effect.fail("refused by its owner")
          : Effect.sync(() => void seen.push(envelope.position)))
      })
      yield* Effect.scoped(Layer.launch(failing).pipe(Effect.race(Policy.awaitCaughtUp("orders.refused"))))
      expect(seen).toEqual([2, 3])
      const letters = yield* Effect.flatMap(Checkpoints, (checkpoints) => checkpoints.deadLetters(10))
      expect(letters.map((letter) => [letter.position, letter.attempts])).toEqual([[1, 2]])
      expect(letters[0]?.error).toContain("refused by its owner")

      // A handler still running when its policy stops leaves no dead letter behind.
      yield* appendOrders(1)
      const slow = Policy.layer({ name: "orders.refused", categories: ["Order"], handle: () => Effect.never })
      yield* Effect.scoped(Layer.launch(slow).pipe(Effect.timeout("100 millis"), Effect.ignore))
      expect((yield* Effect.flatMap(Checkpoints, (checkpoints) => checkpoints.deadLetters(10))).length).toBe(1)
    }).pipe(Effect.provide(sqliteKernel())))
})

const waitForTally = (
  tally: { readonly state: (id: string) => Effect.Effect<{ readonly state: { readonly count: number } }> },
  count: number
) =>
  tally.state("all").pipe(
    Effect.repeat({ until: (current) => current.state.count >= count, schedule: Schedule.spaced("5 millis") }),
    Effect.zipRight(Effect.sleep("50 millis"))
  )
