/**
 * One rUv account as an event-sourced entity: minted credits, transfers out (debits) and in
 * (credits), escrow holds that are released or captured, and burns (slashing destroys rUv). Its
 * balance can never go negative.
 */
import { Effect, ParseResult, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

export const AccountId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/, {
    message: () => "an account id is 1-128 letters, digits or _ . : @ -, starting with a letter or digit"
  }),
  Schema.brand("AccountId")
)
export type AccountId = typeof AccountId.Type

/** The longest amount accepted from outside: BigInt() of a 4,000,000-digit string takes the node with it. */
export const MAX_AMOUNT_DIGITS = 30
const plainDecimal = /^[0-9]{1,30}$/

/**
 * An amount of rUv in the smallest unit, as a plain decimal string of at most 30 digits ("0x10", "1e3",
 * " 16" and "-1" are refused, where Schema.BigInt reads them). Encodes as the decimal string, unchecked.
 */
export const Credits = Schema.transformOrFail(Schema.String, Schema.BigIntFromSelf, {
  strict: true,
  decode: (text, _options, ast) =>
    plainDecimal.test(text)
      ? ParseResult.succeed(BigInt(text))
      : ParseResult.fail(new ParseResult.Type(ast, text, `an amount is a whole number of rUv in at most ${MAX_AMOUNT_DIGITS} decimal digits`)),
  encode: (amount) => ParseResult.succeed(amount.toString())
}).annotations({ identifier: "Credits" })
export const PositiveCredits = Credits.pipe(Schema.positiveBigInt({ message: () => "an amount must be a positive whole number of rUv" }))

/**
 * An amount the node itself recorded or computed (an event, a balance, a refused amount): decimal only,
 * signed, up to 4096 digits, so a sum past 30 digits or a refused negative amount always reads back.
 */
export const RecordedCredits = Schema.transformOrFail(Schema.String, Schema.BigIntFromSelf, {
  strict: true,
  decode: (text, _options, ast) =>
    /^-?[0-9]{1,4096}$/.test(text) ? ParseResult.succeed(BigInt(text)) : ParseResult.fail(new ParseResult.Type(ast, text, "a recorded amount is a decimal whole number")),
  encode: (amount) => ParseResult.succeed(amount.toString())
}).annotations({ identifier: "RecordedCredits" })

export const OperationId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,127}$/), Schema.brand("OperationId"))
export type OperationId = typeof OperationId.Type

// Events
export const Minted = Schema.TaggedStruct("Minted", { amount: RecordedCredits })
export const Debited = Schema.TaggedStruct("Debited", { transferId: Schema.String, to: Schema.String, amount: RecordedCredits })
export const Credited = Schema.TaggedStruct("Credited", { transferId: Schema.String, from: Schema.String, amount: RecordedCredits })
export const Held = Schema.TaggedStruct("Held", { holdId: Schema.String, amount: RecordedCredits })
export const Released = Schema.TaggedStruct("Released", { holdId: Schema.String, amount: RecordedCredits })
export const HoldCaptured = Schema.TaggedStruct("HoldCaptured", { holdId: Schema.String, to: Schema.String, amount: RecordedCredits })
/** rUv destroyed (a slash): it leaves the supply, so `minted = available + held + inFlight + burned`. */
export const Burned = Schema.TaggedStruct("Burned", { operationId: Schema.String, amount: RecordedCredits })
export const AccountEvent = Schema.Union(Minted, Debited, Credited, Held, Released, HoldCaptured, Burned)
export type AccountEvent = typeof AccountEvent.Type

export const AccountState = Schema.Struct({
  available: RecordedCredits,
  /** Open escrow holds by id. */
  held: Schema.Record({ key: Schema.String, value: RecordedCredits })
})
export type AccountState = typeof AccountState.Type

export type AccountCommand =
  | { readonly _tag: "Mint"; readonly amount: bigint }
  | { readonly _tag: "Debit"; readonly transferId: string; readonly to: string; readonly amount: bigint }
  | { readonly _tag: "Credit"; readonly transferId: string; readonly from: string; readonly amount: bigint }
  | { readonly _tag: "Hold"; readonly holdId: string; readonly amount: bigint }
  | { readonly _tag: "Release"; readonly holdId: string }
  | { readonly _tag: "Capture"; readonly holdId: string; readonly to: string; readonly amount: bigint }
  | { readonly _tag: "Burn"; readonly operationId: string; readonly amount: bigint }

// Errors a user can hit; they cross RPC as typed failures.
export class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  available: RecordedCredits,
  requested: RecordedCredits
}) {
  override get message() {
    return `insufficient funds: ${this.requested} rUv requested, ${this.available} available`
  }
}

