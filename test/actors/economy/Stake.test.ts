import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, TestClock, TestContext } from "effect"
import * as fc from "fast-check"
import { Account } from "../../../src/actors/economy/Account.js"
import { EconomyRpcs } from "../../../src/actors/economy/EconomyRpc.js"
import { Ledger } from "../../../src/actors/economy/Ledger.js"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { defaultsFor } from "../../../src/actors/economy/ParameterCatalogue.js"
import { Reputations } from "../../../src/actors/economy/Reputation.js"
import { Reputation } from "../../../src/actors/economy/ReputationService.js"
import { RewardGrants, REWARDS_ACCOUNT } from "../../../src/actors/economy/Reward.js"
import { Rewards } from "../../../src/actors/economy/RewardService.js"
import type { SlashReason } from "../../../src/actors/economy/Stake.js"
import {
  InsufficientStake,
  NothingToWithdraw,
  Slashed,
  Staked,
  Stakes,
  Unbonding,
  Withdrawn
} from "../../../src/actors/economy/Stake.js"
import { Staking, stakingSettlementPolicy } from "../../../src/actors/economy/StakeService.js"
import { ed25519, utf8 } from "../../../src/domain/Ed25519.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import { headMessage } from "../../../src/events/Envelope.js"
import { Journal } from "../../../src/events/Journal.js"
import * as Policy from "../../../src/events/Policy.js"
import { anotherRunner, replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"
import { acceptUnsigned, testKey } from "../../support/Signing.js"

const spec = DeciderSpecification.for(Stakes.decider)
const parameters = { values: defaultsFor("economy"), version: 0 }

const economy = () =>
  Layer.mergeAll(Staking.Default, Reputation.Default, Rewards.Default).pipe(
    Layer.provideMerge(Layer.mergeAll(NetworkParameters.Default, Ledger.Default)),
    Layer.provideMerge(memoryKernel())
  )

describe("Stake decider", () => {
  it.effect("stakes a positive amount, at the time it read", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("5 millis")
      yield* spec.given([]).when({ _tag: "Stake", stakeId: "s1", amount: 100n }).then([
        Staked.make({ stakeId: "s1", amount: 100n, at: 5 })
      ])
      yield* spec.given([]).when({ _tag: "Stake", stakeId: "s2", amount: 0n }).thenFails((e) =>
        e._tag === "InvalidAmount"
      )
    }))

  it.effect("unbonding records when the stake becomes withdrawable and the delay in force", () =>
    spec
      .given([Staked.make({ stakeId: "s1", amount: 100n, at: 0 })])
      .when({
        _tag: "Unbond",
        unbondId: "u1",
        amount: 40n,
        parameters: { values: { ...parameters.values, unbondingDelayMs: 1_000n }, version: 3 }
      })
      .then([
        Unbonding.make({
          unbondId: "u1",
          amount: 40n,
          at: 0,
          availableAt: 1_000,
          unbondingDelayMs: 1_000n,
          parametersVersion: 3
        })
      ]))

  it.effect("cannot unbond more than the active stake", () =>
    spec
      .given([
        Staked.make({ stakeId: "s1", amount: 100n, at: 0 }),
        Unbonding.make({
          unbondId: "u1",
          amount: 60n,
          at: 0,
          availableAt: 60_000,
          unbondingDelayMs: 60_000n,
          parametersVersion: 0
        })
      ])
      .when({ _tag: "Unbond", unbondId: "u2", amount: 50n, parameters })
      .thenFails((e) =>
        e instanceof InsufficientStake && e.message === "insufficient stake: 40 rUv staked, 50 required"
      ))

  it.effect("withdraws only matured unbondings, and says when the first one matures", () =>
    Effect.gen(function*() {
      const given = spec.given([
        Staked.make({ stakeId: "s1", amount: 100n, at: 0 }),
        Unbonding.make({
          unbondId: "u1",
          amount: 30n,
          at: 0,
          availableAt: 60_000,
          unbondingDelayMs: 60_000n,
          parametersVersion: 0
        }),
        Unbonding.make({
          unbondId: "u2",
          amount: 20n,
          at: 0,
          availableAt: 90_000,
          unbondingDelayMs: 60_000n,
          parametersVersion: 0
        })
      ])
      yield* given.when({ _tag: "Withdraw", withdrawId: "w1" }).thenFails((e) =>
        e instanceof NothingToWithdraw &&
        e.message === "nothing to withdraw yet: 50 rUv unbonding, the first available at 1970-01-01T00:01:00.000Z"
      )
      yield* TestClock.adjust("60 seconds")
      yield* given.when({ _tag: "Withdraw", withdrawId: "w1" }).then([
        Withdrawn.make({ withdrawId: "w1", amount: 30n, unbondIds: ["u1"], at: 60_000 })
      ])
      yield* spec.given([]).when({ _tag: "Withdraw", withdrawId: "w2" }).thenFails((e) =>
        e.message === "nothing to withdraw: no stake is unbonding"
      )
    }))

  it.effect("slashes the offence's rate of the active stake only, rounded down, recording the rate", () =>
    Effect.gen(function*() {
      const given = spec.given([
        Staked.make({ stakeId: "s1", amount: 1_099n, at: 0 }),
        Unbonding.make({
          unbondId: "u1",
          amount: 100n,
          at: 0,
          availableAt: 60_000,
          unbondingDelayMs: 60_000n,
          parametersVersion: 0
        })
      ])
      const expected: Record<SlashReason, bigint> = {
        IncorrectResult: 99n,
        Equivocation: 499n,
        ChallengeTimeout: 49n,
        SybilAttack: 999n,
        ProtocolViolation: 199n
      }
      for (const [reason, amount] of Object.entries(expected) as Array<[SlashReason, bigint]>) {
        yield* given.when({ _tag: "Slash", slashId: "x", reason, evidence: "task-1", parameters }).then([Slashed.make({
          slashId: "x",
          reason,
          amount,
          ratePpm: parameters.values[`slash${reason}Ppm`]!,
          activeBefore: 999n,
          evidence: "task-1",
          at: 0,
          parametersVersion: 0
        })])
      }
    }))

  it.effect("a slash of a node with no active stake records the offence and burns nothing", () =>
    spec.given([]).when({ _tag: "Slash", slashId: "x", reason: "Equivocation", evidence: "e", parameters }).then([
      Slashed.make({
        slashId: "x",
        reason: "Equivocation",
        amount: 0n,
        ratePpm: 500_000n,
        activeBefore: 0n,
        evidence: "e",
        at: 0,
        parametersVersion: 0
      })
    ]))
})

