/**
 * Reputation: records task outcomes on `Reputation-<node>` with the decay parameters in force, and
 * answers a node's effective score now (decay applied lazily, on read as on write).
 */
import { Clock, Effect, Schema } from "effect"
import * as ActorRunner from "../../events/ActorRunner.js"
import { NetworkParameters } from "./NetworkParameters.js"
import type { DecayParameters, Outcome } from "./Reputation.js"
import { decayedScore, ReputationEvent as ReputationEventSchema, Reputations } from "./Reputation.js"

export const ReputationView = Schema.Struct({
  node: Schema.String,
  /** Effective score now, in ppm (0..1_000_000). */
  scorePpm: Schema.BigInt,
  /** The score as last written, before decay since then. */
  storedPpm: Schema.BigInt,
  successes: Schema.Number,
  failures: Schema.Number,
  version: Schema.Number
})
export type ReputationView = typeof ReputationView.Type

export const OutcomeReceipt = Schema.Struct({
  ...ReputationView.fields,
  event: ReputationEventSchema,
  position: Schema.Number,
  duplicate: Schema.Boolean
})
export type OutcomeReceipt = typeof OutcomeReceipt.Type

export class Reputation extends Effect.Service<Reputation>()("edge-net/Reputation", {
  effect: Effect.gen(function*() {
    const reputations = yield* ActorRunner.make(Reputations, { snapshotEvery: 100 })
    const parameters = yield* NetworkParameters

    const decayInForce = Effect.map(parameters.current("economy"), (inForce): DecayParameters => ({
      decayPpm: inForce.values["reputationDecayPpm"] ?? 0n,
      decayIntervalMs: inForce.values["reputationDecayIntervalMs"] ?? 0n,
      version: inForce.version
    }))

    const record = (outcome: Outcome, node: string, weight: number, taskId: string) =>
      Effect.gen(function*() {
        const decay = yield* decayInForce
        const result = yield* reputations.send(node, { _tag: "RecordOutcome", outcome, taskId, weight, decay }, {
          commandId: `${outcome}/${taskId}`
        })
        const event = result.events[0]!
        return {
          node,
          scorePpm: event.scoreAfterPpm,
          storedPpm: result.state.scorePpm,
          successes: result.state.successes,
          failures: result.state.failures,
          version: result.version,
          event,
          position: result.position,
          duplicate: result.duplicate
        } satisfies OutcomeReceipt
      })

    /** +50_000 ppm per unit of weight (after decay), at most 1_000_000; once per task. */
    const recordSuccess = Effect.fn("Reputation.recordSuccess")(
      function*(node: string, weight: number, taskId: string) {
        return yield* record("success", node, weight, taskId)
      }
    )

    /** -100_000 ppm per unit of weight (after decay), at least 0; once per task. */
    const recordFailure = Effect.fn("Reputation.recordFailure")(
      function*(node: string, weight: number, taskId: string) {
        return yield* record("failure", node, weight, taskId)
      }
    )

    const reputationOf = Effect.fn("Reputation.reputationOf")(function*(node: string) {
      const { state, version } = yield* reputations.state(node)
      const decayed = decayedScore(state, yield* Clock.currentTimeMillis, yield* decayInForce)
      return {
        node,
        scorePpm: decayed.scorePpm,
        storedPpm: state.scorePpm,
        successes: state.successes,
        failures: state.failures,
        version
      } satisfies ReputationView
    })

    /** The node's effective score now, in ppm. */
    const score = Effect.fn("Reputation.score")(function*(node: string) {
      return (yield* reputationOf(node)).scorePpm
    })

    return { recordSuccess, recordFailure, reputationOf, score } as const
  })
}) {}
