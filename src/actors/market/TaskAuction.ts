/**
 * A task auction (`Auction-<id>`): sealed-bid, second-price, reverse (the lowest price wins and is paid
 * the second-lowest), by commit and reveal, followed by the lease of the task to the winner.
 */
import { Clock, Effect, Schema } from "effect"
import * as crypto from "node:crypto"
import { canonicalize } from "../../domain/CanonicalJson.js"
import type { EventSourced } from "../../events/Decider.js"

/** An auction id doubles as part of account and hold ids: no `/`, no `:`. */
export const AuctionId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, {
    message: () => "an auction id is 1-64 letters, digits or _ . @ -, starting with a letter or digit"
  })
)

export const escrowAccountOf = (auctionId: string) => `escrow:auction:${auctionId}`
/** The poster's hold that pays the winner: the lease. */
export const leaseHoldIdOf = (auctionId: string) => `auction/${auctionId}`
export const depositHoldIdOf = (auctionId: string, bidder: string) => `auction/${auctionId}/deposit/${bidder}`

export interface SealedBid {
  readonly auctionId: string
  readonly bidder: string
  readonly price: bigint
  readonly salt: string
}

/** sha256 (hex) over the canonical JSON (RFC 8785) of {auctionId, bidder, price (decimal string), salt}. */
export const commitmentOf = (bid: SealedBid): string =>
  crypto.hash(
    "sha256",
    canonicalize({ auctionId: bid.auctionId, bidder: bid.bidder, price: bid.price.toString(), salt: bid.salt }),
    "hex"
  )

const Amount = Schema.BigInt
const Millis = Schema.Number

// Errors a poster or bidder can hit.
export class AuctionNotFound
  extends Schema.TaggedError<AuctionNotFound>()("AuctionNotFound", { auctionId: Schema.String })
{
  override get message() {
    return this.auctionId === "" ? "no such auction" : `no auction ${this.auctionId}`
  }
}

export class AuctionExists extends Schema.TaggedError<AuctionExists>()("AuctionExists", { auctionId: Schema.String }) {
  override get message() {
    return `auction ${this.auctionId} is already open`
  }
}

export class InvalidAuction extends Schema.TaggedError<InvalidAuction>()("InvalidAuction", { reason: Schema.String }) {
  override get message() {
    return `invalid auction: ${this.reason}`
  }
}

export class AuctionClosed extends Schema.TaggedError<AuctionClosed>()("AuctionClosed", {
  auctionId: Schema.String,
  action: Schema.String,
  status: Schema.String
}) {
  override get message() {
    return `cannot ${this.action}: auction ${this.auctionId} is ${this.status}`
  }
}

export class OutsideWindow extends Schema.TaggedError<OutsideWindow>()("OutsideWindow", {
  action: Schema.String,
  at: Millis,
  opensAt: Schema.NullOr(Millis),
  closesAt: Schema.NullOr(Millis)
}) {
  override get message() {
    const iso = (millis: number) => new Date(millis).toISOString()
    if (this.opensAt !== null && this.at < this.opensAt) {
      return `too early to ${this.action}: the window opens at ${iso(this.opensAt)} (now ${iso(this.at)})`
    }
    return `too late to ${this.action}: the window closed at ${iso(this.closesAt ?? this.at)} (now ${iso(this.at)})`
  }
}

export class BidRefused
  extends Schema.TaggedError<BidRefused>()("BidRefused", { bidder: Schema.String, reason: Schema.String })
{
  override get message() {
    return `bid of ${this.bidder} refused: ${this.reason}`
  }
}

export class CommitmentMismatch extends Schema.TaggedError<CommitmentMismatch>()("CommitmentMismatch", {
  bidder: Schema.String,
  commitment: Schema.String,
  revealed: Schema.String
}) {
  override get message() {
    return `reveal of ${this.bidder} rejected: price and salt hash to ${
      this.revealed.slice(0, 12)
    }…, the commitment is ${this.commitment.slice(0, 12)}…`
  }
}

