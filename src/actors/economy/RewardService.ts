/**
 * Rewards: a grant holds its rUv on the `rewards` account (so it is reserved and counted in the
 * supply as held) and records when it vests; a claim after vesting captures the hold to the node.
 */
import { Clock, Effect, Layer, Schema } from "effect"
import { streamEntityId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { Envelope } from "../../events/Envelope.js"
import * as Policy from "../../events/Policy.js"
import { Ledger } from "./Ledger.js"
import { InvalidAmount } from "./LedgerErrors.js"
import { NetworkParameters } from "./NetworkParameters.js"
import type { RewardEvent, RewardState } from "./Reward.js"
import {
  DuplicateReward,
  RewardEvent as RewardEventSchema,
  RewardGrants,
  rewardHoldId,
  REWARDS_ACCOUNT
} from "./Reward.js"

export const RewardView = Schema.Struct({
  rewardId: Schema.String,
  taskId: Schema.String,
  amount: Schema.BigInt,
  vestsAt: Schema.Number,
  vested: Schema.Boolean
})
export type RewardView = typeof RewardView.Type

export const PendingRewards = Schema.Struct({
  node: Schema.String,
  /** Unclaimed rewards, earliest vesting first. */
  rewards: Schema.Array(RewardView),
  total: Schema.BigInt,
  /** The part of `total` that can be claimed now. */
  vested: Schema.BigInt,
  claimed: Schema.BigInt,
  version: Schema.Number
})
export type PendingRewards = typeof PendingRewards.Type

export const ClaimReceipt = Schema.Struct({
  node: Schema.String,
  claimed: Schema.Array(Schema.Struct({ rewardId: Schema.String, amount: Schema.BigInt })),
  amount: Schema.BigInt,
  duplicate: Schema.Boolean
})
export type ClaimReceipt = typeof ClaimReceipt.Type

const pendingOf = (node: string, state: RewardState, version: number, now: number): PendingRewards => {
  const rewards = Object.values(state.unclaimed)
    .sort((left, right) => left.vestsAt - right.vestsAt || (left.rewardId < right.rewardId ? -1 : 1))
    .map(({ rewardId, taskId, amount, vestsAt }) => ({ rewardId, taskId, amount, vestsAt, vested: vestsAt <= now }))
  return {
    node,
    rewards,
    total: rewards.reduce((sum, reward) => sum + reward.amount, 0n),
    vested: rewards.reduce((sum, reward) => (reward.vested ? sum + reward.amount : sum), 0n),
    claimed: state.claimed,
    version
  }
}

export class Rewards extends Effect.Service<Rewards>()("edge-net/Rewards", {
  effect: Effect.gen(function*() {
    const grants = yield* ActorRunner.make(RewardGrants, { snapshotEvery: 100 })
    const ledger = yield* Ledger
    const parameters = yield* NetworkParameters
    const decodeEvent = Schema.decodeUnknownSync(RewardEventSchema)

    // The entity records the claim first; capturing the hold is idempotent, and the
    // `rewards.settlement` policy finishes a capture that a crash interrupted.
    const settle = (node: string, event: RewardEvent) =>
      event._tag === "RewardClaimed"
        ? Effect.gen(function*() {
          // The hold is gone once captured: a redelivered claim (older than the idempotency window) pays nothing twice.
          const { holds } = yield* ledger.balance(REWARDS_ACCOUNT)
          if (!Object.hasOwn(holds, event.holdId)) return
          yield* ledger.capture(REWARDS_ACCOUNT, event.holdId, node, event.amount)
        })
        : Effect.void

    const pending = Effect.fn("Rewards.pending")(function*(node: string) {
      const { state, version } = yield* grants.state(node)
      return pendingOf(node, state, version, yield* Clock.currentTimeMillis)
    })

    /** Reserves `amount` of the `rewards` account for the node's task; claimable after `vestingPeriodMs` in force. */
    const grant = Effect.fn("Rewards.grant")(function*(node: string, amount: bigint, taskId: string) {
      if (amount <= 0n) return yield* Effect.fail(new InvalidAmount({ amount, reason: "must be positive" }))
      const rewardId = taskId
      const holdId = rewardHoldId(node, rewardId)
      const { state } = yield* grants.state(node)
      const existing = Object.hasOwn(state.unclaimed, rewardId) ? state.unclaimed[rewardId] : undefined
      if (existing !== undefined && existing.amount !== amount) {
        return yield* Effect.fail(new DuplicateReward({ rewardId, amount: existing.amount }))
      }
      // Money first, as for a transfer: a reward is never recorded unfunded. A retry after a crash
      // between the two steps finds its hold open (or is a duplicate command) and records the grant.
      if (existing === undefined) {
        const open = (yield* ledger.balance(REWARDS_ACCOUNT)).holds[holdId]
        const held = open ?? (yield* ledger.hold(REWARDS_ACCOUNT, holdId, amount)).holds[holdId]
        if (held !== amount) return yield* Effect.fail(new DuplicateReward({ rewardId, amount: held ?? 0n }))
        const inForce = yield* parameters.current("economy")
        yield* grants.send(node, {
          _tag: "Grant",
          rewardId,
          taskId,
          amount,
          holdId,
          parameters: { vestingPeriodMs: inForce.values["vestingPeriodMs"] ?? 0n, version: inForce.version }
        }, { commandId: `grant/${rewardId}` })
      }
      return yield* pending(node)
    })

    /** Claims one reward, or every vested one; refused before vesting with the time it vests. */
    const claim = Effect.fn("Rewards.claim")(function*(node: string, rewardId?: string) {
      const result = yield* grants.send(
        node,
        { _tag: "Claim", rewardId },
        rewardId === undefined ? {} : { commandId: `claim/${rewardId}` }
      )
      const claimed = result.events.flatMap((
        event
      ) => (event._tag === "RewardClaimed" ? [{ rewardId: event.rewardId, amount: event.amount }] : []))
      yield* Effect.forEach(result.events, (event) => settle(node, event), { discard: true })
      return {
        node,
        claimed,
        amount: claimed.reduce((sum, reward) => sum + reward.amount, 0n),
        duplicate: result.duplicate
      } satisfies ClaimReceipt
    })

    /** For the settlement policy: finishes the capture of a RewardClaimed event. */
    const completeSettlement = (envelope: Envelope) =>
      settle(streamEntityId(envelope.streamId), decodeEvent(envelope.payload))

    return { grant, claim, pending, completeSettlement } as const
  })
}) {}

/** The policy that pays out claims a crash interrupted: at least once, applied once. */
export const rewardsSettlementPolicyDefinition = Effect.map(Rewards, (rewards): Policy.PolicyDefinition<never> => ({
  name: "rewards.settlement",
  categories: [RewardGrants.category],
  eventTypes: ["RewardClaimed"],
  handle: rewards.completeSettlement
}))

export const rewardsSettlementPolicy = Layer.unwrapEffect(Effect.map(rewardsSettlementPolicyDefinition, Policy.layer))
