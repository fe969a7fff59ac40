import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema, TestClock } from "effect"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import {
  applyExecutedProposal,
  parameterChangesPolicy,
  parameterChangesPolicyName
} from "../../../src/actors/governance/GovernancePolicies.js"
import { GovernanceFailure, GovernanceRpcs } from "../../../src/actors/governance/GovernanceRpc.js"
import { GovernanceRpcHandlers } from "../../../src/actors/governance/GovernanceRpcHandlers.js"
import { Governance, proposalIdOf } from "../../../src/actors/governance/GovernanceService.js"
import { ProposalView } from "../../../src/actors/governance/Proposal.js"
import { AccountId } from "../../../src/domain/Money.js"
import { Journal } from "../../../src/events/Journal.js"
import * as Policy from "../../../src/events/Policy.js"
import { replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"
import { acceptUnsigned } from "../../support/Signing.js"
import { TestStakes, testVotingPower } from "./TestStakes.js"

/** Governance on a fresh in-memory kernel, with its parameters service and test stakes beside it. */
export const governanceLayer = () =>
  Governance.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(NetworkParameters.Default, testVotingPower)),
    Layer.provideMerge(memoryKernel())
  )

/** Runs the parameter policy's handler over every executed proposal in the log, as the policy would. */
const runParameterPolicy = Effect.gen(function*() {
  const journal = yield* Journal
  for (const envelope of yield* journal.readAll(1, 10_000)) {
    if (envelope.eventType === "ProposalExecuted") yield* applyExecutedProposal(envelope)
  }
})

const MINUTE = 60_000

/** Test settings as a test network's genesis gives them: votes open at once, and any staker may propose. */
const openAtOnce = Effect.flatMap(
  NetworkParameters,
  (parameters) => Effect.zipRight(parameters.set("votingDelayMs", 0n), parameters.set("proposalThresholdRuv", 1n))
)

