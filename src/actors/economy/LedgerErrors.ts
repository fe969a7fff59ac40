/**
 * What the ledger refuses, as typed errors that cross RPC: the economy's answer to any subsystem
 * that moves rUv through it (the market's swaps, the auctions' deposits, stake and rewards).
 */
import { Schema } from "effect"
import { RecordedCredits } from "../../domain/Money.js"

export class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  available: RecordedCredits,
  requested: RecordedCredits
}) {
  override get message() {
    return `insufficient funds: ${this.requested} rUv requested, ${this.available} available`
  }
}

export class InvalidAmount
  extends Schema.TaggedError<InvalidAmount>()("InvalidAmount", { amount: RecordedCredits, reason: Schema.String })
{
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
