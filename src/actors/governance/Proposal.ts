/**
 * A governance proposal as an event-sourced entity (`Proposal-<id>`): a change of one network parameter,
 * voted with stake at a snapshot, through OpenZeppelin Governor's lifecycle with a timelock before it runs.
 */
import { Clock, Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"
import type { ParameterName } from "../economy/ParameterCatalogue.js"
import {
  InvalidParameter,
  ParameterNameSchema,
  ParameterOwner,
  PARAMETERS,
  proposedChangeProblem
} from "../economy/ParameterCatalogue.js"
import type { ProposalError } from "./ProposalErrors.js"
import {
  AlreadyExecuted,
  AlreadyVoted,
  InvalidProposal,
  MajorityNotReached,
  NotProposer,
  NoVotingPower,
  OutsideVotingWindow,
  ProposalExists,
  ProposalExpired,
  ProposalNotFound,
  ProposalThresholdNotMet,
  QuorumNotReached,
  TimelockNotExpired,
  UnexpectedProposalState
} from "./ProposalErrors.js"

/** How long a queued proposal stays executable after its eta (Compound's and OpenZeppelin's GRACE_PERIOD). */
export const GRACE_PERIOD_MS = 14 * 24 * 60 * 60 * 1000

export const ProposalId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, {
    message: () => "a proposal id is 1-128 letters, digits or _ . : @ -, starting with a letter or digit"
  })
)

/** As OpenZeppelin's GovernorCountingSimple: abstentions count toward quorum, not toward the majority. */
export const Support = Schema.Literal("for", "against", "abstain")
export type Support = typeof Support.Type

/** OpenZeppelin Governor's ProposalState. */
export const ProposalStatus = Schema.Literal(
  "Pending",
  "Active",
  "Canceled",
  "Defeated",
  "Succeeded",
  "Queued",
  "Expired",
  "Executed"
)
export type ProposalStatus = typeof ProposalStatus.Type

// Events
export const ProposalCreated = Schema.TaggedStruct("ProposalCreated", {
  proposalId: Schema.String,
  proposer: Schema.String,
  parameter: ParameterNameSchema,
  owner: ParameterOwner,
  value: Schema.BigInt,
  description: Schema.String,
  at: Schema.Number,
  /** The journal position whose stakes weigh the votes: stake moved after it does not count. */
  snapshot: Schema.Number,
  /** Active stake of the whole network at the snapshot, the base of the quorum. */
  totalStake: Schema.BigInt,
  /** Voting is open in [voteStart, voteEnd). */
  voteStart: Schema.Number,
  voteEnd: Schema.Number,
  // The governance parameters in force when it was proposed, and the version of their stream.
  quorumPpm: Schema.BigInt,
  votingDelayMs: Schema.Number,
  votingPeriodMs: Schema.Number,
  timelockMs: Schema.Number,
  parametersVersion: Schema.Number
})
export type ProposalCreated = typeof ProposalCreated.Type
/** `weight` is the voter's stake at the snapshot, as the service read it. */
export const VoteCast = Schema.TaggedStruct("VoteCast", {
  voter: Schema.String,
  support: Support,
  weight: Schema.BigInt,
  at: Schema.Number
})
export const ProposalCanceled = Schema.TaggedStruct("ProposalCanceled", { by: Schema.String, at: Schema.Number })
export const ProposalQueued = Schema.TaggedStruct("ProposalQueued", { eta: Schema.Number, at: Schema.Number })
/** Carries the change and the count that carried it, so the parameter policy needs nothing else. */
export const ProposalExecuted = Schema.TaggedStruct("ProposalExecuted", {
  proposalId: Schema.String,
  parameter: ParameterNameSchema,
  value: Schema.BigInt,
  at: Schema.Number,
  forVotes: Schema.BigInt,
  againstVotes: Schema.BigInt,
  abstainVotes: Schema.BigInt,
  quorumRequired: Schema.BigInt
})
export type ProposalExecuted = typeof ProposalExecuted.Type
export const ProposalEvent = Schema.Union(ProposalCreated, VoteCast, ProposalCanceled, ProposalQueued, ProposalExecuted)
export type ProposalEvent = typeof ProposalEvent.Type

export const Tally = Schema.Struct({ for: Schema.BigInt, against: Schema.BigInt, abstain: Schema.BigInt })
export type Tally = typeof Tally.Type

export const Ballot = Schema.Struct({ support: Support, weight: Schema.BigInt, at: Schema.Number })
export type Ballot = typeof Ballot.Type

export const ProposalState = Schema.Struct({
  proposal: Schema.NullOr(ProposalCreated),
  tally: Tally,
  /** One ballot per voter. */
  ballots: Schema.Record({ key: Schema.String, value: Ballot }),
  eta: Schema.NullOr(Schema.Number),
  canceledAt: Schema.NullOr(Schema.Number),
  executedAt: Schema.NullOr(Schema.Number)
})
export type ProposalState = typeof ProposalState.Type

