/**
 * The governance service: stakers propose parameter changes, vote with their stake at the proposal's
 * snapshot, queue what passed and execute it after the timelock; shows proposals and lists them.
 */
import { Clock, Effect, Schema } from "effect"
import * as crypto from "node:crypto"
import { canonicalize } from "../../domain/CanonicalJson.js"
import { makeStreamId, streamEntityId } from "../../domain/Ids.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { CommandResult } from "../../events/ActorRunner.js"
import { Journal } from "../../events/Journal.js"
import { makeProjection } from "../../events/Projection.js"
import { NetworkParameters } from "../economy/NetworkParameters.js"
import type { ParameterName } from "../economy/ParameterCatalogue.js"
import { PARAMETERS } from "../economy/ParameterCatalogue.js"
import type {
  HistoryEntry,
  ProposalCommand,
  ProposalEvent,
  ProposalReceipt,
  ProposalState,
  ProposalStatus,
  ProposalSummary,
  ProposalView,
  Support
} from "./Proposal.js"
import { Proposal, ProposalEvent as ProposalEventSchema, ProposalId, summaryOf } from "./Proposal.js"
import { InvalidProposal, ProposalNotFound } from "./ProposalErrors.js"
import { VotingPower } from "./VotingPower.js"

export interface ProposeInput {
  readonly proposer: string
  readonly parameter: ParameterName
  readonly value: bigint
  readonly description: string
  /** By default the digest of the change and its description, as OpenZeppelin's hashProposal. */
  readonly proposalId?: string | undefined
}

export interface ListFilter {
  readonly status?: ProposalStatus | undefined
}

/** The same change with the same description always gets the same id (32 hex characters). */
export const proposalIdOf = (parameter: ParameterName, value: bigint, description: string): string =>
  crypto.hash(
    "sha256",
    canonicalize({ type: "edge-net/proposal/v1", parameter, value: value.toString(), description }),
    "hex"
  ).slice(0, 32)

const PAGE = 4096
const decodeEvent = Schema.decodeUnknownSync(ProposalEventSchema)
const isProposalId = Schema.is(ProposalId)