export class NotPermitted extends Schema.TaggedError<NotPermitted>()("NotPermitted", {
  who: Schema.String,
  action: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.who} may not ${this.action}: ${this.reason}`
  }
}

/** Refused by the service before the auction decides: the bidder's stake is below the minimum. */
export class NotEligible extends Schema.TaggedError<NotEligible>()("NotEligible", { node: Schema.String }) {
  override get message() {
    return `${this.node} may not bid: its active stake is below the minimum`
  }
}

export const AuctionError = Schema.Union(
  AuctionNotFound,
  AuctionExists,
  InvalidAuction,
  AuctionClosed,
  OutsideWindow,
  BidRefused,
  CommitmentMismatch,
  NotPermitted
)
export type AuctionError = typeof AuctionError.Type

// Events
export const AuctionOpened = Schema.TaggedStruct("AuctionOpened", {
  auctionId: Schema.String,
  poster: Schema.String,
  /** The task's specification, as JSON. */
  task: Schema.Unknown,
  maxPrice: Amount,
  minBids: Schema.Number,
  commitDeadline: Millis,
  revealDeadline: Millis,
  leaseDeadline: Millis,
  /** The market parameters in force: the deposit each bid locks, and the parameters stream version. */
  bidDepositRuv: Amount,
  parametersVersion: Schema.Number,
  at: Millis
})
export const BidCommitted = Schema.TaggedStruct("BidCommitted", {
  bidder: Schema.String,
  commitment: Schema.String,
  deposit: Amount,
  sequence: Schema.Number,
  at: Millis
})
export const BidRevealed = Schema.TaggedStruct("BidRevealed", {
  bidder: Schema.String,
  price: Amount,
  salt: Schema.String,
  at: Millis
})

export const BidRecord = Schema.Struct({
  bidder: Schema.String,
  commitment: Schema.String,
  deposit: Amount,
  sequence: Schema.Number,
  committedAt: Millis,
  price: Schema.NullOr(Amount),
  salt: Schema.NullOr(Schema.String),
  revealedAt: Schema.NullOr(Millis),
  /** Revealed bids get their deposit back; unrevealed ones forfeit it to the treasury. */
  outcome: Schema.Literal("refunded", "forfeited")
})
export type BidRecord = typeof BidRecord.Type
export const AuctionParameters = Schema.Struct({
  bidDepositRuv: Amount,
  parametersVersion: Schema.Number,
  minBids: Schema.Number,
  maxPrice: Amount
})

export const AuctionResolved = Schema.TaggedStruct("AuctionResolved", {
  winner: Schema.String,
  /** What the winner is paid: the second-lowest revealed price (its own with a single revealed bid). */
  price: Amount,
  bids: Schema.Array(BidRecord),
  refunded: Amount,
  forfeited: Amount,
  parameters: AuctionParameters,
  at: Millis
})
export const AuctionCancelled = Schema.TaggedStruct("AuctionCancelled", {
  reason: Schema.String,
  revealed: Schema.Number,
  bids: Schema.Array(BidRecord),
  refunded: Amount,
  forfeited: Amount,
  parameters: AuctionParameters,
  at: Millis
})
export const LeaseCompleted = Schema.TaggedStruct("LeaseCompleted", {
  winner: Schema.String,
  price: Amount,
  by: Schema.String,
  at: Millis
})
export const FailureReason = Schema.Literal("incorrectResult", "challengeTimeout", "leaseUnfunded")
export type FailureReason = typeof FailureReason.Type
export const LeaseFailed = Schema.TaggedStruct("LeaseFailed", {
  winner: Schema.String,
  price: Amount,
  reason: FailureReason,
  by: Schema.String,
  at: Millis
})
export const AuctionEvent = Schema.Union(
  AuctionOpened,
  BidCommitted,
  BidRevealed,
  AuctionResolved,
  AuctionCancelled,
  LeaseCompleted,
  LeaseFailed
)
export type AuctionEvent = typeof AuctionEvent.Type

export const AuctionStatus = Schema.Literal("new", "open", "resolved", "cancelled", "completed", "failed")
export type AuctionStatus = typeof AuctionStatus.Type
export const BidState = Schema.Struct({
  commitment: Schema.String,
  deposit: Amount,
  sequence: Schema.Number,
  committedAt: Millis,
  price: Schema.NullOr(Amount),
  salt: Schema.NullOr(Schema.String),
  revealedAt: Schema.NullOr(Millis)
})
export type BidState = typeof BidState.Type
export const AuctionState = Schema.Struct({
  status: AuctionStatus,
  terms: Schema.NullOr(AuctionOpened),
  bids: Schema.Record({ key: Schema.String, value: BidState }),
  winner: Schema.NullOr(Schema.String),
  price: Schema.NullOr(Amount),
  failure: Schema.NullOr(FailureReason)
})
export type AuctionState = typeof AuctionState.Type

export type AuctionCommand =
  | {
    readonly _tag: "Open"
    readonly auctionId: string
    readonly poster: string
    readonly task: unknown
    readonly maxPrice: bigint
    readonly minBids: number
    readonly commitPeriodMs: number
    readonly revealPeriodMs: number
    readonly leasePeriodMs: number
    readonly bidDepositRuv: bigint
    readonly parametersVersion: number
  }
  | { readonly _tag: "Commit"; readonly bidder: string; readonly commitment: string }
  | { readonly _tag: "Reveal"; readonly bidder: string; readonly price: bigint; readonly salt: string }
  | { readonly _tag: "Resolve" }
  /** The poster accepts the winner's result. */
  | { readonly _tag: "Complete"; readonly by: string }
  /** The poster rejects the result, or anyone reports the lease deadline passed. */
  | { readonly _tag: "Fail"; readonly by: string; readonly reason: "incorrectResult" | "challengeTimeout" }
  /** Sent by the settlement when the poster cannot fund the lease. */
  | { readonly _tag: "MarkUnfunded" }

export const initialAuctionState: AuctionState = {
  status: "new",
  terms: null,
  bids: {},
  winner: null,
  price: null,
  failure: null
}

/** A commitment is a sha256 in lowercase hex. */
export const isCommitment = (value: string) => /^[0-9a-f]{64}$/.test(value)

/** Revealed bids, best first: lowest price, then earliest commit. */
export const rankedBids = (
  state: AuctionState
): ReadonlyArray<{ readonly bidder: string; readonly bid: BidState & { readonly price: bigint } }> =>
  Object.entries(state.bids)
    .flatMap(([bidder, bid]) => (bid.price === null ? [] : [{ bidder, bid: { ...bid, price: bid.price } }]))
    .sort((a, b) => (a.bid.price < b.bid.price ? -1 : a.bid.price > b.bid.price ? 1 : a.bid.sequence - b.bid.sequence))

const recordsOf = (state: AuctionState): ReadonlyArray<BidRecord> =>
  Object.entries(state.bids)
    .sort(([, a], [, b]) => a.sequence - b.sequence)
    .map(([bidder, bid]) => ({
      bidder,
      ...bid,
      outcome: bid.price === null ? "forfeited" as const : "refunded" as const
    }))

const sum = (records: ReadonlyArray<BidRecord>, outcome: BidRecord["outcome"]) =>
  records.filter((record) => record.outcome === outcome).reduce((total, record) => total + record.deposit, 0n)

const decideOpen = (command: Extract<AuctionCommand, { _tag: "Open" }>, state: AuctionState, at: number) => {
  if (state.status !== "new") return Effect.fail(new AuctionExists({ auctionId: command.auctionId }))
  const problem = command.maxPrice <= 0n ?
    "the maximum price must be positive"
    : !Number.isSafeInteger(command.minBids) || command.minBids < 1 ?
    "at least one bid must be required"
    : [command.commitPeriodMs, command.revealPeriodMs, command.leasePeriodMs].some((period) =>
        !Number.isSafeInteger(period) || period <= 0
      ) ?
    "the commit, reveal and lease periods must be positive"
    : command.bidDepositRuv < 0n ?
    "the bid deposit cannot be negative"
    : undefined
  if (problem !== undefined) return Effect.fail(new InvalidAuction({ reason: problem }))
  const commitDeadline = at + command.commitPeriodMs
  const revealDeadline = commitDeadline + command.revealPeriodMs
  return Effect.succeed([AuctionOpened.make({
    auctionId: command.auctionId,
    poster: command.poster,
    task: command.task,
    maxPrice: command.maxPrice,
    minBids: command.minBids,
    commitDeadline,
    revealDeadline,
    leaseDeadline: revealDeadline + command.leasePeriodMs,
    bidDepositRuv: command.bidDepositRuv,
    parametersVersion: command.parametersVersion,
    at
  })])
}

const decide = (
  command: AuctionCommand,
  state: AuctionState
): Effect.Effect<ReadonlyArray<AuctionEvent>, AuctionError> =>
  Effect.flatMap(Clock.currentTimeMillis, (at): Effect.Effect<ReadonlyArray<AuctionEvent>, AuctionError> => {
    if (command._tag === "Open") return decideOpen(command, state, at)
    const terms = state.terms
    if (terms === null) return Effect.fail(new AuctionNotFound({ auctionId: "" }))
    const closed = (action: string) =>
      Effect.fail(new AuctionClosed({ auctionId: terms.auctionId, action, status: state.status }))
    const outside = (action: string, opensAt: number | null, closesAt: number | null) =>
      Effect.fail(new OutsideWindow({ action, at, opensAt, closesAt }))
    switch (command._tag) {
      case "Commit": {
        if (state.status !== "open") return closed("commit")
        if (at >= terms.commitDeadline) return outside("commit", terms.at, terms.commitDeadline)
        if (command.bidder === terms.poster) {
          return Effect.fail(
            new NotPermitted({ who: command.bidder, action: "bid", reason: "the poster cannot bid on its own task" })
          )
        }
        if (command.bidder in state.bids) {
          return Effect.fail(new BidRefused({ bidder: command.bidder, reason: "one sealed bid per bidder" }))
        }
        if (!isCommitment(command.commitment)) {
          return Effect.fail(new BidRefused({ bidder: command.bidder, reason: "a commitment is a sha256 in hex" }))
        }
        return Effect.succeed([
          BidCommitted.make({
            bidder: command.bidder,
            commitment: command.commitment,
            deposit: terms.bidDepositRuv,
            sequence: Object.keys(state.bids).length,
            at
          })
        ])
      }
      case "Reveal": {
        if (state.status !== "open") return closed("reveal")
        if (at < terms.commitDeadline || at >= terms.revealDeadline) {
          return outside("reveal", terms.commitDeadline, terms.revealDeadline)
        }
        const bid = state.bids[command.bidder]
        if (bid === undefined) {
          return Effect.fail(new BidRefused({ bidder: command.bidder, reason: "no sealed bid to reveal" }))
        }
        if (bid.price !== null) {
          return Effect.fail(new BidRefused({ bidder: command.bidder, reason: "the bid is already revealed" }))
        }
        const revealed = commitmentOf({
          auctionId: terms.auctionId,
          bidder: command.bidder,
          price: command.price,
          salt: command.salt
        })
        if (revealed !== bid.commitment) {
          return Effect.fail(new CommitmentMismatch({ bidder: command.bidder, commitment: bid.commitment, revealed }))
        }
        if (command.price <= 0n || command.price > terms.maxPrice) {
          return Effect.fail(
            new BidRefused({
              bidder: command.bidder,
              reason: `the price ${command.price} is outside 1..${terms.maxPrice} rUv`
            })
          )
        }
        return Effect.succeed([
          BidRevealed.make({ bidder: command.bidder, price: command.price, salt: command.salt, at })
        ])
      }
      case "Resolve": {
        if (state.status !== "open") return closed("resolve")
        if (at < terms.revealDeadline) return outside("resolve", terms.revealDeadline, null)
        const bids = recordsOf(state)
        const ranked = rankedBids(state)
        const common = {
          bids,
          refunded: sum(bids, "refunded"),
          forfeited: sum(bids, "forfeited"),
          at,
          parameters: {
            bidDepositRuv: terms.bidDepositRuv,
            parametersVersion: terms.parametersVersion,
            minBids: terms.minBids,
            maxPrice: terms.maxPrice
          }
        }
        if (ranked.length < terms.minBids) {
          return Effect.succeed([
            AuctionCancelled.make({
              reason: `${ranked.length} revealed bids, ${terms.minBids} required`,
              revealed: ranked.length,
              ...common
            })
          ])
        }
        const price = (ranked[1] ?? ranked[0]!).bid.price
        return Effect.succeed([AuctionResolved.make({ winner: ranked[0]!.bidder, price, ...common })])
      }
      case "Complete": {
        if (state.status !== "resolved") return closed("complete the lease")
        if (command.by !== terms.poster) {
          return Effect.fail(
            new NotPermitted({
              who: command.by,
              action: "complete the lease",
              reason: "only the poster accepts a result"
            })
          )
        }
        return Effect.succeed([LeaseCompleted.make({ winner: state.winner!, price: state.price!, by: command.by, at })])
      }
      case "Fail": {
        if (state.status !== "resolved") return closed("fail the lease")
        if (command.reason === "incorrectResult" && command.by !== terms.poster) {
          return Effect.fail(
            new NotPermitted({
              who: command.by,
              action: "reject the result",
              reason: "only the poster judges a result"
            })
          )
        }
        if (command.reason === "challengeTimeout" && at < terms.leaseDeadline) {
          return outside("report a timeout", terms.leaseDeadline, null)
        }
        return Effect.succeed([
          LeaseFailed.make({ winner: state.winner!, price: state.price!, reason: command.reason, by: command.by, at })
        ])
      }
      case "MarkUnfunded":
        if (state.status !== "resolved") return Effect.succeed([])
        return Effect.succeed([
          LeaseFailed.make({
            winner: state.winner!,
            price: state.price!,
            reason: "leaseUnfunded",
            by: terms.poster,
            at
          })
        ])
    }
  })

const evolve = (state: AuctionState, event: AuctionEvent): AuctionState => {
  switch (event._tag) {
    case "AuctionOpened":
      return { ...state, status: "open", terms: event }
    case "BidCommitted":
      return {
        ...state,
        bids: {
          ...state.bids,
          [event.bidder]: {
            commitment: event.commitment,
            deposit: event.deposit,
            sequence: event.sequence,
            committedAt: event.at,
            price: null,
            salt: null,
            revealedAt: null
          }
        }
      }
    case "BidRevealed": {
      const bid = state.bids[event.bidder]
      if (bid === undefined) return state
      return {
        ...state,
        bids: { ...state.bids, [event.bidder]: { ...bid, price: event.price, salt: event.salt, revealedAt: event.at } }
      }
    }
    case "AuctionResolved":
      return { ...state, status: "resolved", winner: event.winner, price: event.price }
    case "AuctionCancelled":
      return { ...state, status: "cancelled" }
    case "LeaseCompleted":
      return { ...state, status: "completed" }
    case "LeaseFailed":
      return { ...state, status: "failed", failure: event.reason }
  }
}

export const TaskAuction: EventSourced<AuctionCommand, AuctionEvent, AuctionState, AuctionError> = {
  category: "Auction",
  decider: { initialState: initialAuctionState, decide, evolve },
  event: AuctionEvent,
  state: AuctionState
}
