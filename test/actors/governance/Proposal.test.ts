import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, TestClock } from "effect"
import type { ParameterName } from "../../../src/actors/economy/ParameterCatalogue.js"
import type { ProposalCommand, ProposalEvent, Support } from "../../../src/actors/governance/Proposal.js"
import {
  GRACE_PERIOD_MS,
  Proposal,
  ProposalCanceled,
  ProposalCreated,
  ProposalExecuted,
  ProposalQueued,
  quorumRequired,
  stateOf,
  VoteCast
} from "../../../src/actors/governance/Proposal.js"
import type { ProposalError } from "../../../src/actors/governance/ProposalErrors.js"
import { fold } from "../../../src/events/Decider.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"

const spec = DeciderSpecification.for(Proposal.decider)
const settings = {
  quorumPpm: 500_000n,
  proposalThresholdRuv: 20n,
  votingDelayMs: 100n,
  votingPeriodMs: 1_000n,
  timelockMs: 500n,
  version: 2
}
const propose: ProposalCommand = {
  _tag: "Propose",
  proposalId: "p1",
  proposer: "alice",
  parameter: "feeBps",
  value: 50n,
  description: "raise the AMM fee to 0.5%",
  snapshot: 7,
  totalStake: 100n,
  proposerStake: 40n,
  currentValue: 30n,
  settings
}
// Proposed at 1000: Pending until 1100, Active in [1100, 2100), then decided; eta = queue time + 500.
const created = ProposalCreated.make({
  proposalId: "p1",
  proposer: "alice",
  parameter: "feeBps",
  owner: "market",
  value: 50n,
  description: "raise the AMM fee to 0.5%",
  at: 1000,
  snapshot: 7,
  totalStake: 100n,
  voteStart: 1100,
  voteEnd: 2100,
  quorumPpm: 500_000n,
  votingDelayMs: 100,
  votingPeriodMs: 1000,
  timelockMs: 500,
  parametersVersion: 2
})
const voted = (voter: string, support: Support, weight: bigint, at = 1200) =>
  VoteCast.make({ voter, support, weight, at })
const passed = [created, voted("alice", "for", 40n), voted("bob", "abstain", 20n), voted("carol", "against", 30n)]
const queued = ProposalQueued.make({ eta: 2700, at: 2200 })

const at = (millis: number) => TestClock.setTime(millis)
const vote = (voter: string, support: Support, weight: bigint): ProposalCommand => ({
  _tag: "CastVote",
  proposalId: "p1",
  voter,
  support,
  weight
})
const queue: ProposalCommand = { _tag: "Queue", proposalId: "p1" }
const execute: ProposalCommand = { _tag: "Execute", proposalId: "p1", currentValue: 30n }
const cancel = (by: string): ProposalCommand => ({ _tag: "Cancel", proposalId: "p1", by })
const failsWith = (tag: ProposalError["_tag"], message?: string) => (error: ProposalError) =>
  error._tag === tag && (message === undefined || error.message === message)
const statusAt = (events: ReadonlyArray<ProposalEvent>, now: number) =>
  stateOf(fold(Proposal.decider.evolve, Proposal.decider.initialState, events), now)