export class Governance extends Effect.Service<Governance>()("edge-net/Governance", {
  effect: Effect.gen(function*() {
    const proposals = yield* ActorRunner.make(Proposal, { snapshotEvery: 100 })
    const journal = yield* Journal
    const parameters = yield* NetworkParameters
    const power = yield* VotingPower

    const receiptOf = (proposalId: string, result: CommandResult<ProposalEvent, ProposalState>) =>
      Effect.map(Clock.currentTimeMillis, (now): ProposalReceipt => {
        const proposal = summaryOf(result.state, now)
        if (proposal === undefined) {
          throw new Error(`proposal ${proposalId} has no ProposalCreated event after a command succeeded`)
        }
        return { proposal, position: result.position }
      })

    /**
     * Sends a command under its id (recorded in the envelope for audit). Each transition of a proposal
     * happens once, so a command sent again, a retry included, is answered as the decider answers it
     * now: voting twice or executing twice is refused, not silently accepted.
     */
    const send = (proposalId: string, command: ProposalCommand, commandId: string) =>
      Effect.flatMap(proposals.send(proposalId, command, { commandId }), (result) =>
        result.duplicate
          ? Effect.flatMap(Proposal.decider.decide(command, result.state), () => receiptOf(proposalId, result))
          : receiptOf(proposalId, result))

    const created = (proposalId: string) =>
      Effect.flatMap(
        proposals.state(proposalId),
        ({ state }) =>
          state.proposal === null ? Effect.fail(new ProposalNotFound({ proposalId })) : Effect.succeed(state.proposal)
      )

    /** The parameter's value in force, against which a proposal's step is bounded. */
    const valueInForce = (name: ParameterName) =>
      Effect.map(
        parameters.current(PARAMETERS[name].owner),
        (current) => current.values[name] ?? PARAMETERS[name].default
      )

    /**
     * Records a proposal: the journal's head becomes its snapshot, and the proposer's stake there must
     * reach the proposal threshold; the change must stay in the parameter's range and step.
     */
    const propose = Effect.fn("Governance.propose")(function*(input: ProposeInput) {
      const proposalId = input.proposalId ?? proposalIdOf(input.parameter, input.value, input.description)
      if (!isProposalId(proposalId)) {
        return yield* Effect.fail(
          new InvalidProposal({ proposalId, reason: "an id is 1-128 letters, digits or _ . : @ -" })
        )
      }
      const snapshot = (yield* journal.head).position
      const totalStake = yield* power.totalStakeAt(snapshot)
      const proposerStake = yield* power.stakeAt(input.proposer, snapshot)
      const currentValue = yield* valueInForce(input.parameter)
      const governance = yield* parameters.current("governance")
      const valueOf = (
        name: "quorumPpm" | "proposalThresholdRuv" | "votingDelayMs" | "votingPeriodMs" | "timelockMs"
      ) => governance.values[name] ?? PARAMETERS[name].default
      return yield* send(proposalId, {
        _tag: "Propose",
        proposalId,
        proposer: input.proposer,
        parameter: input.parameter,
        value: input.value,
        description: input.description,
        snapshot,
        totalStake,
        proposerStake,
        currentValue,
        settings: {
          quorumPpm: valueOf("quorumPpm"),
          proposalThresholdRuv: valueOf("proposalThresholdRuv"),
          votingDelayMs: valueOf("votingDelayMs"),
          votingPeriodMs: valueOf("votingPeriodMs"),
          timelockMs: valueOf("timelockMs"),
          version: governance.version
        }
      }, `propose/${proposalId}/${input.proposer}`)
    })

    /** Casts the voter's stake at the snapshot, once. */
    const vote = Effect.fn("Governance.vote")(function*(proposalId: string, voter: string, support: Support) {
      const proposal = yield* created(proposalId)
      const weight = yield* power.stakeAt(voter, proposal.snapshot)
      return yield* send(
        proposalId,
        { _tag: "CastVote", proposalId, voter, support, weight },
        `vote/${proposalId}/${voter}`
      )
    })

    const queue = Effect.fn("Governance.queue")(function*(proposalId: string) {
      return yield* send(proposalId, { _tag: "Queue", proposalId }, `queue/${proposalId}`)
    })

    /** Records the execution, the change checked again against the value in force; the `governance.parameter-changes` policy applies it. */
    const execute = Effect.fn("Governance.execute")(function*(proposalId: string) {
      const proposal = yield* created(proposalId)
      const currentValue = yield* valueInForce(proposal.parameter)
      return yield* send(proposalId, { _tag: "Execute", proposalId, currentValue }, `execute/${proposalId}`)
    })

    const cancel = Effect.fn("Governance.cancel")(function*(proposalId: string, by: string) {
      return yield* send(proposalId, { _tag: "Cancel", proposalId, by }, `cancel/${proposalId}`)
    })

    /** The proposal now, its votes and its history, all folded from one read of its stream. */
    const show = Effect.fn("Governance.show")(function*(proposalId: string) {
      const streamId = makeStreamId(Proposal.category, proposalId)
      const history: Array<HistoryEntry> = []
      let state = Proposal.decider.initialState
      while (true) {
        const page = yield* journal.readStream(streamId, history.length + 1, PAGE)
        for (const envelope of page) {
          const event = decodeEvent(envelope.payload)
          state = Proposal.decider.evolve(state, event)
          history.push({ position: envelope.position, version: envelope.streamVersion, event })
        }
        if (page.length < PAGE) break
      }
      const summary = summaryOf(state, yield* Clock.currentTimeMillis)
      if (summary === undefined) return yield* Effect.fail(new ProposalNotFound({ proposalId }))
      const votes = Object.entries(state.ballots).map(([voter, ballot]) => ({ voter, ...ballot })).sort((left, right) =>
        left.at - right.at
      )
      return { ...summary, votes, history } satisfies ProposalView
    })

    // The listing projection: every proposal's state, folded from the log, caught up on read.
    const states = new Map<string, ProposalState>()
    const { catchUp } = yield* makeProjection([Proposal.category], (record) => {
      const id = streamEntityId(record.streamId)
      states.set(
        id,
        Proposal.decider.evolve(
          states.get(id) ?? Proposal.decider.initialState,
          decodeEvent(JSON.parse(record.payloadText))
        )
      )
    })

    /** Every proposal as it stands now, newest first, optionally only those in one state. */
    const list = Effect.fn("Governance.list")(function*(filter: ListFilter = {}) {
      yield* catchUp
      const now = yield* Clock.currentTimeMillis
      const summaries: Array<ProposalSummary> = []
      for (const state of states.values()) {
        const summary = summaryOf(state, now)
        if (summary !== undefined && (filter.status === undefined || summary.status === filter.status)) {
          summaries.push(summary)
        }
      }
      return summaries.sort((left, right) =>
        right.createdAt - left.createdAt || (left.proposalId < right.proposalId ? -1 : 1)
      )
    })

    return { propose, vote, queue, execute, cancel, show, list } as const
  })
}) {}