/** The governance parameters in force, as NetworkParameters.current("governance") gives them. */
export interface GovernanceSettings {
  readonly quorumPpm: bigint
  /** Stake the proposer must have at the snapshot (OpenZeppelin's proposalThreshold). */
  readonly proposalThresholdRuv: bigint
  readonly votingDelayMs: bigint
  readonly votingPeriodMs: bigint
  readonly timelockMs: bigint
  /** Version of the `Parameters-governance` stream they were read at. */
  readonly version: number
}

export type ProposalCommand =
  | {
    readonly _tag: "Propose"
    readonly proposalId: string
    readonly proposer: string
    readonly parameter: ParameterName
    readonly value: bigint
    readonly description: string
    /** Read by the service: the journal's head position, the network's and the proposer's active stake there. */
    readonly snapshot: number
    readonly totalStake: bigint
    readonly proposerStake: bigint
    /** The parameter's value in force, which bounds how far the proposal may move it. */
    readonly currentValue: bigint
    readonly settings: GovernanceSettings
  }
  /** `weight`: the voter's stake at the proposal's snapshot, which the service reads. */
  | {
    readonly _tag: "CastVote"
    readonly proposalId: string
    readonly voter: string
    readonly support: Support
    readonly weight: bigint
  }
  | { readonly _tag: "Queue"; readonly proposalId: string }
  /** `currentValue`: the parameter's value in force now, against which the change is checked again. */
  | { readonly _tag: "Execute"; readonly proposalId: string; readonly currentValue: bigint }
  | { readonly _tag: "Cancel"; readonly proposalId: string; readonly by: string }

const initialState: ProposalState = {
  proposal: null,
  tally: { for: 0n, against: 0n, abstain: 0n },
  ballots: {},
  eta: null,
  canceledAt: null,
  executedAt: null
}

/** Stake that must vote for or abstain: quorumPpm of the snapshot's total, rounded up (never below the rate). */
export const quorumRequired = (proposal: ProposalCreated): bigint =>
  (proposal.quorumPpm * proposal.totalStake + 999_999n) / 1_000_000n

export const quorumReached = (state: ProposalState): boolean =>
  state.proposal !== null && state.tally.for + state.tally.abstain >= quorumRequired(state.proposal)

/** GovernorCountingSimple's voteSucceeded: strictly more for than against. */
export const majorityReached = (state: ProposalState): boolean => state.tally.for > state.tally.against

/**
 * OpenZeppelin Governor's `state()`: a pure function of the recorded events and the time (undefined
 * when no such proposal was created). Times are milliseconds; voting is open in [voteStart, voteEnd).
 */
export const stateOf = (state: ProposalState, now: number): ProposalStatus | undefined => {
  const { proposal } = state
  if (proposal === null) return undefined
  if (state.executedAt !== null) return "Executed"
  if (state.canceledAt !== null) return "Canceled"
  if (now < proposal.voteStart) return "Pending"
  if (now < proposal.voteEnd) return "Active"
  if (!quorumReached(state) || !majorityReached(state)) return "Defeated"
  if (state.eta === null) return "Succeeded"
  if (now >= state.eta + GRACE_PERIOD_MS) return "Expired"
  return "Queued"
}

/** Why a finished vote failed: no quorum first (as the count is checked), then no majority. */
const defeatOf = (state: ProposalState, proposal: ProposalCreated) =>
  !quorumReached(state)
    ? new QuorumNotReached({
      proposalId: proposal.proposalId,
      votes: state.tally.for + state.tally.abstain,
      required: quorumRequired(proposal)
    })
    : new MajorityNotReached({
      proposalId: proposal.proposalId,
      forVotes: state.tally.for,
      againstVotes: state.tally.against
    })

const unexpected = (
  proposal: ProposalCreated,
  action: "queue" | "execute" | "cancel",
  status: ProposalStatus,
  now: number
) => {
  const hint = action === "cancel"
    ? "only a Pending proposal can be canceled"
    : status === "Pending"
    ? `voting opens at ${new Date(proposal.voteStart).toISOString()}`
    : status === "Active"
    ? `voting ends at ${new Date(proposal.voteEnd).toISOString()}`
    : status === "Succeeded" && action === "execute"
    ? "queue it first"
    : undefined
  return new UnexpectedProposalState({
    proposalId: proposal.proposalId,
    action,
    status,
    at: now,
    ...(hint === undefined ? {} : { hint })
  })
}

