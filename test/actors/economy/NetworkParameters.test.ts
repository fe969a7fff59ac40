import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { ParameterChanged, Parameters } from "../../../src/actors/economy/Parameters.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import { memoryKernel } from "../../support/Layers.js"

const spec = DeciderSpecification.for(Parameters.decider)

describe("network parameters", () => {
  it.effect("a change records the old and new value and the proposal behind it", () =>
    spec.given([]).when({ _tag: "SetParameter", owner: "market", name: "feeBps", value: 50n, proposalId: "p1" })
      .then([ParameterChanged.make({ name: "feeBps", from: 30n, to: 50n, proposalId: "p1" })]))

  it.effect("only the owner changes a parameter, and rates stay in range", () =>
    Effect.all([
      spec.given([]).when({ _tag: "SetParameter", owner: "economy", name: "feeBps", value: 50n }).thenFails((e) =>
        e.message === "parameter feeBps: is not owned by economy"
      ),
      spec.given([]).when({ _tag: "SetParameter", owner: "market", name: "feeBps", value: 10_000n }).thenFails(),
      spec.given([]).when({ _tag: "SetParameter", owner: "economy", name: "slashEquivocationPpm", value: 1_000_001n })
        .thenFails()
    ]))

  it.effect("every value stays in its range; a change by proposal at most doubles or halves the value in force", () =>
    Effect.all([
      spec.given([]).when({ _tag: "SetParameter", owner: "market", name: "feeBps", value: 1_001n }).thenFails((e) =>
        e.message === "parameter feeBps: must be between 0 and 1000, not 1001"
      ),
      spec.given([]).when({ _tag: "SetParameter", owner: "governance", name: "quorumPpm", value: 50_000n }).thenFails(),
      // Genesis settings (no proposal) may go anywhere in the range; a proposal only one step.
      spec.given([]).when({ _tag: "SetParameter", owner: "market", name: "feeBps", value: 1_000n })
        .then([ParameterChanged.make({ name: "feeBps", from: 30n, to: 1_000n })]),
      spec.given([]).when({ _tag: "SetParameter", owner: "market", name: "feeBps", value: 61n, proposalId: "p1" })
        .thenFails((e) =>
          e.message === "parameter feeBps: one proposal may move it from 30 to between 15 and 60, not 61"
        ),
      spec.given([ParameterChanged.make({ name: "feeBps", from: 30n, to: 0n })]).when({
        _tag: "SetParameter",
        owner: "market",
        name: "feeBps",
        value: 30n,
        proposalId: "p2"
      })
        .then([ParameterChanged.make({ name: "feeBps", from: 0n, to: 30n, proposalId: "p2" })])
    ]))

  it.effect("setting the value in force changes nothing", () =>
    spec.given([]).when({ _tag: "SetParameter", owner: "market", name: "feeBps", value: 30n }).thenNothing())

  it.effect("the service gives each owner's values in force", () =>
    Effect.gen(function*() {
      const parameters = yield* NetworkParameters
      expect((yield* parameters.current("market")).values["feeBps"]).toBe(30n)
      const after = yield* parameters.set("feeBps", 45n, { proposalId: "p7" })
      expect(after.values["feeBps"]).toBe(45n)
      expect(after.version).toBe(1)
    }).pipe(Effect.provide(NetworkParameters.Default.pipe(Layer.provideMerge(memoryKernel())))))
})