export class InvalidAmount extends Schema.TaggedError<InvalidAmount>()("InvalidAmount", { amount: RecordedCredits, reason: Schema.String }) {
  override get message() {
    return `invalid amount ${this.amount}: ${this.reason}`
  }
}

export class UnknownHold extends Schema.TaggedError<UnknownHold>()("UnknownHold", { holdId: Schema.String }) {
  override get message() {
    return `no open hold ${this.holdId} on this account`
  }
}

export class DuplicateHold extends Schema.TaggedError<DuplicateHold>()("DuplicateHold", { holdId: Schema.String }) {
  override get message() {
    return `hold ${this.holdId} is already open`
  }
}

export const LedgerError = Schema.Union(InsufficientFunds, InvalidAmount, UnknownHold, DuplicateHold)
export type LedgerError = typeof LedgerError.Type

const initialState: AccountState = { available: 0n, held: {} }

const positive = (amount: bigint) =>
  amount > 0n ? Effect.void : Effect.fail(new InvalidAmount({ amount, reason: "must be positive" }))

const spend = (state: AccountState, amount: bigint) =>
  state.available >= amount ? Effect.void : Effect.fail(new InsufficientFunds({ available: state.available, requested: amount }))

const decide = (command: AccountCommand, state: AccountState): Effect.Effect<ReadonlyArray<AccountEvent>, LedgerError> => {
  switch (command._tag) {
    case "Mint":
      return positive(command.amount).pipe(Effect.as([Minted.make({ amount: command.amount })]))
    case "Debit":
      return positive(command.amount).pipe(
        Effect.zipRight(spend(state, command.amount)),
        Effect.as([Debited.make({ transferId: command.transferId, to: command.to, amount: command.amount })])
      )
    case "Credit":
      return positive(command.amount).pipe(
        Effect.as([Credited.make({ transferId: command.transferId, from: command.from, amount: command.amount })])
      )
    case "Hold":
      if (command.holdId in state.held) return Effect.fail(new DuplicateHold({ holdId: command.holdId }))
      return positive(command.amount).pipe(
        Effect.zipRight(spend(state, command.amount)),
        Effect.as([Held.make({ holdId: command.holdId, amount: command.amount })])
      )
    case "Release": {
      const held = state.held[command.holdId]
      if (held === undefined) return Effect.fail(new UnknownHold({ holdId: command.holdId }))
      return Effect.succeed([Released.make({ holdId: command.holdId, amount: held })])
    }
    case "Capture": {
      const held = state.held[command.holdId]
      if (held === undefined) return Effect.fail(new UnknownHold({ holdId: command.holdId }))
      if (command.amount <= 0n || command.amount > held) {
        return Effect.fail(new InvalidAmount({ amount: command.amount, reason: `a capture must be between 1 and the ${held} rUv held` }))
      }
      const captured = HoldCaptured.make({ holdId: command.holdId, to: command.to, amount: command.amount })
      // Whatever the capture does not take goes back to the account in the same decision.
      return Effect.succeed(
        command.amount === held ? [captured] : [captured, Released.make({ holdId: command.holdId, amount: held - command.amount })]
      )
    }
    case "Burn":
      return positive(command.amount).pipe(
        Effect.zipRight(spend(state, command.amount)),
        Effect.as([Burned.make({ operationId: command.operationId, amount: command.amount })])
      )
  }
}

const withoutHold = (held: AccountState["held"], holdId: string) => {
  const { [holdId]: _, ...rest } = held
  return rest
}

const evolve = (state: AccountState, event: AccountEvent): AccountState => {
  switch (event._tag) {
    case "Minted":
    case "Credited":
      return { ...state, available: state.available + event.amount }
    case "Debited":
    case "Burned":
      return { ...state, available: state.available - event.amount }
    case "Held":
      return { available: state.available - event.amount, held: { ...state.held, [event.holdId]: event.amount } }
    case "Released":
      return { available: state.available + event.amount, held: withoutHold(state.held, event.holdId) }
    case "HoldCaptured": {
      const remaining = (state.held[event.holdId] ?? 0n) - event.amount
      return { ...state, held: remaining > 0n ? { ...state.held, [event.holdId]: remaining } : withoutHold(state.held, event.holdId) }
    }
  }
}

export const Account: EventSourced<AccountCommand, AccountEvent, AccountState, LedgerError> = {
  category: "Account",
  decider: { initialState, decide, evolve },
  event: AccountEvent,
  state: AccountState
}

export const heldTotal = (state: AccountState): bigint => Object.values(state.held).reduce((sum, amount) => sum + amount, 0n)
