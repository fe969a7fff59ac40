/**
 * The economy's RPC contract beside the ledger's: staking, reputation and rewards. Amounts and
 * scores travel as decimal strings (Schema.BigInt); times as ms since the epoch.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { anyKey, Authority, operator, owner, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { AccountId, OperationId, PositiveCredits } from "../../domain/Money.js"
import { Sequenced } from "../../domain/Sequencing.js"
import { ForkProof } from "../../events/ForkProof.js"
import { VersionConflict } from "../../events/Journal.js"
import { LedgerError } from "./LedgerErrors.js"
import { ReputationView } from "./ReputationService.js"
import { DuplicateReward, NoRewardToClaim, RewardNotVested, UnknownReward } from "./Reward.js"
import { ClaimReceipt, PendingRewards } from "./RewardService.js"
import { InsufficientStake, InvalidForkProof, NothingToWithdraw, SlashReason } from "./Stake.js"
import { StakeReceipt, StakeView } from "./StakeService.js"

/** What a staking command can fail with: a staking rule, the ledger refusing the money, a racing writer. */
export const StakeFailure = Schema.Union(InsufficientStake, NothingToWithdraw, LedgerError, VersionConflict)
export const RewardFailure = Schema.Union(
  RewardNotVested,
  UnknownReward,
  NoRewardToClaim,
  DuplicateReward,
  LedgerError,
  VersionConflict
)

export class EconomyRpcs extends RpcGroup.make(
  Rpc.make("Stake", {
    payload: { node: AccountId, amount: PositiveCredits, operationId: Schema.optional(OperationId), ...signedFields },
    success: StakeReceipt,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node")),
  Rpc.make("Unbond", {
    payload: { node: AccountId, amount: PositiveCredits, operationId: Schema.optional(OperationId), ...signedFields },
    success: StakeReceipt,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node")),
  Rpc.make("Withdraw", {
    payload: { node: AccountId, operationId: Schema.optional(OperationId), ...signedFields },
    success: StakeReceipt,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node")),
  Rpc.make("Slash", {
    payload: {
      node: AccountId,
      reason: SlashReason,
      /** What proves the offence (a task id, a digest, a pair of conflicting claims). */
      evidence: Schema.String,
      operationId: OperationId,
      ...signedFields
    },
    success: StakeReceipt,
    error: StakeFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  /** Any key may bring a fork proof: the proof, checked by the economy, is what authorizes the slash. */
  Rpc.make("ReportEquivocation", {
    payload: { proof: ForkProof, ...signedFields },
    success: StakeReceipt,
    error: Schema.Union(InvalidForkProof, StakeFailure)
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("StakeOf", { payload: { node: AccountId }, success: StakeView }),
  Rpc.make("ReputationOf", { payload: { node: AccountId }, success: ReputationView }),
  Rpc.make("RewardsOf", { payload: { node: AccountId }, success: PendingRewards }),
  Rpc.make("ClaimReward", {
    payload: { node: AccountId, rewardId: Schema.optional(Schema.String), ...signedFields },
    success: ClaimReceipt,
    error: RewardFailure
  }).middleware(SignedCommands).annotate(Authority, owner("node"))
).middleware(Sequenced) {}