describe("Governance service", () => {
  it.effect("a proposal to change feeBps passes, waits out the timelock, and the market's fee changes", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const stakes = yield* TestStakes
      const parameters = yield* NetworkParameters
      yield* openAtOnce
      yield* stakes.setStake("alice", 60n)
      yield* stakes.setStake("bob", 30n)
      yield* stakes.setStake("carol", 10n)
      const head = (yield* (yield* Journal).head).position

      const proposed = yield* governance.propose({
        proposer: "alice",
        parameter: "feeBps",
        value: 50n,
        description: "raise the AMM fee to 0.5%"
      })
      const id = proposalIdOf("feeBps", 50n, "raise the AMM fee to 0.5%")
      expect(proposed.proposal).toMatchObject({
        proposalId: id,
        status: "Active",
        snapshot: head,
        totalStake: 100n,
        quorumPpm: 500_000n,
        quorumRequired: 50n,
        timelockMs: 10_000,
        voteStart: 0,
        voteEnd: MINUTE,
        parametersVersion: 2
      })
      // Stake that arrives after the snapshot weighs nothing in this proposal.
      yield* stakes.setStake("carol", 1_000n)
      yield* governance.vote(id, "alice", "for")
      yield* governance.vote(id, "bob", "against")
      const last = yield* governance.vote(id, "carol", "abstain")
      expect(last.proposal.tally).toEqual({ for: 60n, against: 30n, abstain: 10n })

      expect((yield* Effect.flip(governance.execute(id))).message).toBe(
        `cannot execute proposal ${id}: it is Active (voting ends at 1970-01-01T00:01:00.000Z)`
      )
      yield* TestClock.adjust(MINUTE)
      expect((yield* governance.show(id)).status).toBe("Succeeded")
      const queued = yield* governance.queue(id)
      expect(queued.proposal).toMatchObject({ status: "Queued", eta: MINUTE + 10_000 })
      expect((yield* Effect.flip(governance.execute(id)))._tag).toBe("TimelockNotExpired")
      yield* TestClock.adjust(10_000)
      const executed = yield* governance.execute(id)
      expect(executed.proposal.status).toBe("Executed")
      expect((yield* Effect.flip(governance.execute(id)))._tag).toBe("AlreadyExecuted")

      // The owner applies the change only when the policy delivers it; redelivery changes nothing more.
      expect((yield* parameters.current("market")).values["feeBps"]).toBe(30n)
      yield* runParameterPolicy
      yield* runParameterPolicy
      const market = yield* parameters.current("market")
      expect(market.values["feeBps"]).toBe(50n)
      expect(market.version).toBe(1)
      const changed = (yield* (yield* Journal).readStream("Parameters-market")).map((envelope) => envelope.payload)
      expect(changed).toEqual([{ _tag: "ParameterChanged", name: "feeBps", from: "30", to: "50", proposalId: id }])

      const shown = yield* governance.show(id)
      expect(shown.history.map((entry) => entry.event._tag)).toEqual([
        "ProposalCreated",
        "VoteCast",
        "VoteCast",
        "VoteCast",
        "ProposalQueued",
        "ProposalExecuted"
      ])
      expect(shown.votes.map((v) => [v.voter, v.support, v.weight])).toEqual([["alice", "for", 60n], [
        "bob",
        "against",
        30n
      ], ["carol", "abstain", 10n]])
      // What the RPC contract sends survives encoding.
      expect(Schema.decodeUnknownSync(ProposalView)(Schema.encodeSync(ProposalView)(shown))).toEqual(shown)
    }).pipe(Effect.provide(governanceLayer())))

  it.effect("stake decides who proposes and how much a vote weighs; votes are cast once", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const stakes = yield* TestStakes
      yield* openAtOnce
      const refused = yield* Effect.flip(
        governance.propose({ proposer: "nobody", parameter: "feeBps", value: 40n, description: "lower it" })
      )
      expect(refused.message).toBe(
        "insufficient stake to propose: nobody has 0 rUv staked at position 2, the proposal threshold is 1"
      )
      expect(Schema.decodeUnknownSync(GovernanceFailure)(Schema.encodeSync(GovernanceFailure)(refused))).toEqual(
        refused
      )
      yield* stakes.setStake("alice", 10n)
      const { proposal } = yield* governance.propose({
        proposer: "alice",
        parameter: "minStake",
        value: 200n,
        description: "more skin"
      })
      yield* stakes.setStake("late", 500n)
      expect((yield* Effect.flip(governance.vote(proposal.proposalId, "late", "for")))._tag).toBe("NoVotingPower")
      expect((yield* governance.vote(proposal.proposalId, "alice", "for")).proposal.tally.for).toBe(10n)
      // Sent again, the same vote or another, it is refused and counted once.
      expect((yield* Effect.flip(governance.vote(proposal.proposalId, "alice", "for"))).message).toBe(
        `alice already voted for on proposal ${proposal.proposalId}: a vote is cast once`
      )
      expect((yield* Effect.flip(governance.vote(proposal.proposalId, "alice", "against")))._tag).toBe("AlreadyVoted")
      expect((yield* governance.show(proposal.proposalId)).tally.for).toBe(10n)
      expect((yield* Effect.flip(governance.vote("nope", "alice", "for")))._tag).toBe("ProposalNotFound")
      expect((yield* Effect.flip(governance.show("nope"))).message).toBe("no proposal nope")
    }).pipe(Effect.provide(governanceLayer())))

  it.effect("the governance parameters in force are recorded; a Pending proposal is canceled by its proposer; list filters by state", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const stakes = yield* TestStakes
      const parameters = yield* NetworkParameters
      yield* openAtOnce
      yield* parameters.set("votingDelayMs", 5_000n)
      yield* parameters.set("quorumPpm", 250_000n)
      yield* stakes.setStake("alice", 10n)
      const first = (yield* governance.propose({
        proposer: "alice",
        parameter: "feeBps",
        value: 25n,
        description: "cheaper swaps"
      })).proposal
      expect(first).toMatchObject({
        status: "Pending",
        voteStart: 5_000,
        voteEnd: 65_000,
        quorumPpm: 250_000n,
        parametersVersion: 4
      })
      expect((yield* Effect.flip(governance.vote(first.proposalId, "alice", "for")))._tag).toBe("OutsideVotingWindow")
      expect((yield* Effect.flip(governance.cancel(first.proposalId, "bob")))._tag).toBe("NotProposer")
      expect((yield* governance.cancel(first.proposalId, "alice")).proposal.status).toBe("Canceled")
      yield* TestClock.adjust(1_000)
      const second =
        (yield* governance.propose({ proposer: "alice", parameter: "feeBps", value: 20n, description: "even cheaper" }))
          .proposal
      expect(
        (yield* Effect.flip(
          governance.propose({
            proposer: "alice",
            parameter: "feeBps",
            value: 20n,
            description: "even cheaper",
            proposalId: "x y"
          })
        ))._tag
      )
        .toBe("InvalidProposal")
      expect(
        (yield* Effect.flip(
          governance.propose({ proposer: "alice", parameter: "bidDepositRuv", value: -1n, description: "pay me" })
        ))._tag
      )
        .toBe("InvalidParameter")
      expect((yield* governance.list()).map((p) => p.proposalId)).toEqual([second.proposalId, first.proposalId])
      expect((yield* governance.list({ status: "Canceled" })).map((p) => p.proposalId)).toEqual([first.proposalId])
      yield* TestClock.adjust(5_000)
      expect((yield* governance.list({ status: "Active" })).map((p) => p.proposalId)).toEqual([second.proposalId])
      // Replaying the log gives the same proposals the live actors hold.
      expect(yield* replayMismatches("Proposal")).toEqual([])
    }).pipe(Effect.provide(governanceLayer())))

  it.live("as a background policy, an executed proposal reaches the parameter's owner", () =>
    Effect.gen(function*() {
      const governance = yield* Governance
      const parameters = yield* NetworkParameters
      yield* (yield* TestStakes).setStake("alice", 10n)
      yield* openAtOnce
      yield* parameters.set("votingPeriodMs", 40n)
      yield* parameters.set("timelockMs", 10n)
      const { proposal } = yield* governance.propose({
        proposer: "alice",
        parameter: "feeBps",
        value: 45n,
        description: "live"
      })
      yield* governance.vote(proposal.proposalId, "alice", "for")
      yield* Effect.sleep("50 millis")
      yield* governance.queue(proposal.proposalId)
      yield* Effect.sleep("15 millis")
      yield* governance.execute(proposal.proposalId)
      yield* Policy.awaitCaughtUp(parameterChangesPolicyName).pipe(
        Effect.provide(parameterChangesPolicy),
        Effect.scoped
      )
      expect((yield* parameters.current("market")).values["feeBps"]).toBe(45n)
    }).pipe(Effect.provide(governanceLayer())))

  it.scoped("the RPC contract carries every command, its refusals and the views", () =>
    Effect.gen(function*() {
      const client = yield* RpcTest.makeClient(GovernanceRpcs)
      yield* openAtOnce
      yield* (yield* TestStakes).setStake("alice", 10n)
      const { proposal } = yield* client.GovernancePropose({
        proposer: asAccount("alice"),
        parameter: "feeBps",
        value: 35n,
        description: "over rpc"
      })
      yield* client.GovernanceVote({ proposalId: proposal.proposalId, voter: asAccount("alice"), support: "for" })
      const twice = yield* Effect.flip(
        client.GovernanceVote({ proposalId: proposal.proposalId, voter: asAccount("alice"), support: "against" })
      )
      expect(twice._tag).toBe("AlreadyVoted")
      expect((yield* Effect.flip(client.GovernanceQueue({ proposalId: proposal.proposalId })))._tag).toBe(
        "UnexpectedProposalState"
      )
      yield* TestClock.adjust(MINUTE)
      yield* client.GovernanceQueue({ proposalId: proposal.proposalId })
      yield* TestClock.adjust(10_000)
      expect((yield* client.GovernanceExecute({ proposalId: proposal.proposalId })).proposal.status).toBe("Executed")
      expect((yield* client.GovernanceShow({ proposalId: proposal.proposalId })).history).toHaveLength(4)
      expect((yield* client.GovernanceList({ status: "Executed" })).map((p) => p.proposalId)).toEqual([
        proposal.proposalId
      ])
      expect(
        (yield* Effect.flip(client.GovernanceCancel({ proposalId: proposal.proposalId, by: asAccount("alice") })))._tag
      ).toBe("UnexpectedProposalState")
    }).pipe(
      Effect.provide(Layer.merge(GovernanceRpcHandlers, acceptUnsigned).pipe(Layer.provideMerge(governanceLayer())))
    ))
})

const asAccount = (id: string) => Schema.decodeSync(AccountId)(id)
