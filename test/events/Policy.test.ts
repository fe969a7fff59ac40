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
  Effect.flatMap(Journal, (journal) =>
    Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
      journal.append(`Order-${i % 3}`, "any", [{ eventType: "Placed", payload: { n: i } }])
    )
  )

/** A policy that turns every Order event into a Tally command, and records what it was handed. */
const tallyPolicy = (tally: ActorRunner.Actor<{ readonly from: number }, typeof Noted.Type, { readonly count: number }, never, never>, seen: Array<number>) =>
  Policy.layer({
    name: "orders.tally",
    categories: ["Order"],
    handle: (envelope: Envelope) => {
      seen.push(envelope.position)
      return tally.send("all", { from: envelope.position }, { commandId: Policy.commandIdFor("orders.tally", envelope) })
    }
  })

describe("Policy", () => {
  it.live("resumes after its checkpoint on restart, and a redelivered event changes nothing", () =>
    Effect.gen(function* () {
      const file = path.join(tempDir(), "journal.db")
      const kernel = sqliteKernel(file)
      const firstRun: Array<number> = []
      const secondRun: Array<number> = []
      yield* Effect.gen(function* () {
        const tally = yield* ActorRunner.make(Tally)
        yield* appendOrders(5)
        yield* Effect.scoped(Layer.launch(tallyPolicy(tally, firstRun)).pipe(Effect.race(Policy.awaitCaughtUp("orders.tally").pipe(Effect.delay("20 millis")))))
        expect(firstRun).toEqual([1, 2, 3, 4, 5])
        expect((yield* tally.state("all")).state.count).toBe(5)
      }).pipe(Effect.provide(kernel))

      // "Restart" on the same file with more events; then a crash that lost the last checkpoint.
      yield* Effect.gen(function* () {
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

const waitForTally = (tally: { readonly state: (id: string) => Effect.Effect<{ readonly state: { readonly count: number } }> }, count: number) =>
  tally.state("all").pipe(
    Effect.repeat({ until: (current) => current.state.count >= count, schedule: Schedule.spaced("5 millis") }),
    Effect.zipRight(Effect.sleep("50 millis"))
  )