describe("Staking service", () => {
  it.effect("stakes through the ledger, unbonds at once, withdraws after the delay", () =>
    Effect.gen(function*() {
      const staking = yield* Staking
      const ledger = yield* Ledger
      yield* ledger.mint("n1", 500n)
      expect((yield* Effect.flip(staking.stake("n1", 600n, "s0")))._tag).toBe("InsufficientFunds")
      yield* staking.stake("n1", 80n, "s1")
      expect(yield* staking.hasMinStake("n1")).toBe(false)
      expect((yield* Effect.flip(staking.requireMinStake("n1"))).message).toBe(
        "insufficient stake: 80 rUv staked, 100 required"
      )
      const again = yield* staking.stake("n1", 80n, "s1")
      expect(again.duplicate).toBe(true)
      yield* staking.stake("n1", 40n, "s2")
      expect(yield* staking.hasMinStake("n1")).toBe(true)
      expect((yield* ledger.balance("n1")).available).toBe(380n)
      expect((yield* ledger.balance("stake:n1")).available).toBe(120n)

      yield* TestClock.adjust("1 second")
      const unbonded = yield* staking.unbond("n1", 50n, "u1")
      expect(unbonded).toMatchObject({ active: 70n, unbonding: 50n })
      expect(yield* staking.activeStake("n1")).toBe(70n)
      const early = yield* Effect.flip(staking.withdraw("n1", "w1"))
      expect(early.message).toBe(
        "nothing to withdraw yet: 50 rUv unbonding, the first available at 1970-01-01T00:01:01.000Z"
      )
      yield* TestClock.adjust("60 seconds")
      const withdrawn = yield* staking.withdraw("n1", "w1")
      expect(withdrawn).toMatchObject({ active: 70n, unbonding: 0n, withdrawn: 50n })
      yield* staking.withdraw("n1", "w1") // a retry pays nothing twice
      expect((yield* ledger.balance("n1")).available).toBe(430n)
      expect((yield* ledger.balance("stake:n1")).available).toBe(70n)
      expect(yield* ledger.supply()).toMatchObject({ minted: 500n, burned: 0n, conserved: true })
    }).pipe(Effect.provide(economy())))

  it.effect("slashing burns the rate in force from the stake account and the supply counts it", () =>
    Effect.gen(function*() {
      const staking = yield* Staking
      const ledger = yield* Ledger
      const parameters = yield* NetworkParameters
      yield* ledger.mint("n1", 1_000n)
      yield* staking.stake("n1", 1_000n, "s1")
      const first = yield* staking.slash("n1", "IncorrectResult", "task-7", "slash-1")
      expect(first).toMatchObject({ active: 900n, slashed: 100n })
      yield* parameters.set("slashIncorrectResultPpm", 250_000n)
      const second = yield* staking.slash("n1", "IncorrectResult", "task-8", "slash-2")
      expect(second.events[0]).toMatchObject({ _tag: "Slashed", amount: 225n, ratePpm: 250_000n, parametersVersion: 1 })
      const retried = yield* staking.slash("n1", "IncorrectResult", "task-8", "slash-2")
      expect(retried.duplicate).toBe(true)
      expect((yield* ledger.balance("stake:n1")).available).toBe(675n)
      expect(yield* ledger.supply()).toMatchObject({ minted: 1_000n, available: 675n, burned: 325n, conserved: true })
    }).pipe(Effect.provide(economy())))

  it.effect("stake at an earlier journal position ignores later stake", () =>
    Effect.gen(function*() {
      const staking = yield* Staking
      const ledger = yield* Ledger
      yield* ledger.mint("n1", 1_000n)
      yield* ledger.mint("n2", 1_000n)
      const early = yield* staking.stake("n1", 100n, "s1")
      const snapshot = (yield* staking.stake("n2", 300n, "s1")).position
      yield* staking.stake("n1", 500n, "s2")
      yield* staking.unbond("n2", 200n, "u1")
      expect(yield* staking.stakeAt("n1", early.position - 1)).toBe(0n)
      expect(yield* staking.stakeAt("n1", early.position)).toBe(100n)
      expect(yield* staking.stakeAt("n1", snapshot)).toBe(100n)
      expect(yield* staking.stakeAt("n2", snapshot)).toBe(300n)
      expect(yield* staking.activeStake("n1")).toBe(600n)
      expect(yield* staking.totalActiveStakeAt(snapshot)).toBe(400n)
      expect(yield* staking.totalActiveStakeAt(Number.MAX_SAFE_INTEGER)).toBe(600n + 100n)
    }).pipe(Effect.provide(economy())))

  it.live("the settlement policy finishes a slash whose burn a crash interrupted", () =>
    Effect.gen(function*() {
      const staking = yield* Staking
      const ledger = yield* Ledger
      yield* ledger.mint("n1", 100n)
      yield* staking.stake("n1", 100n, "s1")
      // Only the first step, as if the process died between recording the slash and burning.
      yield* (yield* anotherRunner(Stakes)).send("n1", {
        _tag: "Slash",
        slashId: "x1",
        reason: "SybilAttack",
        evidence: "e",
        parameters
      }, { commandId: "slash/n1/x1" })
      expect((yield* ledger.balance("stake:n1")).available).toBe(100n)
      yield* Policy.awaitCaughtUp("staking.settlement").pipe(Effect.provide(stakingSettlementPolicy))
      expect((yield* ledger.balance("stake:n1")).available).toBe(0n)
      expect(yield* ledger.supply()).toMatchObject({ burned: 100n, conserved: true })
    }).pipe(Effect.provide(economy())))

  it.effect("a fork proof slashes the key's stake once, whatever proofs follow; a proof of nothing is refused", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      const staking = yield* Staking
      const equivocator = testKey()
      yield* ledger.mint(equivocator.account, 1_000n)
      yield* staking.stake(equivocator.account, 1_000n, "s1")
      const signedPoint = (position: number, hash: string) => ({
        position,
        hash,
        signature: ed25519.sign(equivocator.seed, utf8(headMessage(position, hash)))
      })
      const proof = {
        publicKey: equivocator.publicKey,
        first: signedPoint(7, "a".repeat(64)),
        second: signedPoint(7, "b".repeat(64)),
        chain: []
      }
      const slashed = yield* staking.slashEquivocation(proof)
      // slashEquivocationPpm in force at genesis.
      const rate = (yield* (yield* NetworkParameters).current("economy")).values["slashEquivocationPpm"]!
      expect(slashed.active).toBe(1_000n - (1_000n * rate) / 1_000_000n)
      expect(yield* staking.slashEquivocation(proof)).toMatchObject({ active: slashed.active })
      // Another peer's proof of the same key (other heads) slashes nothing more.
      const another = { ...proof, first: signedPoint(9, "c".repeat(64)), second: signedPoint(9, "d".repeat(64)) }
      expect(yield* staking.slashEquivocation(another)).toMatchObject({ active: slashed.active })
      const forged = { ...proof, second: { ...proof.second, signature: testKey().publicKey.repeat(2) } }
      expect(yield* Effect.flip(staking.slashEquivocation(forged))).toMatchObject({ _tag: "InvalidForkProof" })
      const sameHash = { ...proof, second: signedPoint(7, "a".repeat(64)) }
      expect(yield* Effect.flip(staking.slashEquivocation(sameHash))).toMatchObject({ _tag: "InvalidForkProof" })
      expect((yield* staking.stakeOf(equivocator.account)).active).toBe(slashed.active)
    }).pipe(Effect.provide(economy())))

  it.effect("the RPC contract serves stake, reputation and rewards", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("n1", 200n)
      yield* ledger.mint(REWARDS_ACCOUNT, 50n)
      const client = yield* RpcTest.makeClient(EconomyRpcs)
      yield* (yield* Rewards).grant("n1", 20n, "task-1")
      expect(yield* client.Stake({ node: "n1" as never, amount: 150n, operationId: "s1" as never })).toMatchObject({
        active: 150n
      })
      expect(yield* client.Unbond({ node: "n1" as never, amount: 20n })).toMatchObject({ active: 130n, unbonding: 20n })
      expect((yield* Effect.flip(client.Withdraw({ node: "n1" as never })))._tag).toBe("NothingToWithdraw")
      expect(
        yield* client.Slash({
          node: "n1" as never,
          reason: "ChallengeTimeout",
          evidence: "t",
          operationId: "x" as never
        })
      ).toMatchObject({ slashed: 6n })
      expect(yield* client.StakeOf({ node: "n1" as never })).toMatchObject({ active: 124n })
      expect(yield* client.ReputationOf({ node: "n1" as never })).toMatchObject({ scorePpm: 500_000n })
      expect((yield* client.RewardsOf({ node: "n1" as never })).total).toBe(20n)
      expect((yield* Effect.flip(client.ClaimReward({ node: "n1" as never })))._tag).toBe("RewardNotVested")
      yield* TestClock.adjust("60 seconds")
      expect(yield* client.ClaimReward({ node: "n1" as never, rewardId: "task-1" })).toMatchObject({ amount: 20n })
    }).pipe(Effect.scoped, Effect.provide([handlers, acceptUnsigned]), Effect.provide(economy())))
})

