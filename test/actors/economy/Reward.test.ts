import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, TestClock } from "effect"
import { Ledger } from "../../../src/actors/economy/Ledger.js"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import type { RewardCommand } from "../../../src/actors/economy/Reward.js"
import {
  RewardClaimed,
  RewardGranted,
  RewardGrants,
  RewardNotVested,
  REWARDS_ACCOUNT
} from "../../../src/actors/economy/Reward.js"
import { Rewards, rewardsSettlementPolicy } from "../../../src/actors/economy/RewardService.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import * as Policy from "../../../src/events/Policy.js"
import { anotherRunner, replayMismatches } from "../../support/Actors.js"
import { memoryKernel } from "../../support/Layers.js"

const spec = DeciderSpecification.for(RewardGrants.decider)
const grant = (rewardId: string, amount: bigint): RewardCommand => ({
  _tag: "Grant",
  rewardId,
  taskId: rewardId,
  amount,
  holdId: `reward/n1/${rewardId}`,
  parameters: { vestingPeriodMs: 60_000n, version: 0 }
})
const granted = (rewardId: string, amount: bigint, at = 0) =>
  RewardGranted.make({
    rewardId,
    taskId: rewardId,
    amount,
    holdId: `reward/n1/${rewardId}`,
    at,
    vestsAt: at + 60_000,
    vestingPeriodMs: 60_000n,
    parametersVersion: 0
  })

const rewardsOn = () =>
  Rewards.Default.pipe(
    Layer.provideMerge(Layer.mergeAll(NetworkParameters.Default, Ledger.Default)),
    Layer.provideMerge(memoryKernel())
  )

describe("Reward decider", () => {
  it.effect("a grant records when it vests and the vesting period in force", () =>
    spec.given([]).when(grant("t1", 10n)).then([granted("t1", 10n)]))

  it.effect("refuses an empty grant and a second grant of the same reward", () =>
    Effect.gen(function*() {
      yield* spec.given([]).when(grant("t1", 0n)).thenFails((e) => e._tag === "InvalidAmount")
      yield* spec.given([granted("t1", 10n)]).when(grant("t1", 11n)).thenFails((e) =>
        e.message === "reward t1 was already granted (10 rUv)"
      )
    }))

  it.effect("claiming before vesting is refused with the time it vests", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("59 seconds")
      yield* spec.given([granted("t1", 10n)]).when({ _tag: "Claim", rewardId: "t1" }).thenFails((e) =>
        e instanceof RewardNotVested &&
        e.message === "reward t1 is not vested: it can be claimed from 1970-01-01T00:01:00.000Z"
      )
      yield* spec.given([granted("t1", 10n), granted("t2", 5n, 30_000)]).when({ _tag: "Claim" }).thenFails((e) =>
        e.message === "reward t1 is not vested: it can be claimed from 1970-01-01T00:01:00.000Z"
      )
    }))

  it.effect("claims one vested reward, or every vested one", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("60 seconds")
      const given = spec.given([granted("t1", 10n), granted("t2", 5n, 30_000), granted("t3", 7n)])
      yield* given.when({ _tag: "Claim", rewardId: "t3" }).then([
        RewardClaimed.make({ rewardId: "t3", amount: 7n, holdId: "reward/n1/t3", at: 60_000 })
      ])
      yield* given.when({ _tag: "Claim" }).then([
        RewardClaimed.make({ rewardId: "t1", amount: 10n, holdId: "reward/n1/t1", at: 60_000 }),
        RewardClaimed.make({ rewardId: "t3", amount: 7n, holdId: "reward/n1/t3", at: 60_000 })
      ])
    }))

  it.effect("a claimed or unknown reward cannot be claimed, and with nothing granted there is nothing to claim", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("60 seconds")
      const claimed = [
        granted("t1", 10n),
        RewardClaimed.make({ rewardId: "t1", amount: 10n, holdId: "reward/n1/t1", at: 60_000 })
      ]
      yield* spec.given(claimed).when({ _tag: "Claim", rewardId: "t1" }).thenFails((e) =>
        e.message === "no unclaimed reward t1"
      )
      yield* spec.given(claimed).when({ _tag: "Claim" }).thenFails((e) =>
        e.message === "nothing to claim: no unclaimed reward"
      )
    }))
})