describe("Proposal decider", () => {
  it.effect("a proposal records the change, its snapshot and the governance parameters in force", () =>
    Effect.gen(function*() {
      yield* at(1000)
      yield* spec.given([]).when(propose).then([created])
      yield* spec.given([created]).when(propose).thenFails(failsWith("ProposalExists"))
    }))

  it.effect("the proposed value is checked as the parameter's owner would check it", () =>
    Effect.gen(function*() {
      yield* spec.given([]).when({ ...propose, value: 10_000n }).thenFails(
        failsWith("InvalidParameter", "parameter feeBps: must be between 0 and 1000, not 10000")
      )
      yield* spec.given([]).when({ ...propose, parameter: "quorumPpm", value: 1_000_001n, currentValue: 500_000n })
        .thenFails(failsWith("InvalidParameter"))
      yield* spec.given([]).when({ ...propose, description: "  " }).thenFails(
        failsWith("InvalidProposal", "proposal p1: a description is required")
      )
    }))

  it.effect("the lifecycle follows OpenZeppelin's state(): Pending, Active, then Defeated or Succeeded, Queued, Executed or Expired", () =>
    Effect.sync(() => {
      expect(statusAt([created], 1099)).toBe("Pending")
      expect(statusAt([created], 1100)).toBe("Active")
      expect(statusAt([created], 2099)).toBe("Active")
      expect(statusAt([created], 2100)).toBe("Defeated")
      expect(statusAt(passed, 2100)).toBe("Succeeded")
      expect(statusAt([...passed, queued], 2700)).toBe("Queued")
      expect(statusAt([...passed, queued], 2700 + GRACE_PERIOD_MS)).toBe("Expired")
      expect(statusAt([...passed, queued, ProposalExecuted.make({ ...executedFields, at: 2700 })], 1e12)).toBe(
        "Executed"
      )
      expect(statusAt([created, ProposalCanceled.make({ by: "alice", at: 1050 })], 1200)).toBe("Canceled")
      expect(statusAt([], 0)).toBeUndefined()
    }))

  it.effect("a vote is cast only while Active, once per voter, with the stake it weighs", () =>
    Effect.gen(function*() {
      yield* at(1050)
      yield* spec.given([created]).when(vote("alice", "for", 40n)).thenFails(
        failsWith("OutsideVotingWindow", "voting on proposal p1 opens at 1970-01-01T00:00:01.100Z (in 50 ms)")
      )
      yield* at(1100)
      yield* spec.given([created]).when(vote("alice", "for", 40n)).then([voted("alice", "for", 40n, 1100)])
      yield* spec.given([created, voted("alice", "for", 40n)]).when(vote("alice", "against", 40n)).thenFails(
        failsWith("AlreadyVoted", "alice already voted for on proposal p1: a vote is cast once")
      )
      yield* spec.given([created]).when(vote("constructor", "for", 5n)).then([voted("constructor", "for", 5n, 1100)])
      yield* spec.given([created]).when(vote("dave", "for", 0n)).thenFails(
        failsWith("NoVotingPower", "dave had no stake at position 7, the snapshot of proposal p1: no vote to cast")
      )
      yield* at(2100)
      yield* spec.given([created]).when(vote("alice", "for", 40n)).thenFails(failsWith("OutsideVotingWindow"))
      yield* spec.given([]).when(vote("alice", "for", 40n)).thenFails(failsWith("ProposalNotFound", "no proposal p1"))
    }))

  it.effect("quorum is quorumPpm of the snapshot's stake, rounded up; abstentions count toward it, not toward the majority", () =>
    Effect.gen(function*() {
      expect(quorumRequired({ ...created, totalStake: 101n })).toBe(51n)
      expect(quorumRequired({ ...created, quorumPpm: 0n })).toBe(0n)
      yield* at(2100)
      // 10 for + 39 abstain = 49 < 50: no quorum.
      yield* spec.given([created, voted("a", "for", 10n), voted("b", "abstain", 39n)]).when(queue).thenFails(
        failsWith(
          "QuorumNotReached",
          "proposal p1 was defeated: no quorum (49 rUv of stake voted for or abstained, 50 required)"
        )
      )
      // 10 for + 40 abstain reaches quorum, and 10 for > 0 against carries it.
      yield* spec.given([created, voted("a", "for", 10n), voted("b", "abstain", 40n)]).when(queue).then([
        ProposalQueued.make({ eta: 2600, at: 2100 })
      ])
      // Votes against do not count toward quorum (GovernorCountingSimple): 60 against, 0 for, is no quorum.
      yield* spec.given([created, voted("a", "against", 60n)]).when(queue).thenFails(failsWith("QuorumNotReached"))
      // Quorum without majority: a tie is a defeat.
      yield* spec.given([created, voted("a", "for", 30n), voted("b", "abstain", 20n), voted("c", "against", 30n)]).when(
        queue
      ).thenFails(
        failsWith("MajorityNotReached", "proposal p1 was defeated: no majority (30 rUv for, 30 against)")
      )
    }))

  it.effect("queueing needs a succeeded proposal, and sets the eta timelockMs ahead", () =>
    Effect.gen(function*() {
      yield* at(1500)
      yield* spec.given(passed).when(queue).thenFails(
        failsWith(
          "UnexpectedProposalState",
          "cannot queue proposal p1: it is Active (voting ends at 1970-01-01T00:00:02.100Z)"
        )
      )
      yield* at(2200)
      yield* spec.given(passed).when(queue).then([queued])
      yield* spec.given([...passed, queued]).when(queue).thenFails(
        failsWith("UnexpectedProposalState", "cannot queue proposal p1: it is Queued")
      )
    }))

  it.effect("execution waits for the timelock, happens once, and not after the grace period", () =>
    Effect.gen(function*() {
      yield* at(2200)
      yield* spec.given(passed).when(execute).thenFails(
        failsWith("UnexpectedProposalState", "cannot execute proposal p1: it is Succeeded (queue it first)")
      )
      yield* at(2699)
      yield* spec.given([...passed, queued]).when(execute).thenFails(
        failsWith("TimelockNotExpired", "proposal p1 is timelocked until 1970-01-01T00:00:02.700Z (1 ms left)")
      )
      yield* at(2700)
      const executed = ProposalExecuted.make({ ...executedFields, at: 2700 })
      yield* spec.given([...passed, queued]).when(execute).then([executed])
      yield* at(3000)
      yield* spec.given([...passed, queued, executed]).when(execute).thenFails(
        failsWith("AlreadyExecuted", "proposal p1 was already executed at 1970-01-01T00:00:02.700Z")
      )
      yield* at(2700 + GRACE_PERIOD_MS)
      yield* spec.given([...passed, queued]).when(execute).thenFails(failsWith("ProposalExpired"))
    }))

  it.effect("a defeated proposal is neither queued nor executed, and the refusal says why", () =>
    Effect.gen(function*() {
      yield* at(5000)
      yield* spec.given([created]).when(execute).thenFails(failsWith("QuorumNotReached"))
      const outvoted = [created, voted("a", "for", 20n), voted("b", "abstain", 30n), voted("c", "against", 40n)]
      yield* spec.given(outvoted).when(execute).thenFails(failsWith("MajorityNotReached"))
      yield* spec.given(outvoted).when(queue).thenFails(failsWith("MajorityNotReached"))
    }))

  it.effect("the proposer cancels while Pending; nobody else, and not later", () =>
    Effect.gen(function*() {
      yield* at(1050)
      const canceled = ProposalCanceled.make({ by: "alice", at: 1050 })
      yield* spec.given([created]).when(cancel("alice")).then([canceled])
      yield* spec.given([created]).when(cancel("mallory")).thenFails(
        failsWith("NotProposer", "only the proposer alice can cancel proposal p1, not mallory")
      )
      yield* at(1100)
      yield* spec.given([created]).when(cancel("alice")).thenFails(failsWith("UnexpectedProposalState"))
      yield* spec.given([created, canceled]).when(vote("bob", "for", 5n)).thenFails(
        failsWith("OutsideVotingWindow", "proposal p1 was canceled: no more votes")
      )
      yield* spec.given([created, canceled]).when(queue).thenFails(
        failsWith("UnexpectedProposalState", "cannot queue proposal p1: it is Canceled")
      )
    }))
})

