import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, Layer, TestClock, TestContext } from "effect"
import * as fc from "fast-check"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { Governance } from "../../../src/actors/governance/GovernanceService.js"
import type { ProposalCommand, ProposalEvent, ProposalState, Support } from "../../../src/actors/governance/Proposal.js"
import { GRACE_PERIOD_MS, Proposal } from "../../../src/actors/governance/Proposal.js"
import { fold } from "../../../src/events/Decider.js"
import { replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"
import { TestStakes, testVotingPower } from "./TestStakes.js"

const voters = ["v0", "v1", "v2", "v3", "v4"]
const support = fc.constantFrom<Support>("for", "against", "abstain")
const mostlyFor = fc.oneof({ arbitrary: fc.constant<Support>("for"), weight: 3 }, { arbitrary: support, weight: 2 })

const settingsArbitrary = fc.record({
  votingDelayMs: fc.integer({ min: 0, max: 2_000 }),
  votingPeriodMs: fc.integer({ min: 1, max: 3_000 }),
  timelockMs: fc.integer({ min: 0, max: 2_000 }),
  quorumPpm: fc.oneof(fc.bigInt({ min: 0n, max: 400_000n }), fc.bigInt({ min: 0n, max: 1_000_000n })),
  totalStake: fc.bigInt({ min: 1n, max: 300n })
})

/** A small move, or straight to a boundary of the proposal's windows (or one millisecond before it). */
type Advance = { readonly by: number } | {
  readonly to: "voteStart" | "voteEnd" | "eta" | "expiry"
  readonly offset: 0 | -1
}
type Step = { readonly advance: Advance; readonly command: ProposalCommand }
type Settings = typeof settingsArbitrary extends fc.Arbitrary<infer S> ? S : never

const vote = fc.record({
  voter: fc.constantFrom(...voters),
  support,
  weight: fc.oneof({ arbitrary: fc.bigInt({ min: 1n, max: 150n }), weight: 15 }, {
    arbitrary: fc.constant(0n),
    weight: 1
  })
}).map((cast): ProposalCommand => ({ _tag: "CastVote", proposalId: "p", ...cast }))
const queue = fc.constant<ProposalCommand>({ _tag: "Queue", proposalId: "p" })
const execute = fc.constant<ProposalCommand>({ _tag: "Execute", proposalId: "p", currentValue: 30n })
const cancel = fc.constantFrom("v0", "v1").map((by): ProposalCommand => ({ _tag: "Cancel", proposalId: "p", by }))
const commands = (weights: { vote: number; queue: number; execute: number; cancel: number }) =>
  fc.oneof(
    { arbitrary: vote, weight: weights.vote },
    { arbitrary: queue, weight: weights.queue },
    { arbitrary: execute, weight: weights.execute },
    { arbitrary: cancel, weight: weights.cancel }
  )
const by = (span: number) =>
  fc.integer({ min: 0, max: Math.max(1, Math.floor(span)) }).map((millis): Advance => ({ by: millis }))
const to = (boundary: "voteStart" | "voteEnd" | "eta" | "expiry") =>
  fc.constantFrom(0 as const, -1 as const).map((offset): Advance => ({ to: boundary, offset }))
/** A phase: its first step moves to where it starts, the others move a little (any command may come anywhere). */
const phase = (
  first: fc.Arbitrary<Advance>,
  next: fc.Arbitrary<Advance>,
  command: fc.Arbitrary<ProposalCommand>,
  maxLength: number
) =>
  fc.tuple(fc.record({ advance: first, command }), fc.array(fc.record({ advance: next, command }), { maxLength })).map((
    [head, tail]
  ): Array<Step> => [head, ...tail])

/** Before the vote, during it, and after it (across the timelock and the grace period). */
const scriptArbitrary = settingsArbitrary.chain((settings) =>
  fc.tuple(
    fc.constant(settings),
    phase(
      by(settings.votingDelayMs / 2),
      by(settings.votingDelayMs / 4),
      commands({ vote: 3, queue: 2, execute: 2, cancel: 1 }),
      3
    ),
    phase(
      to("voteStart"),
      by(settings.votingPeriodMs / 12),
      commands({ vote: 12, queue: 1, execute: 1, cancel: 1 }),
      15
    ),
    phase(
      to("voteEnd"),
      fc.oneof(by(settings.timelockMs / 3), to("eta"), to("expiry")),
      commands({ vote: 1, queue: 3, execute: 4, cancel: 1 }),
      10
    )
  ).map(([settings, before, during, after]): [Settings, Array<Step>] => [settings, [...before, ...during, ...after]])
)

/** The rules as the design states them, kept apart from the decider: which refusal a command must meet, if any. */
const expectedRefusal = (
  model: {
    votes: Map<string, Support>
    for: bigint
    against: bigint
    abstain: bigint
    eta: number | null
    executed: boolean
    canceled: boolean
  },
  settings: Settings,
  command: ProposalCommand,
  now: number
): string | undefined => {
  const voteStart = settings.votingDelayMs
  const voteEnd = voteStart + settings.votingPeriodMs
  const quorum = (model.for + model.abstain) * 1_000_000n >= settings.quorumPpm * settings.totalStake
  const majority = model.for > model.against
  const finished = !model.executed && !model.canceled && now >= voteEnd
  const defeat = quorum ? "MajorityNotReached" : "QuorumNotReached"
  switch (command._tag) {
    case "CastVote":
      if (model.executed || model.canceled || now < voteStart || now >= voteEnd) return "OutsideVotingWindow"
      if (model.votes.has(command.voter)) return "AlreadyVoted"
      return command.weight <= 0n ? "NoVotingPower" : undefined
    case "Queue":
      if (finished && !(quorum && majority)) return defeat
      return finished && model.eta === null ? undefined : "UnexpectedProposalState"
    case "Execute":
      if (model.executed) return "AlreadyExecuted"
      if (finished && !(quorum && majority)) return defeat
      if (!finished || model.eta === null) return "UnexpectedProposalState"
      if (now < model.eta) return "TimelockNotExpired"
      return now >= model.eta + GRACE_PERIOD_MS ? "ProposalExpired" : undefined
    case "Cancel":
      if (command.by !== "v0") return "NotProposer"
      return !model.canceled && !model.executed && now < voteStart ? undefined : "UnexpectedProposalState"
    case "Propose":
      return "ProposalExists"
  }
}

// The decider only reads the time: a clock stopped at `now` (TestClock.setTime costs a timer tick per step).
const clockAt = (now: number): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => now,
  currentTimeMillis: Effect.sync(() => now),
  unsafeCurrentTimeNanos: () => BigInt(now) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => BigInt(now) * 1_000_000n),
  sleep: () => Effect.void
})