describe("Rewards service", () => {
  it.effect("a grant holds rUv on the rewards account; a claim after vesting pays the node", () =>
    Effect.gen(function*() {
      const rewards = yield* Rewards
      const ledger = yield* Ledger
      expect((yield* Effect.flip(rewards.grant("n1", 10n, "t1")))._tag).toBe("InsufficientFunds")
      yield* ledger.mint(REWARDS_ACCOUNT, 100n)
      yield* rewards.grant("n1", 30n, "t1")
      yield* rewards.grant("n1", 30n, "t1") // a retry holds nothing twice
      expect((yield* Effect.flip(rewards.grant("n1", 31n, "t1"))).message).toBe(
        "reward t1 was already granted (30 rUv)"
      )
      yield* TestClock.adjust("30 seconds")
      yield* rewards.grant("n1", 20n, "t2")
      expect(yield* ledger.balance(REWARDS_ACCOUNT)).toMatchObject({ available: 50n, held: 50n })
      expect(yield* rewards.pending("n1")).toMatchObject({
        total: 50n,
        vested: 0n,
        rewards: [{ rewardId: "t1", amount: 30n, vestsAt: 60_000, vested: false }, {
          rewardId: "t2",
          amount: 20n,
          vestsAt: 90_000,
          vested: false
        }]
      })
      const early = yield* Effect.flip(rewards.claim("n1", "t1"))
      expect(early.message).toBe("reward t1 is not vested: it can be claimed from 1970-01-01T00:01:00.000Z")

      yield* TestClock.adjust("30 seconds")
      expect(yield* rewards.claim("n1")).toMatchObject({ claimed: [{ rewardId: "t1", amount: 30n }], amount: 30n })
      expect((yield* ledger.balance("n1")).available).toBe(30n)
      expect(yield* rewards.pending("n1")).toMatchObject({ total: 20n, vested: 0n, claimed: 30n })
      yield* TestClock.adjust("30 seconds")
      yield* rewards.claim("n1", "t2")
      yield* rewards.claim("n1", "t2") // the same claim again pays nothing twice
      expect((yield* ledger.balance("n1")).available).toBe(50n)
      expect(yield* ledger.balance(REWARDS_ACCOUNT)).toMatchObject({ available: 50n, held: 0n })
      expect(yield* ledger.supply()).toMatchObject({ minted: 100n, conserved: true })
      expect(yield* replayMismatches(RewardGrants.category)).toEqual([])
    }).pipe(Effect.provide(rewardsOn())))

  it.effect("the vesting period in force is used and recorded", () =>
    Effect.gen(function*() {
      const rewards = yield* Rewards
      yield* (yield* Ledger).mint(REWARDS_ACCOUNT, 100n)
      yield* (yield* NetworkParameters).set("vestingPeriodMs", 5_000n)
      yield* rewards.grant("n1", 10n, "t1")
      const { state } = yield* (yield* anotherRunner(RewardGrants)).state("n1")
      expect(state.unclaimed["t1"]).toMatchObject({ vestsAt: 5_000 })
      yield* TestClock.adjust("5 seconds")
      expect((yield* rewards.claim("n1")).amount).toBe(10n)
    }).pipe(Effect.provide(rewardsOn())))

  it.live("the settlement policy pays out a claim that a crash interrupted", () =>
    Effect.gen(function*() {
      const rewards = yield* Rewards
      const ledger = yield* Ledger
      yield* (yield* NetworkParameters).set("vestingPeriodMs", 0n)
      yield* ledger.mint(REWARDS_ACCOUNT, 100n)
      yield* rewards.grant("n1", 40n, "t1")
      // Only the first step, as if the process died between recording the claim and capturing the hold.
      yield* (yield* anotherRunner(RewardGrants)).send("n1", { _tag: "Claim", rewardId: "t1" }, {
        commandId: "claim/t1"
      })
      expect((yield* ledger.balance("n1")).available).toBe(0n)
      yield* Policy.awaitCaughtUp("rewards.settlement").pipe(Effect.provide(rewardsSettlementPolicy))
      expect((yield* ledger.balance("n1")).available).toBe(40n)
      expect(yield* ledger.balance(REWARDS_ACCOUNT)).toMatchObject({ available: 60n, held: 0n })
      expect((yield* ledger.supply()).conserved).toBe(true)
    }).pipe(Effect.provide(rewardsOn())))
})
