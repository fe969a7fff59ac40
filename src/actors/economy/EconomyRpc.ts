/**
 * The economy's RPC contract beside the ledger's: staking, reputation and rewards. Amounts and
 * scores travel as decimal strings (Schema.BigInt); times as ms since the epoch.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { VersionConflict } from "../../events/Journal.js"
import { AccountId, OperationId, PositiveCredits } from "../../domain/Money.js"
import { LedgerError } from "./LedgerErrors.js"
import { DuplicateReward, NoRewardToClaim, RewardNotVested, UnknownReward } from "./Reward.js"
import { InsufficientStake, NothingToWithdraw, PendingUnbond, SlashReason, StakeEvent } from "./Stake.js"
import { Authority, operator, owner, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"

/** What a staking command can fail with: a staking rule, the ledger refusing the money, a racing writer. */
export const StakeFailure = Schema.Union(InsufficientStake, NothingToWithdraw, LedgerError, VersionConflict)
export const RewardFailure = Schema.Union(RewardNotVested, UnknownReward, NoRewardToClaim, DuplicateReward, LedgerError, VersionConflict)

const stakeViewFields = {
  node: Schema.String,
  active: Schema.BigInt,
  unbonding: Schema.BigInt,
  pending: Schema.Array(PendingUnbond),
  withdrawn: Schema.BigInt,
  slashed: Schema.BigInt,
  version: Schema.Number
}
export const StakeView = Schema.Struct(stakeViewFields)
export const StakeReceiptView = Schema.Struct({
  ...stakeViewFields,
  events: Schema.Array(StakeEvent),
  position: Schema.Number,
  duplicate: Schema.Boolean
})

export const ReputationView = Schema.Struct({
  node: Schema.String,
  scorePpm: Schema.BigInt,
  storedPpm: Schema.BigInt,
  successes: Schema.Number,
  failures: Schema.Number,
  version: Schema.Number
})

export const PendingRewardsView = Schema.Struct({
  node: Schema.String,
  rewards: Schema.Array(Schema.Struct({
    rewardId: Schema.String,
    taskId: Schema.String,
    amount: Schema.BigInt,
    vestsAt: Schema.Number,
    vested: Schema.Boolean
  })),
  total: Schema.BigInt,
  vested: Schema.BigInt,
  claimed: Schema.BigInt,
  version: Schema.Number
})

export const ClaimReceiptView = Schema.Struct({
  node: Schema.String,
  claimed: Schema.Array(Schema.Struct({ rewardId: Schema.String, amount: Schema.BigInt })),
  amount: Schema.BigInt,
  duplicate: Schema.Boolean
})

export class EconomyRpcs extends RpcGroup.make(
  Rpc.make("Stake", {
    payload: { node: AccountId, amount: PositiveCredits, operationId: Schema.optional(OperationId), ...signedFields },
    success: StakeReceiptView,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node")),
  Rpc.make("Unbond", {
    payload: { node: AccountId, amount: PositiveCredits, operationId: Schema.optional(OperationId), ...signedFields },
    success: StakeReceiptView,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node")),
  Rpc.make("Withdraw", { payload: { node: AccountId, operationId: Schema.optional(OperationId), ...signedFields }, success: StakeReceiptView, error: StakeFailure }).middleware(SignedCommands).annotate(Authority, owner("node")),
  Rpc.make("Slash", {
    payload: {
      node: AccountId,
      reason: SlashReason,
      /** What proves the offence (a task id, a digest, a pair of conflicting claims). */
      evidence: Schema.String,
      operationId: OperationId,
      ...signedFields
    },
    success: StakeReceiptView,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("StakeOf", { payload: { node: AccountId }, success: StakeView }),
  Rpc.make("ReputationOf", { payload: { node: AccountId }, success: ReputationView }),
  Rpc.make("RewardsOf", { payload: { node: AccountId }, success: PendingRewardsView }),
  Rpc.make("ClaimReward", {
    payload: { node: AccountId, rewardId: Schema.optional(Schema.String), ...signedFields },
    success: ClaimReceiptView,
    error: RewardFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node"))
) {}