const handlers = EconomyRpcs.toLayer(
  Effect.gen(function*() {
    const staking = yield* Staking
    const reputation = yield* Reputation
    const rewards = yield* Rewards
    return {
      Stake: ({ node, amount, operationId }) => staking.stake(node, amount, operationId),
      Unbond: ({ node, amount, operationId }) => staking.unbond(node, amount, operationId),
      Withdraw: ({ node, operationId }) => staking.withdraw(node, operationId),
      Slash: ({ node, reason, evidence, operationId }) => staking.slash(node, reason, evidence, operationId),
      ReportEquivocation: ({ proof }) => staking.slashEquivocation(proof),
      StakeOf: ({ node }) => staking.stakeOf(node),
      ReputationOf: ({ node }) => reputation.reputationOf(node),
      RewardsOf: ({ node }) => rewards.pending(node),
      ClaimReward: ({ node, rewardId }) => rewards.claim(node, rewardId)
    }
  })
)

// A generated history of economy operations, applied one after another with time passing between them.
const nodes = ["n0", "n1", "n2"] as const
const reasons: ReadonlyArray<SlashReason> = [
  "IncorrectResult",
  "Equivocation",
  "ChallengeTimeout",
  "SybilAttack",
  "ProtocolViolation"
]
const operation = fc.oneof(
  fc.record({ op: fc.constant("stake" as const), node: fc.nat(2), amount: fc.bigInt({ min: 1n, max: 80n }) }),
  fc.record({ op: fc.constant("unbond" as const), node: fc.nat(2), amount: fc.bigInt({ min: 1n, max: 60n }) }),
  fc.record({ op: fc.constant("withdraw" as const), node: fc.nat(2) }),
  fc.record({ op: fc.constant("slash" as const), node: fc.nat(2), reason: fc.nat(4) }),
  fc.record({ op: fc.constant("grant" as const), node: fc.nat(2), amount: fc.bigInt({ min: 1n, max: 40n }) }),
  fc.record({ op: fc.constant("claim" as const), node: fc.nat(2) }),
  fc.record({
    op: fc.constant("outcome" as const),
    node: fc.nat(2),
    success: fc.boolean(),
    weight: fc.integer({ min: 1, max: 3 })
  }),
  fc.record({ op: fc.constant("wait" as const), millis: fc.integer({ min: 1, max: 45_000 }) })
)

