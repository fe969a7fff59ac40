/**
 * One rUv account as an event-sourced entity: minted credits, transfers out (debits) and in
 * (credits), escrow holds that are released or captured, and burns (slashing destroys rUv). Its
 * balance can never go negative.
 */
import { Effect, Schema } from "effect"
import { RecordedCredits } from "../../domain/Money.js"
import type { EventSourced } from "../../events/Decider.js"
import { DuplicateHold, InsufficientFunds, InvalidAmount, type LedgerError, UnknownHold } from "./LedgerErrors.js"

// Events
export const Minted = Schema.TaggedStruct("Minted", { amount: RecordedCredits })
export const Debited = Schema.TaggedStruct("Debited", {
  transferId: Schema.String,
  to: Schema.String,
  amount: RecordedCredits
})
export const Credited = Schema.TaggedStruct("Credited", {
  transferId: Schema.String,
  from: Schema.String,
  amount: RecordedCredits
})
export const Held = Schema.TaggedStruct("Held", { holdId: Schema.String, amount: RecordedCredits })
export const Released = Schema.TaggedStruct("Released", { holdId: Schema.String, amount: RecordedCredits })
export const HoldCaptured = Schema.TaggedStruct("HoldCaptured", {
  holdId: Schema.String,
  to: Schema.String,
  amount: RecordedCredits
})
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

const initialState: AccountState = { available: 0n, held: {} }

// Events are written as plain values, not with their Schema's `make`: its validation only checked again
// what the types already say (an amount is a bigint), bounds on amounts are enforced where commands
// enter (Money's schemas) and by the checks below, and on a busy node it cost as much as deciding.

const positive = (amount: bigint) =>
  amount > 0n ? Effect.void : Effect.fail(new InvalidAmount({ amount, reason: "must be positive" }))

const spend = (state: AccountState, amount: bigint) =>
  state.available >= amount
    ? Effect.void
    : Effect.fail(new InsufficientFunds({ available: state.available, requested: amount }))

const decide = (
  command: AccountCommand,
  state: AccountState
): Effect.Effect<ReadonlyArray<AccountEvent>, LedgerError> => {
  switch (command._tag) {
    case "Mint":
      return positive(command.amount).pipe(Effect.as([{ _tag: "Minted" as const, amount: command.amount }]))
    case "Debit":
      return positive(command.amount).pipe(
        Effect.zipRight(spend(state, command.amount)),
        Effect.as([{
          _tag: "Debited" as const,
          transferId: command.transferId,
          to: command.to,
          amount: command.amount
        }])
      )
    case "Credit":
      return positive(command.amount).pipe(
        Effect.as([{
          _tag: "Credited" as const,
          transferId: command.transferId,
          from: command.from,
          amount: command.amount
        }])
      )
    case "Hold":
      if (command.holdId in state.held) return Effect.fail(new DuplicateHold({ holdId: command.holdId }))
      return positive(command.amount).pipe(
        Effect.zipRight(spend(state, command.amount)),
        Effect.as([{ _tag: "Held" as const, holdId: command.holdId, amount: command.amount }])
      )
    case "Release": {
      const held = state.held[command.holdId]
      if (held === undefined) return Effect.fail(new UnknownHold({ holdId: command.holdId }))
      return Effect.succeed([{ _tag: "Released" as const, holdId: command.holdId, amount: held }])
    }
    case "Capture": {
      const held = state.held[command.holdId]
      if (held === undefined) return Effect.fail(new UnknownHold({ holdId: command.holdId }))
      if (command.amount <= 0n || command.amount > held) {
        return Effect.fail(
          new InvalidAmount({ amount: command.amount, reason: `a capture must be between 1 and the ${held} rUv held` })
        )
      }
      const captured = { _tag: "HoldCaptured" as const, holdId: command.holdId, to: command.to, amount: command.amount }
      // Whatever the capture does not take goes back to the account in the same decision.
      return Effect.succeed(
        command.amount === held
          ? [captured]
          : [captured, { _tag: "Released" as const, holdId: command.holdId, amount: held - command.amount }]
      )
    }
    case "Burn":
      return positive(command.amount).pipe(
        Effect.zipRight(spend(state, command.amount)),
        Effect.as([{ _tag: "Burned" as const, operationId: command.operationId, amount: command.amount }])
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
      return {
        ...state,
        held: remaining > 0n ? { ...state.held, [event.holdId]: remaining } : withoutHold(state.held, event.holdId)
      }
    }
  }
}

export const Account: EventSourced<AccountCommand, AccountEvent, AccountState, LedgerError> = {
  category: "Account",
  decider: { initialState, decide, evolve },
  event: AccountEvent,
  state: AccountState
}

export const heldTotal = (state: AccountState): bigint =>
  Object.values(state.held).reduce((sum, amount) => sum + amount, 0n)
