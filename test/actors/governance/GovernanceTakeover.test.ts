import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { applyExecutedProposal } from "../../../src/actors/governance/GovernancePolicies.js"
import { Governance } from "../../../src/actors/governance/GovernanceService.js"
import { Journal } from "../../../src/events/Journal.js"
import { memoryKernel } from "../../support/Layers.js"
import { TestStakes, testVotingPower } from "./TestStakes.js"

/** Governance with the defaults a node starts with: threshold 100 rUv, a 10 s voting delay, 50% quorum. */
const governanceLayer = () =>
  Governance.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(NetworkParameters.Default, testVotingPower)),
    Layer.provideMerge(memoryKernel())
  )

const headPosition = Effect.flatMap(Journal, (journal) => Effect.map(journal.head, (head) => head.position))

/** Runs the parameter policy's handler over every executed proposal in the log, as the policy would. */
const runParameterPolicy = Effect.gen(function*() {
  const journal = yield* Journal
  for (const envelope of yield* journal.readAll(1, 10_000)) {
    if (envelope.eventType === "ProposalExecuted") yield* applyExecutedProposal(envelope)
  }
})

/** Votes open after the delay and close a minute later; the timelock is 10 s. */
const DELAY = 10_000
const PERIOD = 60_000
const TIMELOCK = 10_000

describe("Governance against a one-caller takeover", () => {
  it.effect("a proposer below the proposal threshold is refused in one line and nothing is written", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      yield* (yield* TestStakes).setStake("mallory", 99n)
      const before = yield* headPosition
      const refused = yield* Effect.flip(
        governance.propose({ proposer: "mallory", parameter: "feeBps", value: 60n, description: "fee up" })
      )
      expect(refused._tag).toBe("ProposalThresholdNotMet")
      expect(refused.message).toBe(
        `insufficient stake to propose: mallory has 99 rUv staked at position ${before}, the proposal threshold is 100`
      )
      expect(yield* headPosition).toBe(before)
      yield* (yield* TestStakes).setStake("mallory", 100n)
      expect(
        (yield* governance.propose({ proposer: "mallory", parameter: "feeBps", value: 60n, description: "fee up" }))
          .proposal.status
      ).toBe("Pending")
    }).pipe(Effect.provide(governanceLayer())))

  it.effect("proposing feeBps=9999 is refused at once, and nothing is written", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      yield* (yield* TestStakes).setStake("mallory", 1_000_000n)
      const before = yield* headPosition
      const refused = yield* Effect.flip(
        governance.propose({ proposer: "mallory", parameter: "feeBps", value: 9_999n, description: "mine" })
      )
      expect(refused.message).toBe("parameter feeBps: must be between 0 and 1000, not 9999")
      const tooFar = yield* Effect.flip(
        governance.propose({ proposer: "mallory", parameter: "feeBps", value: 1_000n, description: "mine" })
      )
      expect(tooFar.message).toBe("parameter feeBps: one proposal may move it from 30 to between 15 and 60, not 1000")
      expect(yield* headPosition).toBe(before)
    }).pipe(Effect.provide(governanceLayer())))

  it.effect("stake acquired after the snapshot, while the vote is pending, does not vote", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const stakes = yield* TestStakes
      yield* stakes.setStake("alice", 100n)
      const { proposal } = yield* governance.propose({
        proposer: "alice",
        parameter: "feeBps",
        value: 60n,
        description: "fee up"
      })
      expect(proposal).toMatchObject({ status: "Pending", voteStart: DELAY, voteEnd: DELAY + PERIOD })
      // During the delay, someone buys a large stake to swing the vote.
      yield* stakes.setStake("mallory", 1_000_000n)
      expect((yield* Effect.flip(governance.vote(proposal.proposalId, "alice", "for")))._tag).toBe(
        "OutsideVotingWindow"
      )
      yield* TestClock.adjust(DELAY)
      const late = yield* Effect.flip(governance.vote(proposal.proposalId, "mallory", "against"))
      expect(late.message).toBe(
        `mallory had no stake at position ${proposal.snapshot}, the snapshot of proposal ${proposal.proposalId}: no vote to cast`
      )
      expect((yield* governance.vote(proposal.proposalId, "alice", "for")).proposal.tally).toEqual({
        for: 100n,
        against: 0n,
        abstain: 0n
      })
    }).pipe(Effect.provide(governanceLayer())))

  it.effect("quorum is measured against the total active stake at the snapshot, not against who shows up or stakes later", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const stakes = yield* TestStakes
      yield* stakes.setStake("alice", 100n)
      yield* stakes.setStake("bob", 300n)
      const { proposal } = yield* governance.propose({
        proposer: "alice",
        parameter: "feeBps",
        value: 60n,
        description: "fee up"
      })
      expect(proposal).toMatchObject({ totalStake: 400n, quorumRequired: 200n })
      // Bob leaves after the snapshot: the quorum still counts his stake there.
      yield* stakes.setStake("bob", 0n)
      yield* TestClock.adjust(DELAY)
      yield* governance.vote(proposal.proposalId, "alice", "for")
      yield* TestClock.adjust(PERIOD)
      const defeated = yield* Effect.flip(governance.queue(proposal.proposalId))
      expect(defeated.message).toBe(
        `proposal ${proposal.proposalId} was defeated: no quorum (100 rUv of stake voted for or abstained, 200 required)`
      )
    }).pipe(Effect.provide(governanceLayer())))

  it.effect("execution re-checks the step against the value in force: two passed proposals cannot compound past it", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const parameters = yield* NetworkParameters
      yield* (yield* TestStakes).setStake("alice", 100n)
      const up =
        (yield* governance.propose({ proposer: "alice", parameter: "feeBps", value: 60n, description: "fee up" }))
          .proposal
      const down =
        (yield* governance.propose({ proposer: "alice", parameter: "feeBps", value: 15n, description: "fee down" }))
          .proposal
      yield* TestClock.adjust(DELAY)
      yield* governance.vote(up.proposalId, "alice", "for")
      yield* governance.vote(down.proposalId, "alice", "for")
      yield* TestClock.adjust(PERIOD)
      yield* governance.queue(up.proposalId)
      yield* governance.queue(down.proposalId)
      yield* TestClock.adjust(TIMELOCK)
      yield* governance.execute(up.proposalId)
      yield* runParameterPolicy
      expect((yield* parameters.current("market")).values["feeBps"]).toBe(60n)
      const refused = yield* Effect.flip(governance.execute(down.proposalId))
      expect(refused.message).toBe("parameter feeBps: one proposal may move it from 60 to between 30 and 120, not 15")
      expect((yield* governance.show(down.proposalId)).status).toBe("Queued")
      // The owner refuses such a change even when it reaches it by another path.
      const owner = yield* Effect.flip(parameters.set("feeBps", 15n, { proposalId: down.proposalId }))
      expect(owner.message).toBe("parameter feeBps: one proposal may move it from 60 to between 30 and 120, not 15")
    }).pipe(Effect.provide(governanceLayer())))
})