/** The checks the parameter's owner makes on a change by proposal (range, then step from the value in force). */
const validateChange = (name: ParameterName, from: bigint, to: bigint) => {
  if (!Object.hasOwn(PARAMETERS, name)) {
    return Effect.fail(new InvalidParameter({ name, reason: "is not a network parameter" }))
  }
  const problem = proposedChangeProblem(name, from, to)
  return problem === undefined ? Effect.void : Effect.fail(new InvalidParameter({ name, reason: problem }))
}

/** At least 1 rUv of stake even when the threshold in force were lower: proposing is for stakers. */
const thresholdOf = (
  settings: GovernanceSettings
) => (settings.proposalThresholdRuv > 1n ? settings.proposalThresholdRuv : 1n)

const decideAt = (
  command: ProposalCommand,
  state: ProposalState,
  now: number
): Effect.Effect<ReadonlyArray<ProposalEvent>, ProposalError> => {
  const { proposal } = state
  if (command._tag === "Propose") {
    if (proposal !== null) return Effect.fail(new ProposalExists({ proposalId: command.proposalId }))
    const { settings, proposalId } = command
    const threshold = thresholdOf(settings)
    if (command.proposerStake < threshold) {
      return Effect.fail(
        new ProposalThresholdNotMet({
          proposer: command.proposer,
          stake: command.proposerStake,
          threshold,
          snapshot: command.snapshot
        })
      )
    }
    if (command.description.trim() === "") {
      return Effect.fail(new InvalidProposal({ proposalId, reason: "a description is required" }))
    }
    if (settings.votingPeriodMs <= 0n) {
      return Effect.fail(
        new InvalidProposal({ proposalId, reason: "votingPeriodMs in force is 0: nothing could be voted" })
      )
    }
    const voteStart = now + Number(settings.votingDelayMs)
    return Effect.as(validateChange(command.parameter, command.currentValue, command.value), [
      ProposalCreated.make({
        proposalId,
        proposer: command.proposer,
        parameter: command.parameter,
        owner: PARAMETERS[command.parameter].owner,
        value: command.value,
        description: command.description,
        at: now,
        snapshot: command.snapshot,
        totalStake: command.totalStake,
        voteStart,
        voteEnd: voteStart + Number(settings.votingPeriodMs),
        quorumPpm: settings.quorumPpm,
        votingDelayMs: Number(settings.votingDelayMs),
        votingPeriodMs: Number(settings.votingPeriodMs),
        timelockMs: Number(settings.timelockMs),
        parametersVersion: settings.version
      })
    ])
  }
  if (proposal === null) return Effect.fail(new ProposalNotFound({ proposalId: command.proposalId }))
  const { proposalId } = proposal
  const status = stateOf(state, now)!
  switch (command._tag) {
    case "CastVote": {
      if (status !== "Active") {
        return Effect.fail(
          new OutsideVotingWindow({
            proposalId,
            status,
            voteStart: proposal.voteStart,
            voteEnd: proposal.voteEnd,
            at: now
          })
        )
      }
      // Own keys only: a voter named "constructor" has not voted by inheritance.
      const previous = Object.hasOwn(state.ballots, command.voter) ? state.ballots[command.voter] : undefined
      if (previous !== undefined) {
        return Effect.fail(new AlreadyVoted({ proposalId, voter: command.voter, support: previous.support }))
      }
      if (command.weight <= 0n) {
        return Effect.fail(new NoVotingPower({ proposalId, voter: command.voter, snapshot: proposal.snapshot }))
      }
      return Effect.succeed([
        VoteCast.make({ voter: command.voter, support: command.support, weight: command.weight, at: now })
      ])
    }
    case "Queue":
      if (status === "Succeeded") {
        return Effect.succeed([ProposalQueued.make({ eta: now + proposal.timelockMs, at: now })])
      }
      return Effect.fail(status === "Defeated" ? defeatOf(state, proposal) : unexpected(proposal, "queue", status, now))
    case "Execute":
      switch (status) {
        case "Queued":
          if (now < state.eta!) return Effect.fail(new TimelockNotExpired({ proposalId, eta: state.eta!, at: now }))
          // Another proposal may have moved the value since: the step is measured from the value in force now.
          return Effect.as(validateChange(proposal.parameter, command.currentValue, proposal.value), [
            ProposalExecuted.make({
              proposalId,
              parameter: proposal.parameter,
              value: proposal.value,
              at: now,
              forVotes: state.tally.for,
              againstVotes: state.tally.against,
              abstainVotes: state.tally.abstain,
              quorumRequired: quorumRequired(proposal)
            })
          ])
        case "Executed":
          return Effect.fail(new AlreadyExecuted({ proposalId, executedAt: state.executedAt! }))
        case "Expired":
          return Effect.fail(new ProposalExpired({ proposalId, expiredAt: state.eta! + GRACE_PERIOD_MS }))
        case "Defeated":
          return Effect.fail(defeatOf(state, proposal))
        default:
          return Effect.fail(unexpected(proposal, "execute", status, now))
      }
    case "Cancel":
      if (command.by !== proposal.proposer) {
        return Effect.fail(new NotProposer({ proposalId, proposer: proposal.proposer, by: command.by }))
      }
      if (status !== "Pending") return Effect.fail(unexpected(proposal, "cancel", status, now))
      return Effect.succeed([ProposalCanceled.make({ by: command.by, at: now })])
  }
}