const executedFields = {
  proposalId: "p1",
  parameter: "feeBps",
  value: 50n,
  forVotes: 40n,
  againstVotes: 30n,
  abstainVotes: 20n,
  quorumRequired: 50n
} as const

describe("Proposal decider against a one-caller takeover", () => {
  it.effect("the proposer's stake at the snapshot must reach the proposal threshold; below it nothing is recorded", () =>
    Effect.gen(function*() {
      yield* at(1000)
      yield* spec.given([]).when({ ...propose, proposerStake: 19n }).thenFails(
        failsWith(
          "ProposalThresholdNotMet",
          "insufficient stake to propose: alice has 19 rUv staked at position 7, the proposal threshold is 20"
        )
      )
      yield* spec.given([]).when({ ...propose, proposerStake: 20n }).then([created])
      // A threshold of 0 in force still asks for some stake.
      yield* spec.given([]).when({ ...propose, proposerStake: 0n, settings: { ...settings, proposalThresholdRuv: 0n } })
        .thenFails(
          failsWith(
            "ProposalThresholdNotMet",
            "insufficient stake to propose: alice has 0 rUv staked at position 7, the proposal threshold is 1"
          )
        )
    }))

  it.effect("feeBps=9999 is refused when proposed, in one line", () =>
    Effect.gen(function*() {
      yield* at(1000)
      yield* spec.given([]).when({ ...propose, value: 9_999n }).thenFails(
        failsWith("InvalidParameter", "parameter feeBps: must be between 0 and 1000, not 9999")
      )
    }))

  it.effect("each parameter keeps to its range: quorum 10% to 100%, ppm rates at most 1,000,000, durations bounded", () =>
    Effect.gen(function*() {
      yield* at(1000)
      const proposing = (parameter: ParameterName, value: bigint, currentValue: bigint) =>
        spec.given([]).when({ ...propose, parameter, value, currentValue })
      yield* proposing("quorumPpm", 99_999n, 150_000n).thenFails(
        failsWith("InvalidParameter", "parameter quorumPpm: must be between 100000 and 1000000, not 99999")
      )
      yield* proposing("slashEquivocationPpm", 1_000_001n, 600_000n).thenFails(failsWith("InvalidParameter"))
      yield* proposing("votingPeriodMs", 0n, 10n).thenFails(
        failsWith("InvalidParameter", "parameter votingPeriodMs: must be between 10 and 2592000000, not 0")
      )
      yield* proposing("timelockMs", 40n * 86_400_000n, 30n * 86_400_000n).thenFails(failsWith("InvalidParameter"))
    }))

  it.effect("one proposal at most doubles or halves a value; from 0 it rises at most to the default", () =>
    Effect.gen(function*() {
      yield* at(1000)
      const move = (value: bigint, currentValue: bigint) =>
        spec.given([]).when({ ...propose, value, currentValue }).outcome
      yield* spec.given([]).when({ ...propose, value: 61n }).thenFails(
        failsWith("InvalidParameter", "parameter feeBps: one proposal may move it from 30 to between 15 and 60, not 61")
      )
      yield* spec.given([]).when({ ...propose, value: 14n }).thenFails(failsWith("InvalidParameter"))
      expect(Either.isRight(yield* move(60n, 30n))).toBe(true)
      expect(Either.isRight(yield* move(15n, 30n))).toBe(true)
      expect(Either.isRight(yield* move(0n, 1n))).toBe(true)
      expect(Either.isRight(yield* move(30n, 0n))).toBe(true)
      yield* spec.given([]).when({ ...propose, value: 31n, currentValue: 0n }).thenFails(
        failsWith("InvalidParameter", "parameter feeBps: one proposal may move it from 0 to between 0 and 30, not 31")
      )
    }))

  it.effect("execution checks the change again against the value in force then", () =>
    Effect.gen(function*() {
      yield* at(2700)
      // Another proposal halved the fee to 15 meanwhile: 15 -> 50 is more than double, so this one cannot run.
      yield* spec.given([...passed, queued]).when({ ...execute, currentValue: 15n }).thenFails(
        failsWith("InvalidParameter", "parameter feeBps: one proposal may move it from 15 to between 7 and 30, not 50")
      )
      yield* spec.given([...passed, queued]).when({ ...execute, currentValue: 25n }).then([
        ProposalExecuted.make({ ...executedFields, at: 2700 })
      ])
    }))
})
