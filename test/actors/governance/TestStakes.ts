/**
 * Voting power for governance tests: each stake change is an event in the journal (`TestStake-<node>`),
 * so a proposal's snapshot position separates the stakes that count from those that came later.
 */
import { Effect, Layer } from "effect"
import { VotingPower } from "../../../src/actors/governance/VotingPower.js"
import { streamCategory } from "../../../src/domain/Ids.js"
import { Journal } from "../../../src/events/Journal.js"

export class TestStakes extends Effect.Service<TestStakes>()("test/TestStakes", {
  effect: Effect.gen(function*() {
    const journal = yield* Journal

    /** Sets the node's active stake; returns the position of the change. */
    const setStake = (node: string, amount: bigint) =>
      journal.append(`TestStake-${node}`, "any", [{
        eventType: "StakeSet",
        payload: { node, amount: amount.toString() }
      }]).pipe(
        Effect.orDie,
        Effect.map((result) => result.envelopes[0]!.position)
      )

    /** Every node's stake after folding the changes at positions <= `position`. */
    const stakesAt = (position: number) =>
      Effect.map(journal.readAll(1, Math.max(0, position)), (envelopes) => {
        const stakes = new Map<string, bigint>()
        for (const envelope of envelopes) {
          if (streamCategory(envelope.streamId) !== "TestStake") continue
          const payload = envelope.payload as { node: string; amount: string }
          stakes.set(payload.node, BigInt(payload.amount))
        }
        return stakes
      })

    const stakeAt = (node: string, position: number) =>
      Effect.map(stakesAt(position), (stakes) => stakes.get(node) ?? 0n)
    const totalStakeAt = (position: number) =>
      Effect.map(stakesAt(position), (stakes) => [...stakes.values()].reduce((sum, amount) => sum + amount, 0n))
    const activeStake = (node: string) => Effect.flatMap(journal.head, (head) => stakeAt(node, head.position))

    return { setStake, stakeAt, totalStakeAt, activeStake } as const
  })
}) {}

/** TestStakes, and VotingPower read from it. */
export const testVotingPower = Layer.effect(
  VotingPower,
  Effect.map(TestStakes, ({ stakeAt, totalStakeAt, activeStake }) => ({ stakeAt, totalStakeAt, activeStake }))
).pipe(Layer.provideMerge(TestStakes.Default))