const decide = (command: ProposalCommand, state: ProposalState) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => decideAt(command, state, now))

const evolve = (state: ProposalState, event: ProposalEvent): ProposalState => {
  switch (event._tag) {
    case "ProposalCreated":
      return { ...initialState, proposal: event }
    case "VoteCast":
      return {
        ...state,
        tally: { ...state.tally, [event.support]: state.tally[event.support] + event.weight },
        ballots: { ...state.ballots, [event.voter]: { support: event.support, weight: event.weight, at: event.at } }
      }
    case "ProposalQueued":
      return { ...state, eta: event.eta }
    case "ProposalExecuted":
      return { ...state, executedAt: event.at }
    case "ProposalCanceled":
      return { ...state, canceledAt: event.at }
  }
}

export const Proposal: EventSourced<ProposalCommand, ProposalEvent, ProposalState, ProposalError> = {
  category: "Proposal",
  decider: { initialState, decide, evolve },
  event: ProposalEvent,
  state: ProposalState
}

// What the service shows of a proposal, at a given time.
export const ProposalSummary = Schema.Struct({
  proposalId: Schema.String,
  status: ProposalStatus,
  proposer: Schema.String,
  parameter: ParameterNameSchema,
  owner: ParameterOwner,
  value: Schema.BigInt,
  description: Schema.String,
  createdAt: Schema.Number,
  snapshot: Schema.Number,
  totalStake: Schema.BigInt,
  quorumPpm: Schema.BigInt,
  quorumRequired: Schema.BigInt,
  timelockMs: Schema.Number,
  parametersVersion: Schema.Number,
  voteStart: Schema.Number,
  voteEnd: Schema.Number,
  tally: Tally,
  quorumReached: Schema.Boolean,
  majorityReached: Schema.Boolean,
  eta: Schema.NullOr(Schema.Number),
  /** When a queued proposal stops being executable (eta + grace period). */
  expiresAt: Schema.NullOr(Schema.Number),
  canceledAt: Schema.NullOr(Schema.Number),
  executedAt: Schema.NullOr(Schema.Number)
})
export type ProposalSummary = typeof ProposalSummary.Type

export const VoteView = Schema.Struct({
  voter: Schema.String,
  support: Support,
  weight: Schema.BigInt,
  at: Schema.Number
})
export const HistoryEntry = Schema.Struct({ position: Schema.Number, version: Schema.Number, event: ProposalEvent })
export type HistoryEntry = typeof HistoryEntry.Type

export const ProposalView = Schema.Struct({
  ...ProposalSummary.fields,
  votes: Schema.Array(VoteView),
  /** Every event of the proposal with its place in the log, oldest first. */
  history: Schema.Array(HistoryEntry)
})
export type ProposalView = typeof ProposalView.Type

/** The proposal as it stands at `now`; undefined when it was never created. */
export const summaryOf = (state: ProposalState, now: number): ProposalSummary | undefined => {
  const { proposal } = state
  if (proposal === null) return undefined
  return {
    proposalId: proposal.proposalId,
    status: stateOf(state, now)!,
    proposer: proposal.proposer,
    parameter: proposal.parameter,
    owner: proposal.owner,
    value: proposal.value,
    description: proposal.description,
    createdAt: proposal.at,
    snapshot: proposal.snapshot,
    totalStake: proposal.totalStake,
    quorumPpm: proposal.quorumPpm,
    quorumRequired: quorumRequired(proposal),
    timelockMs: proposal.timelockMs,
    parametersVersion: proposal.parametersVersion,
    voteStart: proposal.voteStart,
    voteEnd: proposal.voteEnd,
    tally: state.tally,
    quorumReached: quorumReached(state),
    majorityReached: majorityReached(state),
    eta: state.eta,
    expiresAt: state.eta === null ? null : state.eta + GRACE_PERIOD_MS,
    canceledAt: state.canceledAt,
    executedAt: state.executedAt
  }
}

/** What a command to a proposal returns: the proposal after it, and where its event landed. */
export const ProposalReceipt = Schema.Struct({
  proposal: ProposalSummary,
  /** Global position of the command's event. */
  position: Schema.Number
})
export type ProposalReceipt = typeof ProposalReceipt.Type
