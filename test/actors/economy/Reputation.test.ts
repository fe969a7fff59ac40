import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock, TestContext } from "effect"
import * as fc from "fast-check"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import type { ReputationCommand } from "../../../src/actors/economy/Reputation.js"
import {
  decayedScore,
  initialReputation,
  Reputations,
  TaskFailed,
  TaskSucceeded
} from "../../../src/actors/economy/Reputation.js"
import { Reputation } from "../../../src/actors/economy/ReputationService.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import { replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"

const spec = DeciderSpecification.for(Reputations.decider)
const HOUR = 3_600_000
const decay = { decayPpm: 10_000n, decayIntervalMs: BigInt(HOUR), version: 0 }
const outcome = (outcome: "success" | "failure", taskId: string, weight = 1): ReputationCommand => ({
  _tag: "RecordOutcome",
  outcome,
  taskId,
  weight,
  decay
})
const decayFields = { decayPpm: 10_000n, decayIntervalMs: BigInt(HOUR), parametersVersion: 0 }

const reputationOn = () =>
  Reputation.Default.pipe(Layer.provideMerge(NetworkParameters.Default), Layer.provideMerge(memoryKernel()))

describe("Reputation decider", () => {
  it.effect("a new node starts at 0.5; a success adds 0.05 per unit of weight, a failure takes 0.10", () =>
    Effect.gen(function*() {
      yield* spec.given([]).when(outcome("success", "t1")).then([TaskSucceeded.make({
        taskId: "t1",
        weight: 1,
        at: 0,
        storedPpm: 500_000n,
        decayIntervals: 0,
        scoreBeforePpm: 500_000n,
        scoreAfterPpm: 550_000n,
        decayedUntil: 0,
        ...decayFields
      })])
      yield* spec.given([]).when(outcome("failure", "t1", 2)).then([TaskFailed.make({
        taskId: "t1",
        weight: 2,
        at: 0,
        storedPpm: 500_000n,
        decayIntervals: 0,
        scoreBeforePpm: 500_000n,
        scoreAfterPpm: 300_000n,
        decayedUntil: 0,
        ...decayFields
      })])
    }))

  it.effect("the score stays between 0 and 1", () =>
    Effect.gen(function*() {
      const { outcome: high } = spec.given([]).when(outcome("success", "t1", 20))
      expect(yield* high).toMatchObject({ right: [{ scoreAfterPpm: 1_000_000n }] })
      const { outcome: low } = spec.given([]).when(outcome("failure", "t1", 20))
      expect(yield* low).toMatchObject({ right: [{ scoreAfterPpm: 0n }] })
    }))

  it.effect("decays by the rate in force for each whole interval before applying the outcome, and records it", () =>
    Effect.gen(function*() {
      const first = TaskSucceeded.make({
        taskId: "t1",
        weight: 2,
        at: 0,
        storedPpm: 500_000n,
        decayIntervals: 0,
        scoreBeforePpm: 500_000n,
        scoreAfterPpm: 600_000n,
        decayedUntil: 0,
        ...decayFields
      })
      yield* TestClock.adjust(2 * HOUR + 1_000)
      // 600000 -> 594000 -> 588060, then +50000; the extra second carries over to the next decay.
      yield* spec.given([first]).when(outcome("success", "t2")).then([TaskSucceeded.make({
        taskId: "t2",
        weight: 1,
        at: 2 * HOUR + 1_000,
        storedPpm: 600_000n,
        decayIntervals: 2,
        scoreBeforePpm: 588_060n,
        scoreAfterPpm: 638_060n,
        decayedUntil: 2 * HOUR,
        ...decayFields
      })])
    }))

  it.effect("refuses a weight that is not a whole number from 1 to 1000", () =>
    Effect.gen(function*() {
      for (const weight of [0, -1, 1.5, 1_001, Number.NaN]) {
        yield* spec.given([]).when(outcome("success", "t1", weight)).thenFails((e) =>
          e._tag === "InvalidWeight" && e.message.startsWith(`invalid task weight ${weight}`)
        )
      }
    }))

  it("decay ends at zero quickly however long the node was idle", () => {
    const state = { ...initialReputation, scorePpm: 1_000_000n, decayedUntil: 0 }
    expect(decayedScore(state, Number.MAX_SAFE_INTEGER, { decayPpm: 1n, decayIntervalMs: 1n }).scorePpm).toBe(0n)
    expect(decayedScore(state, 10 * HOUR, { decayPpm: 0n, decayIntervalMs: BigInt(HOUR) })).toEqual({
      scorePpm: 1_000_000n,
      intervals: 10,
      decayedUntil: 10 * HOUR
    })
    expect(decayedScore(initialReputation, 10 * HOUR, decay).scorePpm).toBe(500_000n)
  })
})

