/**
 * A node's task rewards as an event-sourced entity (`Reward-<node>`): each grant is held in the
 * `rewards` account until it vests (`vestingPeriodMs` in force), then the node claims it.
 */
import { Clock, Effect, Schema } from "effect"
import { RecordedCredits } from "../../domain/Money.js"
import type { EventSourced } from "../../events/Decider.js"
import { InvalidAmount } from "./LedgerErrors.js"

/** The system account rewards are paid from (minted into by the operator). */
export const REWARDS_ACCOUNT = "rewards"

/** The hold on the `rewards` account that reserves one reward until it is claimed. */
export const rewardHoldId = (node: string, rewardId: string) => `reward/${node}/${rewardId}`

// Events
export const RewardGranted = Schema.TaggedStruct("RewardGranted", {
  rewardId: Schema.String,
  taskId: Schema.String,
  amount: RecordedCredits,
  /** The hold on the `rewards` account that funds it. */
  holdId: Schema.String,
  at: Schema.Number,
  vestsAt: Schema.Number,
  vestingPeriodMs: Schema.BigInt,
  parametersVersion: Schema.Number
})
export const RewardClaimed = Schema.TaggedStruct("RewardClaimed", {
  rewardId: Schema.String,
  amount: RecordedCredits,
  holdId: Schema.String,
  at: Schema.Number
})
export const RewardEvent = Schema.Union(RewardGranted, RewardClaimed)
export type RewardEvent = typeof RewardEvent.Type

export const PendingReward = Schema.Struct({
  rewardId: Schema.String,
  taskId: Schema.String,
  amount: RecordedCredits,
  holdId: Schema.String,
  vestsAt: Schema.Number
})
export type PendingReward = typeof PendingReward.Type

export const RewardState = Schema.Struct({
  /** Granted and not yet claimed, by reward id. */
  unclaimed: Schema.Record({ key: Schema.String, value: PendingReward }),
  granted: RecordedCredits,
  claimed: RecordedCredits
})
export type RewardState = typeof RewardState.Type

export type RewardCommand =
  | {
    readonly _tag: "Grant"
    readonly rewardId: string
    readonly taskId: string
    readonly amount: bigint
    readonly holdId: string
    readonly parameters: { readonly vestingPeriodMs: bigint; readonly version: number }
  }
  /** One reward by id, or every vested one. */
  | { readonly _tag: "Claim"; readonly rewardId?: string | undefined }

// Errors a node can hit; they cross RPC as typed failures.
export class RewardNotVested extends Schema.TaggedError<RewardNotVested>()("RewardNotVested", {
  rewardId: Schema.String,
  vestsAt: Schema.Number
}) {
  override get message() {
    return `reward ${this.rewardId} is not vested: it can be claimed from ${new Date(this.vestsAt).toISOString()}`
  }
}

export class UnknownReward extends Schema.TaggedError<UnknownReward>()("UnknownReward", { rewardId: Schema.String }) {
  override get message() {
    return `no unclaimed reward ${this.rewardId}`
  }
}

export class NoRewardToClaim extends Schema.TaggedError<NoRewardToClaim>()("NoRewardToClaim", {}) {
  override get message() {
    return "nothing to claim: no unclaimed reward"
  }
}

export class DuplicateReward
  extends Schema.TaggedError<DuplicateReward>()("DuplicateReward", { rewardId: Schema.String, amount: RecordedCredits })
{
  override get message() {
    return this.amount > 0n
      ? `reward ${this.rewardId} was already granted (${this.amount} rUv)`
      : `reward ${this.rewardId} was already granted and claimed`
  }
}

export const RewardError = Schema.Union(InvalidAmount, RewardNotVested, UnknownReward, NoRewardToClaim, DuplicateReward)
export type RewardError = typeof RewardError.Type

const initialState: RewardState = { unclaimed: {}, granted: 0n, claimed: 0n }

const claimedEvent = (reward: PendingReward, at: number) =>
  RewardClaimed.make({ rewardId: reward.rewardId, amount: reward.amount, holdId: reward.holdId, at })

const decide = (command: RewardCommand, state: RewardState): Effect.Effect<ReadonlyArray<RewardEvent>, RewardError> =>
  Effect.flatMap(Clock.currentTimeMillis, (at): Effect.Effect<ReadonlyArray<RewardEvent>, RewardError> => {
    switch (command._tag) {
      case "Grant": {
        if (command.amount <= 0n) {
          return Effect.fail(new InvalidAmount({ amount: command.amount, reason: "must be positive" }))
        }
        const existing = Object.hasOwn(state.unclaimed, command.rewardId)
          ? state.unclaimed[command.rewardId]
          : undefined
        if (existing !== undefined) {
          return Effect.fail(new DuplicateReward({ rewardId: command.rewardId, amount: existing.amount }))
        }
        const { vestingPeriodMs, version } = command.parameters
        return Effect.succeed([RewardGranted.make({
          rewardId: command.rewardId,
          taskId: command.taskId,
          amount: command.amount,
          holdId: command.holdId,
          at,
          vestsAt: at + Number(vestingPeriodMs),
          vestingPeriodMs,
          parametersVersion: version
        })])
      }
      case "Claim": {
        if (command.rewardId !== undefined) {
          const reward = Object.hasOwn(state.unclaimed, command.rewardId)
            ? state.unclaimed[command.rewardId]
            : undefined
          if (reward === undefined) return Effect.fail(new UnknownReward({ rewardId: command.rewardId }))
          if (reward.vestsAt > at) {
            return Effect.fail(new RewardNotVested({ rewardId: reward.rewardId, vestsAt: reward.vestsAt }))
          }
          return Effect.succeed([claimedEvent(reward, at)])
        }
        const rewards = Object.values(state.unclaimed).sort((left, right) => left.vestsAt - right.vestsAt)
        if (rewards.length === 0) return Effect.fail(new NoRewardToClaim())
        const vested = rewards.filter((reward) => reward.vestsAt <= at)
        // Nothing vested yet: name the reward that vests first.
        if (vested.length === 0) {
          return Effect.fail(new RewardNotVested({ rewardId: rewards[0]!.rewardId, vestsAt: rewards[0]!.vestsAt }))
        }
        return Effect.succeed(vested.map((reward) => claimedEvent(reward, at)))
      }
    }
  })

const evolve = (state: RewardState, event: RewardEvent): RewardState => {
  switch (event._tag) {
    case "RewardGranted": {
      const { rewardId, taskId, amount, holdId, vestsAt } = event
      return {
        ...state,
        unclaimed: { ...state.unclaimed, [rewardId]: { rewardId, taskId, amount, holdId, vestsAt } },
        granted: state.granted + amount
      }
    }
    case "RewardClaimed": {
      const { [event.rewardId]: _, ...unclaimed } = state.unclaimed
      return { ...state, unclaimed, claimed: state.claimed + event.amount }
    }
  }
}

export const RewardGrants: EventSourced<RewardCommand, RewardEvent, RewardState, RewardError> = {
  category: "Reward",
  decider: { initialState, decide, evolve },
  event: RewardEvent,
  state: RewardState
}
