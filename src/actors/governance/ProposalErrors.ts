/**
 * What proposing, voting, queueing, executing or canceling can be refused with: typed errors that cross
 * RPC and print as one line naming the proposal and what was wrong.
 */
import { Schema } from "effect"
import { InvalidParameter } from "../economy/ParameterCatalogue.js"

// The literals of Proposal.ts's Support and ProposalStatus (which imports this module).
const SupportField = Schema.Literal("for", "against", "abstain")
const StatusField = Schema.Literal(
  "Pending",
  "Active",
  "Canceled",
  "Defeated",
  "Succeeded",
  "Queued",
  "Expired",
  "Executed"
)
const iso = (millis: number) => new Date(millis).toISOString()

export class ProposalNotFound
  extends Schema.TaggedError<ProposalNotFound>()("ProposalNotFound", { proposalId: Schema.String })
{
  override get message() {
    return `no proposal ${this.proposalId}`
  }
}

export class ProposalExists
  extends Schema.TaggedError<ProposalExists>()("ProposalExists", { proposalId: Schema.String })
{
  override get message() {
    return `proposal ${this.proposalId} already exists (the same change with the same description: change the description to propose it again)`
  }
}

export class InvalidProposal
  extends Schema.TaggedError<InvalidProposal>()("InvalidProposal", { proposalId: Schema.String, reason: Schema.String })
{
  override get message() {
    return `proposal ${this.proposalId}: ${this.reason}`
  }
}

/** Kept for the RPC contract's error union; proposing is now refused with ProposalThresholdNotMet. */
export class ProposerWithoutStake extends Schema.TaggedError<ProposerWithoutStake>()("ProposerWithoutStake", {
  proposer: Schema.String,
  stake: Schema.BigInt
}) {
  override get message() {
    return `insufficient stake: ${this.proposer} has ${this.stake} rUv staked, proposing requires at least 1`
  }
}

/** OpenZeppelin's proposal threshold: the proposer's stake at the snapshot must reach `proposalThresholdRuv`. */
export class ProposalThresholdNotMet extends Schema.TaggedError<ProposalThresholdNotMet>()("ProposalThresholdNotMet", {
  proposer: Schema.String,
  stake: Schema.BigInt,
  threshold: Schema.BigInt,
  snapshot: Schema.Number
}) {
  override get message() {
    return `insufficient stake to propose: ${this.proposer} has ${this.stake} rUv staked at position ${this.snapshot}, the proposal threshold is ${this.threshold}`
  }
}

export class AlreadyVoted extends Schema.TaggedError<AlreadyVoted>()("AlreadyVoted", {
  proposalId: Schema.String,
  voter: Schema.String,
  support: SupportField
}) {
  override get message() {
    return `${this.voter} already voted ${this.support} on proposal ${this.proposalId}: a vote is cast once`
  }
}

export class OutsideVotingWindow extends Schema.TaggedError<OutsideVotingWindow>()("OutsideVotingWindow", {
  proposalId: Schema.String,
  status: StatusField,
  voteStart: Schema.Number,
  voteEnd: Schema.Number,
  at: Schema.Number
}) {
  override get message() {
    if (this.status === "Pending") {
      return `voting on proposal ${this.proposalId} opens at ${iso(this.voteStart)} (in ${this.voteStart - this.at} ms)`
    }
    if (this.status === "Canceled") return `proposal ${this.proposalId} was canceled: no more votes`
    return `voting on proposal ${this.proposalId} closed at ${iso(this.voteEnd)} (it is ${this.status})`
  }
}

export class NoVotingPower extends Schema.TaggedError<NoVotingPower>()("NoVotingPower", {
  proposalId: Schema.String,
  voter: Schema.String,
  snapshot: Schema.Number
}) {
  override get message() {
    return `${this.voter} had no stake at position ${this.snapshot}, the snapshot of proposal ${this.proposalId}: no vote to cast`
  }
}

export class QuorumNotReached extends Schema.TaggedError<QuorumNotReached>()("QuorumNotReached", {
  proposalId: Schema.String,
  /** Stake that voted for or abstained. */
  votes: Schema.BigInt,
  required: Schema.BigInt
}) {
  override get message() {
    return `proposal ${this.proposalId} was defeated: no quorum (${this.votes} rUv of stake voted for or abstained, ${this.required} required)`
  }
}

export class MajorityNotReached extends Schema.TaggedError<MajorityNotReached>()("MajorityNotReached", {
  proposalId: Schema.String,
  forVotes: Schema.BigInt,
  againstVotes: Schema.BigInt
}) {
  override get message() {
    return `proposal ${this.proposalId} was defeated: no majority (${this.forVotes} rUv for, ${this.againstVotes} against)`
  }
}

export class TimelockNotExpired extends Schema.TaggedError<TimelockNotExpired>()("TimelockNotExpired", {
  proposalId: Schema.String,
  eta: Schema.Number,
  at: Schema.Number
}) {
  override get message() {
    return `proposal ${this.proposalId} is timelocked until ${iso(this.eta)} (${this.eta - this.at} ms left)`
  }
}

export class AlreadyExecuted extends Schema.TaggedError<AlreadyExecuted>()("AlreadyExecuted", {
  proposalId: Schema.String,
  executedAt: Schema.Number
}) {
  override get message() {
    return `proposal ${this.proposalId} was already executed at ${iso(this.executedAt)}`
  }
}

export class ProposalExpired extends Schema.TaggedError<ProposalExpired>()("ProposalExpired", {
  proposalId: Schema.String,
  expiredAt: Schema.Number
}) {
  override get message() {
    return `proposal ${this.proposalId} expired at ${
      iso(this.expiredAt)
    }: it was not executed within 14 days of its eta`
  }
}

export class NotProposer extends Schema.TaggedError<NotProposer>()("NotProposer", {
  proposalId: Schema.String,
  proposer: Schema.String,
  by: Schema.String
}) {
  override get message() {
    return `only the proposer ${this.proposer} can cancel proposal ${this.proposalId}, not ${this.by}`
  }
}

/** OpenZeppelin's GovernorUnexpectedProposalState: the action does not apply to the proposal's state. */
export class UnexpectedProposalState extends Schema.TaggedError<UnexpectedProposalState>()("UnexpectedProposalState", {
  proposalId: Schema.String,
  action: Schema.Literal("queue", "execute", "cancel"),
  status: StatusField,
  at: Schema.Number,
  hint: Schema.optionalWith(Schema.String, { exact: true })
}) {
  override get message() {
    return `cannot ${this.action} proposal ${this.proposalId}: it is ${this.status}${
      this.hint === undefined ? "" : ` (${this.hint})`
    }`
  }
}

export const ProposalError = Schema.Union(
  ProposalNotFound,
  ProposalExists,
  InvalidProposal,
  ProposalThresholdNotMet,
  InvalidParameter,
  AlreadyVoted,
  OutsideVotingWindow,
  NoVotingPower,
  QuorumNotReached,
  MajorityNotReached,
  TimelockNotExpired,
  AlreadyExecuted,
  ProposalExpired,
  NotProposer,
  UnexpectedProposalState
)
export type ProposalError = typeof ProposalError.Type