describe("Reputation service", () => {
  it.effect("records outcomes once per task and answers the decayed score now", () =>
    Effect.gen(function*() {
      const reputation = yield* Reputation
      expect(yield* reputation.score("n1")).toBe(500_000n)
      yield* reputation.recordSuccess("n1", 1, "t1")
      const again = yield* reputation.recordSuccess("n1", 1, "t1")
      expect(again).toMatchObject({ duplicate: true, scorePpm: 550_000n })
      yield* reputation.recordFailure("n1", 1, "t2")
      expect(yield* reputation.score("n1")).toBe(450_000n)
      yield* TestClock.adjust(HOUR)
      expect(yield* reputation.score("n1")).toBe(445_500n)
      expect(yield* reputation.reputationOf("n1")).toMatchObject({
        scorePpm: 445_500n,
        storedPpm: 450_000n,
        successes: 1,
        failures: 1
      })
    }).pipe(Effect.provide(reputationOn())))

  it.effect("uses and records the decay parameters in force", () =>
    Effect.gen(function*() {
      const reputation = yield* Reputation
      const parameters = yield* NetworkParameters
      yield* reputation.recordSuccess("n1", 2, "t1")
      yield* parameters.set("reputationDecayPpm", 100_000n)
      yield* TestClock.adjust(HOUR)
      expect(yield* reputation.score("n1")).toBe(540_000n)
      const receipt = yield* reputation.recordSuccess("n1", 1, "t2")
      expect(receipt.event).toMatchObject({
        scoreBeforePpm: 540_000n,
        scoreAfterPpm: 590_000n,
        decayPpm: 100_000n,
        parametersVersion: 1
      })
    }).pipe(Effect.provide(reputationOn())))

  it.live(
    "the score stays in range, idle time never raises it, and replay equals live",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(
              fc.record({
                node: fc.nat(2),
                success: fc.boolean(),
                weight: fc.integer({ min: 1, max: 12 }),
                wait: fc.integer({ min: 0, max: 5 * HOUR })
              }),
              { minLength: 1, maxLength: 40 }
            ),
            (history) =>
              Effect.runPromise(
                Effect.gen(function*() {
                  const reputation = yield* Reputation
                  let step = 0
                  for (const entry of history) {
                    const node = `n${entry.node}`
                    const before = yield* reputation.score(node)
                    yield* TestClock.adjust(entry.wait)
                    expect(yield* reputation.score(node)).toBeLessThanOrEqual(before)
                    const receipt = entry.success
                      ? yield* reputation.recordSuccess(node, entry.weight, `t${step++}`)
                      : yield* reputation.recordFailure(node, entry.weight, `t${step++}`)
                    expect(receipt.scorePpm >= 0n && receipt.scorePpm <= 1_000_000n).toBe(true)
                    expect(receipt.scorePpm).toBe(yield* reputation.score(node))
                  }
                  expect(yield* replayMismatches(Reputations.category)).toEqual([])
                }).pipe(Effect.provide(reputationOn()), Effect.provide(TestContext.TestContext))
              )
          ),
          { numRuns: 40 }
        )
      ),
    60_000
  )
})