const runHistory = (
  initial: ReadonlyArray<bigint>,
  rewardsFund: bigint,
  history: ReadonlyArray<typeof operation extends fc.Arbitrary<infer A> ? A : never>
) =>
  Effect.gen(function*() {
    const staking = yield* Staking
    const rewards = yield* Rewards
    const ledger = yield* Ledger
    const reputation = yield* Reputation
    const journal = yield* Journal
    // After each step: the journal head and every node's active stake, for the snapshots checked below.
    const seen: Array<{ readonly position: number; readonly active: ReadonlyArray<bigint> }> = []
    yield* Effect.forEach(
      initial,
      (amount, i) => (amount > 0n ? Effect.asVoid(ledger.mint(nodes[i]!, amount)) : Effect.void)
    )
    if (rewardsFund > 0n) yield* ledger.mint(REWARDS_ACCOUNT, rewardsFund)
    let step = 0
    for (const entry of history) {
      step++
      const id = `op${step}`
      if (entry.op === "wait") {
        yield* TestClock.adjust(entry.millis)
        continue
      }
      const node = nodes[entry.node]!
      const attempt: Effect.Effect<unknown, { readonly _tag: string }> = entry.op === "stake" ?
        staking.stake(node, entry.amount, id)
        : entry.op === "unbond" ?
        staking.unbond(node, entry.amount, id)
        : entry.op === "withdraw" ?
        staking.withdraw(node, id)
        : entry.op === "slash" ?
        staking.slash(node, reasons[entry.reason]!, `evidence-${step}`, id)
        : entry.op === "grant" ?
        rewards.grant(node, entry.amount, `task-${step}`)
        : entry.op === "claim" ?
        rewards.claim(node)
        : entry.success ?
        reputation.recordSuccess(node, entry.weight, `task-${step}`)
        : reputation.recordFailure(node, entry.weight, `task-${step}`)
      const outcome = yield* Effect.either(attempt)
      // Only the refusals a user can hit: never a defect or a conflict.
      if (Either.isLeft(outcome)) {
        expect(["InsufficientFunds", "InsufficientStake", "NothingToWithdraw", "RewardNotVested", "NoRewardToClaim"])
          .toContain(outcome.left._tag)
      }
      seen.push({
        position: (yield* journal.head).position,
        active: yield* Effect.forEach(nodes, (n) => staking.activeStake(n))
      })
    }

    // Stake at an earlier position is what was live then: later stake, unbonds and slashes are ignored.
    for (const { position, active } of seen) {
      expect(yield* Effect.forEach(nodes, (n) => staking.stakeAt(n, position))).toEqual(active)
      expect(yield* staking.totalActiveStakeAt(position)).toBe(active.reduce((a, b) => a + b, 0n))
    }

    const accounts = yield* (yield* anotherRunner(Account)).replay()
    for (const { state } of accounts.values()) {
      expect(state.available).toBeGreaterThanOrEqual(0n)
      for (const held of Object.values(state.held)) expect(held).toBeGreaterThan(0n)
    }
    const stakes = yield* (yield* anotherRunner(Stakes)).replay()
    let slashed = 0n
    for (const [node, { state }] of stakes) {
      slashed += state.slashed
      expect(state.active).toBeGreaterThanOrEqual(0n)
      // The stake account holds exactly the active and unbonding stake.
      const account = yield* ledger.balance(`stake:${node}`)
      expect(account.available).toBe(state.active + state.unbonding.reduce((sum, unbond) => sum + unbond.amount, 0n))
    }
    let unclaimed = 0n
    for (const { state } of (yield* (yield* anotherRunner(RewardGrants)).replay()).values()) {
      for (const reward of Object.values(state.unclaimed)) unclaimed += reward.amount
    }
    expect((yield* ledger.balance(REWARDS_ACCOUNT)).held).toBe(unclaimed)

    const minted = initial.reduce((a, b) => a + b, 0n) + rewardsFund
    const supply = yield* ledger.supply()
    expect(supply).toMatchObject({ minted, inFlight: 0n, burned: slashed, conserved: true })
    let total = 0n
    for (const { state } of accounts.values()) {
      total += state.available + Object.values(state.held).reduce((a, b) => a + b, 0n)
    }
    expect(total).toBe(minted - slashed)

    for (const { state } of (yield* (yield* anotherRunner(Reputations)).replay()).values()) {
      expect(state.scorePpm >= 0n && state.scorePpm <= 1_000_000n).toBe(true)
    }
    for (const category of [Account.category, Stakes.category, RewardGrants.category, Reputations.category]) {
      expect(yield* replayMismatches(category)).toEqual([])
    }
  })

describe("economy histories", () => {
  it.live(
    "no balance goes negative, rUv is conserved outside mint and slash, replay equals live",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(fc.bigInt({ min: 0n, max: 200n }), { minLength: 3, maxLength: 3 }),
            fc.bigInt({ min: 0n, max: 150n }),
            fc.array(operation, { minLength: 10, maxLength: 40 }),
            (initial, rewardsFund, history) =>
              Effect.runPromise(
                runHistory(initial, rewardsFund, history).pipe(
                  Effect.provide(economy()),
                  Effect.provide(TestContext.TestContext)
                )
              )
          ),
          { numRuns: 40 }
        )
      ),
    60_000
  )
})