describe("Proposal properties", () => {
  it("a vote counts once and only in its window; execution needs quorum, majority, the timelock, and happens once", () =>
    fc.assert(
      fc.property(scriptArbitrary, ([settings, steps]) =>
        Effect.runSync(
          Effect.gen(function*() {
            const { evolve, initialState } = Proposal.decider
            let now = 0
            const decide = (command: ProposalCommand, state: ProposalState) =>
              Effect.withClock(Proposal.decider.decide(command, state), clockAt(now))
            const propose: ProposalCommand = {
              _tag: "Propose",
              proposalId: "p",
              proposer: "v0",
              parameter: "feeBps",
              value: 42n,
              description: "property",
              snapshot: 1,
              totalStake: settings.totalStake,
              proposerStake: 1n,
              currentValue: 30n,
              settings: {
                quorumPpm: settings.quorumPpm,
                proposalThresholdRuv: 1n,
                votingDelayMs: BigInt(settings.votingDelayMs),
                votingPeriodMs: BigInt(settings.votingPeriodMs),
                timelockMs: BigInt(settings.timelockMs),
                version: 0
              }
            }
            const log: Array<ProposalEvent> = [...(yield* decide(propose, initialState))]
            let state = fold(evolve, initialState, log)
            const model = {
              votes: new Map<string, Support>(),
              for: 0n,
              against: 0n,
              abstain: 0n,
              eta: null as number | null,
              executed: false,
              canceled: false
            }
            const voteStart = settings.votingDelayMs
            const boundaries = { voteStart, voteEnd: voteStart + settings.votingPeriodMs }
            for (const step of steps) {
              const { advance } = step
              if ("by" in advance) now += advance.by
              else {
                const target = advance.to === "voteStart" || advance.to === "voteEnd"
                  ? boundaries[advance.to]
                  : model.eta === null
                  ? undefined
                  : advance.to === "eta"
                  ? model.eta
                  : model.eta + GRACE_PERIOD_MS
                // Time never runs backwards.
                if (target !== undefined) now = Math.max(now, target + advance.offset)
              }
              const outcome = yield* Effect.either(decide(step.command, state))
              const expected = expectedRefusal(model, settings, step.command, now)
              expect(Either.isLeft(outcome) ? outcome.left._tag : undefined).toBe(expected)
              if (Either.isLeft(outcome)) continue
              for (const event of outcome.right) {
                log.push(event)
                if (event._tag === "VoteCast") {
                  model.votes.set(event.voter, event.support)
                  model[event.support] += event.weight
                }
                if (event._tag === "ProposalQueued") model.eta = event.eta
                if (event._tag === "ProposalExecuted") model.executed = true
                if (event._tag === "ProposalCanceled") model.canceled = true
              }
              state = fold(evolve, state, outcome.right)
            }
            // What the log itself shows: one vote per voter, all in the window, at most one execution.
            const votes = log.filter((event) => event._tag === "VoteCast")
            expect(new Set(votes.map((vote) => vote.voter)).size).toBe(votes.length)
            for (const vote of votes) {
              expect(vote.at).toBeGreaterThanOrEqual(settings.votingDelayMs)
              expect(vote.at).toBeLessThan(settings.votingDelayMs + settings.votingPeriodMs)
            }
            const executions = log.filter((event) => event._tag === "ProposalExecuted")
            expect(executions.length).toBeLessThanOrEqual(1)
            for (const executed of executions) {
              expect((executed.forVotes + executed.abstainVotes) * 1_000_000n).toBeGreaterThanOrEqual(
                settings.quorumPpm * settings.totalStake
              )
              expect(executed.forVotes).toBeGreaterThan(executed.againstVotes)
              expect(executed.at).toBeGreaterThanOrEqual(model.eta!)
              expect(executed.at).toBeLessThan(model.eta! + GRACE_PERIOD_MS)
            }
            // Replaying the whole log gives the state built step by step.
            expect(fold(evolve, initialState, log)).toEqual(state)
          })
        )),
      { numRuns: 500 }
    ))

  it.live("replay of the log equals live state, whatever the interleaving of proposals, votes and time", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.oneof(
              {
                arbitrary: fc.record({
                  kind: fc.constant("propose" as const),
                  proposer: fc.constantFrom(...voters),
                  value: fc.oneof({ arbitrary: fc.bigInt({ min: 5n, max: 20n }), weight: 4 }, {
                    arbitrary: fc.bigInt({ min: 0n, max: 200n }),
                    weight: 1
                  })
                }),
                weight: 2
              },
              {
                arbitrary: fc.record({
                  kind: fc.constant("vote" as const),
                  proposal: fc.nat(5),
                  voter: fc.constantFrom(...voters),
                  support: mostlyFor
                }),
                weight: 6
              },
              {
                arbitrary: fc.record({
                  kind: fc.constantFrom("queue" as const, "execute" as const),
                  proposal: fc.nat(5)
                }),
                weight: 3
              },
              { arbitrary: fc.record({ kind: fc.constant("settle" as const) }), weight: 2 },
              { arbitrary: fc.record({ kind: fc.constant("cancel" as const), proposal: fc.nat(5) }), weight: 1 },
              {
                arbitrary: fc.record({
                  kind: fc.constant("stake" as const),
                  node: fc.constantFrom(...voters),
                  amount: fc.bigInt({ min: 0n, max: 100n })
                }),
                weight: 1
              },
              {
                arbitrary: fc.record({
                  kind: fc.constant("wait" as const),
                  millis: fc.integer({ min: 0, max: 15_000 })
                }),
                weight: 5
              }
            ),
            { minLength: 20, maxLength: 50 }
          ),
          (operations) =>
            Effect.runPromise(
              Effect.gen(function*() {
                const governance = yield* Governance
                const stakes = yield* TestStakes
                const parameters = yield* NetworkParameters
                // Short votes and timelocks, so that the waits below carry proposals through every state.
                yield* parameters.set("votingPeriodMs", 20_000n)
                yield* parameters.set("timelockMs", 5_000n)
                yield* parameters.set("quorumPpm", 200_000n)
                yield* parameters.set("votingDelayMs", 2_000n)
                yield* parameters.set("proposalThresholdRuv", 1n)
                for (const node of voters) yield* stakes.setStake(node, 10n)
                const ids: Array<string> = []
                for (const operation of operations) {
                  const id = (index: number) => ids[index % Math.max(1, ids.length)] ?? "none"
                  switch (operation.kind) {
                    case "propose": {
                      const proposed = yield* Effect.either(governance.propose({
                        proposer: operation.proposer,
                        parameter: "bidDepositRuv",
                        value: operation.value,
                        description: `deposit ${ids.length}`
                      }))
                      if (Either.isRight(proposed)) ids.push(proposed.right.proposal.proposalId)
                      break
                    }
                    case "vote":
                      yield* Effect.either(governance.vote(id(operation.proposal), operation.voter, operation.support))
                      break
                    case "queue":
                    case "execute":
                      yield* Effect.either(governance[operation.kind](id(operation.proposal)))
                      break
                    case "settle":
                      // Moves every proposal on as far as it goes: queue what passed, execute what waited out its timelock.
                      for (const proposalId of ids) {
                        yield* Effect.either(
                          Effect.zipRight(Effect.either(governance.queue(proposalId)), governance.execute(proposalId))
                        )
                      }
                      break
                    case "cancel":
                      yield* Effect.either(governance.cancel(id(operation.proposal), "v0"))
                      break
                    case "stake":
                      yield* stakes.setStake(operation.node, operation.amount)
                      break
                    case "wait":
                      yield* TestClock.adjust(operation.millis)
                  }
                }
                expect(yield* replayMismatches(Proposal.category)).toEqual([])
                // The listing projection and each proposal's own stream agree with the live actors.
                const listed = yield* governance.list()
                expect(listed.length).toBe(ids.length)
                for (const summary of listed) {
                  const { votes: _votes, history: _history, ...shown } = yield* governance.show(summary.proposalId)
                  expect(shown).toEqual(summary)
                }
              }).pipe(
                Effect.provide(Governance.Default.pipe(
                  Layer.provideMerge(Layer.mergeAll(NetworkParameters.Default, testVotingPower)),
                  Layer.provideMerge(memoryKernel())
                )),
                Effect.provide(TestContext.TestContext)
              )
            )
        ),
        { numRuns: 25 }
      )
    ))
})
