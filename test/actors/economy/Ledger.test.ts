import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as fc from "fast-check"
import { Account } from "../../../src/actors/economy/Account.js"
import { Ledger } from "../../../src/actors/economy/Ledger.js"
import { creditsPolicy } from "../../../src/actors/economy/Ledger.js"
import { Journal } from "../../../src/events/Journal.js"
import * as Policy from "../../../src/events/Policy.js"
import { anotherRunner, replayMismatches } from "../../support/Actors.js"
import { memoryKernel, sqliteKernel } from "../../support/Layers.js"

const ledgerOn = (kernel: Layer.Layer<any, any, never>) => Ledger.Default.pipe(Layer.provideMerge(kernel))

describe("Ledger", () => {
  it.effect("mints, transfers and reports balances", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("alice", 100n)
      const receipt = yield* ledger.transfer("alice", "bob", 30n, "t-1")
      expect(receipt.from).toMatchObject({ available: 70n, held: 0n })
      expect(receipt.to).toMatchObject({ available: 30n })
      const failure = yield* Effect.flip(ledger.transfer("bob", "alice", 31n))
      expect(failure._tag).toBe("InsufficientFunds")
      expect((yield* ledger.balance("bob")).available).toBe(30n)
      expect(yield* ledger.supply()).toMatchObject({ minted: 100n, available: 100n, inFlight: 0n, conserved: true })
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.effect("a mint id mints once: the same amount again is a retry, another amount is refused", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("alice", 100n, "grant-1")
      expect(yield* ledger.mint("alice", 100n, "grant-1")).toMatchObject({ available: 100n })
      const reused = yield* Effect.flip(ledger.mint("alice", 1_000_000n, "grant-1"))
      expect(reused.message).toBe("invalid amount 1000000: mint id grant-1 was already used to mint 100 rUv on alice")
      expect((yield* ledger.balance("alice")).available).toBe(100n)
      expect(yield* ledger.supply()).toMatchObject({ minted: 100n, conserved: true })
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.effect("a repeated transfer id moves money once", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("alice", 100n)
      yield* ledger.transfer("alice", "bob", 10n, "t-1")
      const again = yield* ledger.transfer("alice", "bob", 10n, "t-1")
      expect(again.duplicate).toBe(true)
      expect((yield* ledger.balance("alice")).available).toBe(90n)
      expect((yield* ledger.balance("bob")).available).toBe(10n)
      const reused = yield* Effect.flip(ledger.transfer("alice", "bob", 11n, "t-1"))
      expect(reused._tag).toBe("InvalidAmount")
      // The same id to another payee credits nobody: the debit it names went to bob.
      const elsewhere = yield* Effect.flip(ledger.transfer("alice", "carol", 10n, "t-1"))
      expect(elsewhere._tag).toBe("InvalidAmount")
      expect((yield* ledger.balance("carol")).available).toBe(0n)
      expect(yield* ledger.supply()).toMatchObject({ minted: 100n, inFlight: 0n, conserved: true })
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.effect("a transfer's debit and credit are one commit: consecutive positions, nothing in flight", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      const journal = yield* Journal
      yield* ledger.mint("alice", 100n)
      const before = (yield* journal.head).position
      const receipt = yield* ledger.transfer("alice", "bob", 25n, "t-2")
      const written = yield* journal.readAll(before + 1, 10)
      expect(written.map((envelope) => [envelope.eventType, envelope.commandId])).toEqual([
        ["Debited", "debit/t-2"],
        ["Credited", "credit/t-2"]
      ])
      expect(receipt).toMatchObject({ from: { available: 75n }, to: { available: 25n }, position: before + 2 })
      // One signed head for both: they were written in one transaction.
      expect((yield* journal.signedHeads(before + 1, 10)).map((head) => head.position)).toEqual([before + 2])
      // A transfer the payer cannot afford writes neither half.
      expect((yield* Effect.flip(ledger.transfer("alice", "bob", 76n, "t-3")))._tag).toBe("InsufficientFunds")
      expect((yield* journal.head).position).toBe(before + 2)
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.effect("holds escrow credits, captures part to a payee and releases the rest", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("buyer", 50n)
      const held = yield* ledger.hold("buyer", "auction-1", 40n)
      expect(held).toMatchObject({ available: 10n, held: 40n })
      expect((yield* Effect.flip(ledger.transfer("buyer", "x", 11n)))._tag).toBe("InsufficientFunds")
      const after = yield* ledger.capture("buyer", "auction-1", "seller", 25n)
      expect(after).toMatchObject({ available: 25n, held: 0n })
      expect((yield* ledger.balance("seller")).available).toBe(25n)
      yield* ledger.hold("buyer", "auction-2", 5n)
      expect(yield* ledger.release("buyer", "auction-2")).toMatchObject({ available: 25n, held: 0n })
      expect((yield* ledger.supply()).conserved).toBe(true)
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.effect("burns destroy rUv once per operation id, and the supply counts them", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("stake:n1", 100n)
      expect(yield* ledger.burn("stake:n1", 30n, "slash/n1/x1")).toMatchObject({ available: 70n })
      expect(yield* ledger.burn("stake:n1", 30n, "slash/n1/x1")).toMatchObject({ available: 70n })
      expect((yield* Effect.flip(ledger.burn("stake:n1", 31n, "slash/n1/x1")))._tag).toBe("InvalidAmount")
      expect((yield* Effect.flip(ledger.burn("stake:n1", 71n, "slash/n1/x2")))._tag).toBe("InsufficientFunds")
      expect(yield* ledger.supply()).toMatchObject({ minted: 100n, available: 70n, burned: 30n, conserved: true })
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.live("the credits policy finishes a transfer that stopped after its debit", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger
      yield* ledger.mint("alice", 10n)
      // Only the first step, as if the process died between debit and credit.
      yield* (yield* anotherRunner(Account)).send(
        "alice",
        { _tag: "Debit", transferId: "t-9", to: "bob", amount: 4n },
        { commandId: "debit/t-9" }
      )
      expect(yield* ledger.supply()).toMatchObject({ inFlight: 4n, conserved: true })
      yield* Effect.gen(function*() {
        yield* Policy.awaitCaughtUp("ledger.credits")
      }).pipe(Effect.provide(creditsPolicy))
      expect((yield* ledger.balance("bob")).available).toBe(4n)
      // Running the policy again from the start (lost checkpoint) credits nothing twice.
      yield* ledger.transfer("alice", "bob", 4n, "t-9")
      expect((yield* ledger.balance("bob")).available).toBe(4n)
      expect(yield* ledger.supply()).toMatchObject({ inFlight: 0n, conserved: true })
    }).pipe(Effect.provide(ledgerOn(memoryKernel()))))

  it.live(
    "no balance goes negative under 64 concurrent racing transfers; replay equals live; rUv is conserved",
    () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(
            fc.array(fc.bigInt({ min: 0n, max: 50n }), { minLength: 4, maxLength: 4 }),
            fc.array(fc.record({ from: fc.nat(3), to: fc.nat(3), amount: fc.bigInt({ min: 1n, max: 40n }) }), {
              minLength: 64,
              maxLength: 64
            }),
            (initial, transfers) =>
              Effect.runPromise(
                Effect.gen(function*() {
                  const ledger = yield* Ledger
                  const accounts = ["a0", "a1", "a2", "a3"]
                  yield* Effect.forEach(
                    initial,
                    (amount, i) => (amount > 0n ? Effect.asVoid(ledger.mint(accounts[i]!, amount)) : Effect.void)
                  )
                  const outcomes = yield* Effect.forEach(
                    transfers,
                    (t) => Effect.either(ledger.transfer(accounts[t.from]!, accounts[t.to]!, t.amount)),
                    { concurrency: 64 }
                  )
                  const balances = yield* Effect.forEach(accounts, (id) => ledger.balance(id))
                  for (const balance of balances) expect(balance.available).toBeGreaterThanOrEqual(0n)
                  const minted = initial.reduce((a, b) => a + b, 0n)
                  expect(balances.reduce((sum, b) => sum + b.available, 0n)).toBe(minted)
                  const succeeded = outcomes.filter(Either.isRight).length
                  const events = (yield* (yield* Journal).head).position
                  const mints = initial.filter((a) => a > 0n).length
                  expect(events).toBe(mints + 2 * succeeded)
                  expect(yield* replayMismatches("Account")).toEqual([])
                  expect((yield* ledger.supply()).conserved).toBe(true)
                }).pipe(Effect.provide(ledgerOn(sqliteKernel())), Effect.scoped)
              )
          ),
          { numRuns: 15 }
        )
      ),
    120_000
  )
})
