import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import {
  Account,
  Burned,
  Credited,
  Debited,
  Held,
  HoldCaptured,
  Minted,
  Released
} from "../../../src/actors/economy/Account.js"
import { InsufficientFunds, InvalidAmount } from "../../../src/actors/economy/LedgerErrors.js"
import { Credits, PositiveCredits } from "../../../src/domain/Money.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"

const spec = DeciderSpecification.for(Account.decider)

describe("Account decider", () => {
  it.effect("mints into an empty account", () =>
    spec.given([]).when({ _tag: "Mint", amount: 5n }).then([Minted.make({ amount: 5n })]))

  it.effect("refuses to mint nothing", () =>
    spec.given([]).when({ _tag: "Mint", amount: 0n }).thenFails((e) => e._tag === "InvalidAmount"))

  it.effect("debits what is available", () =>
    spec
      .given([Minted.make({ amount: 10n })])
      .when({ _tag: "Debit", transferId: "t1", to: "bob", amount: 10n })
      .then([Debited.make({ transferId: "t1", to: "bob", amount: 10n })]))

  it.effect("never debits more than is available", () =>
    spec
      .given([Minted.make({ amount: 10n }), Debited.make({ transferId: "t1", to: "bob", amount: 4n })])
      .when({ _tag: "Debit", transferId: "t2", to: "bob", amount: 7n })
      .thenFails((e) => e instanceof InsufficientFunds && e.available === 6n && e.requested === 7n))

  it.effect("credits any positive amount", () =>
    spec.given([]).when({ _tag: "Credit", transferId: "t1", from: "ann", amount: 3n }).then([
      Credited.make({ transferId: "t1", from: "ann", amount: 3n })
    ]))

  it.effect("holds cannot spend held credits twice", () =>
    spec
      .given([Minted.make({ amount: 10n }), Held.make({ holdId: "h1", amount: 8n })])
      .when({ _tag: "Hold", holdId: "h2", amount: 3n })
      .thenFails((e) => e._tag === "InsufficientFunds"))

  it.effect("refuses to open the same hold twice", () =>
    spec
      .given([Minted.make({ amount: 10n }), Held.make({ holdId: "h1", amount: 1n })])
      .when({ _tag: "Hold", holdId: "h1", amount: 1n })
      .thenFails((e) => e._tag === "DuplicateHold"))

  it.effect("releases a hold back to the account", () =>
    spec
      .given([Minted.make({ amount: 10n }), Held.make({ holdId: "h1", amount: 8n })])
      .when({ _tag: "Release", holdId: "h1" })
      .then([Released.make({ holdId: "h1", amount: 8n })]))

  it.effect("captures part of a hold and releases the rest in the same decision", () =>
    spec
      .given([Minted.make({ amount: 10n }), Held.make({ holdId: "h1", amount: 8n })])
      .when({ _tag: "Capture", holdId: "h1", to: "bob", amount: 5n })
      .then([HoldCaptured.make({ holdId: "h1", to: "bob", amount: 5n }), Released.make({ holdId: "h1", amount: 3n })]))

  it.effect("cannot capture more than was held, or a hold that is gone", () =>
    spec
      .given([Minted.make({ amount: 10n }), Held.make({ holdId: "h1", amount: 8n })])
      .when({ _tag: "Capture", holdId: "h1", to: "bob", amount: 9n })
      .thenFails((e) => e._tag === "InvalidAmount"))

  it.effect("cannot release a captured hold", () =>
    spec
      .given([
        Minted.make({ amount: 10n }),
        Held.make({ holdId: "h1", amount: 8n }),
        HoldCaptured.make({ holdId: "h1", to: "bob", amount: 8n })
      ])
      .when({ _tag: "Release", holdId: "h1" })
      .thenFails((e) => e._tag === "UnknownHold"))

  it.effect("burns available credits, never more, and never held ones", () =>
    Effect.all([
      spec.given([Minted.make({ amount: 10n })]).when({ _tag: "Burn", operationId: "slash-1", amount: 10n }).then([
        Burned.make({ operationId: "slash-1", amount: 10n })
      ]),
      spec
        .given([Minted.make({ amount: 10n }), Held.make({ holdId: "h1", amount: 8n })])
        .when({ _tag: "Burn", operationId: "slash-1", amount: 3n })
        .thenFails((e) => e instanceof InsufficientFunds && e.available === 2n),
      spec.given([Minted.make({ amount: 10n })]).when({ _tag: "Burn", operationId: "slash-1", amount: 0n }).thenFails((
        e
      ) => e._tag === "InvalidAmount")
    ]))

  it("reads amounts from outside as plain decimal strings of at most 30 digits, and writes them back unchanged", () => {
    const decode = (schema: typeof Credits | typeof PositiveCredits, text: string) =>
      Schema.decodeUnknownEither(schema)(text)
    expect(decode(Credits, "0")).toEqual(Either.right(0n))
    expect(decode(PositiveCredits, "9".repeat(30))).toEqual(Either.right(10n ** 30n - 1n))
    expect(Schema.encodeSync(Credits)(1234n)).toBe("1234")
    const refusal = "an amount is a whole number of rUv in at most 30 decimal digits"
    for (const text of ["0x10", "1e3", " 16", "16 ", "-1", "+1", "", "1".repeat(31), "1".repeat(4_000_000), "1.5"]) {
      const result = decode(Credits, text)
      expect(Either.isLeft(result), text.slice(0, 40)).toBe(true)
      if (Either.isLeft(result)) expect(result.left.message).toContain(refusal)
    }
    expect(Either.isLeft(decode(PositiveCredits, "0"))).toBe(true)
    // What the node recorded (a refused negative amount, a balance past 30 digits) still crosses back.
    const refused = new InvalidAmount({ amount: -5n, reason: "must be positive" })
    expect(Schema.decodeUnknownSync(InvalidAmount)(Schema.encodeSync(InvalidAmount)(refused))).toEqual(refused)
  })
})
