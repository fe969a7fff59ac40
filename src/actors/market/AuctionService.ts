/**
 * Task auctions: open, sealed commits with a deposit, reveals, resolution, and the lease's outcome.
 * The auction decides first; deposits, refunds, forfeits and the lease move through the Ledger under
 * ids derived from the auction, so the policies in AuctionPolicies.ts can finish any of them again.
 */
import { Clock, Context, Effect, Layer, Schema } from "effect"
import { canonicalize } from "../../domain/CanonicalJson.js"
import { streamEntityId } from "../../domain/Ids.js"
import type { AuditFolds } from "../../events/ActorRegistry.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { Envelope } from "../../events/Envelope.js"
import type { VersionConflict } from "../../events/Journal.js"
import { Ledger } from "../economy/Ledger.js"
import type { LedgerError } from "../economy/LedgerErrors.js"
import { InsufficientFunds } from "../economy/LedgerErrors.js"
import { NetworkParameters } from "../economy/NetworkParameters.js"
import type { AuctionCommand, AuctionError, AuctionEvent, AuctionState } from "./TaskAuction.js"
import {
  AuctionClosed,
  AuctionEvent as AuctionEventSchema,
  AuctionExists,
  AuctionNotFound,
  AuctionStatus,
  BidRefused,
  depositHoldIdOf,
  escrowAccountOf,
  FailureReason,
  isCommitment,
  leaseHoldIdOf,
  NotEligible,
  NotPermitted,
  OutsideWindow,
  TaskAuction
} from "./TaskAuction.js"

export const TREASURY_ACCOUNT = "treasury"

/** Who may bid: the economy plugs in "active stake >= minStake" here. */
export interface BidEligibilityService {
  readonly canBid: (node: string) => Effect.Effect<boolean>
}

export class BidEligibility extends Context.Tag("edge-net/BidEligibility")<BidEligibility, BidEligibilityService>() {
  /** Everyone may bid: for tests, until the economy's stake check is wired in. */
  static readonly permissive = Layer.succeed(BidEligibility, { canBid: () => Effect.succeed(true) })
}

export interface OpenRequest {
  readonly auctionId: string
  readonly poster: string
  readonly task: unknown
  /** The most the poster will pay, in rUv; bids above it are refused at reveal. */
  readonly maxPrice: bigint
  readonly minBids: number
  readonly commitPeriodMs: number
  readonly revealPeriodMs: number
  /** Time the winner has, after the reveal deadline, before anyone may report a timeout. */
  readonly leasePeriodMs: number
}

export const BidView = Schema.Struct({
  bidder: Schema.String,
  commitment: Schema.String,
  deposit: Schema.BigInt,
  sequence: Schema.Number,
  committedAt: Schema.Number,
  price: Schema.NullOr(Schema.BigInt),
  revealedAt: Schema.NullOr(Schema.Number)
})
export type BidView = typeof BidView.Type

export const AuctionView = Schema.Struct({
  auctionId: Schema.String,
  status: AuctionStatus,
  poster: Schema.String,
  task: Schema.Unknown,
  maxPrice: Schema.BigInt,
  minBids: Schema.Number,
  commitDeadline: Schema.Number,
  revealDeadline: Schema.Number,
  leaseDeadline: Schema.Number,
  bidDepositRuv: Schema.BigInt,
  parametersVersion: Schema.Number,
  bids: Schema.Array(BidView),
  winner: Schema.NullOr(Schema.String),
  price: Schema.NullOr(Schema.BigInt),
  failure: Schema.NullOr(FailureReason),
  version: Schema.Number
})
export type AuctionView = typeof AuctionView.Type

const commandId = (auctionId: string, step: string) => `auction/${auctionId}/${step}`
/** Complete, Fail and the unfunded lease share one id: a lease ends one way only. */
const leaseCommandId = (auctionId: string) => commandId(auctionId, "lease")
const decodeEvent = Schema.decodeUnknown(AuctionEventSchema)

export type SettlementError = LedgerError | AuctionError | VersionConflict

const toView = (auctionId: string, state: AuctionState, version: number): AuctionView => {
  const terms = state.terms!
  return {
    auctionId,
    status: state.status,
    poster: terms.poster,
    task: terms.task,
    maxPrice: terms.maxPrice,
    minBids: terms.minBids,
    commitDeadline: terms.commitDeadline,
    revealDeadline: terms.revealDeadline,
    leaseDeadline: terms.leaseDeadline,
    bidDepositRuv: terms.bidDepositRuv,
    parametersVersion: terms.parametersVersion,
    bids: Object.entries(state.bids)
      .sort(([, a], [, b]) => a.sequence - b.sequence)
      .map(([bidder, bid]) => ({
        bidder,
        commitment: bid.commitment,
        deposit: bid.deposit,
        sequence: bid.sequence,
        committedAt: bid.committedAt,
        price: bid.price,
        revealedAt: bid.revealedAt
      })),
    winner: state.winner,
    price: state.price,
    failure: state.failure,
    version
  }
}

/** Whether an open request asks for the auction that is already open (a retry), judged by its recorded terms. */
const sameTerms = (request: OpenRequest, terms: AuctionState["terms"]) =>
  terms !== null && terms.poster === request.poster && terms.maxPrice === request.maxPrice &&
  terms.minBids === request.minBids &&
  terms.commitDeadline - terms.at === request.commitPeriodMs &&
  terms.revealDeadline - terms.commitDeadline === request.revealPeriodMs &&
  terms.leaseDeadline - terms.revealDeadline === request.leasePeriodMs &&
  taskText(terms.task) === taskText(request.task)

// A task is JSON as recorded; anything that is not (no JSON form) never equals a recorded task.
const taskText = (task: unknown) => {
  try {
    return canonicalize(task ?? null)
  } catch {
    return Symbol("not JSON")
  }
}

export class Auctions extends Effect.Service<Auctions>()("edge-net/Auctions", {
  effect: Effect.gen(function*() {
    const auctions = yield* ActorRunner.make(TaskAuction, { snapshotEvery: 50 })
    const ledger = yield* Ledger
    const parameters = yield* NetworkParameters
    const eligibility = yield* BidEligibility

    const existing = (auctionId: string) =>
      Effect.flatMap(
        auctions.state(auctionId),
        ({ state, version }) =>
          state.terms === null
            ? Effect.fail(new AuctionNotFound({ auctionId }))
            : Effect.succeed({ state, terms: state.terms, version })
      )

    const send = (auctionId: string, command: AuctionCommand, step: string) =>
      auctions.send(auctionId, command, { commandId: step })

    /** A hold already gone is fine for a release; for a capture it is an anomaly worth a log line, not an endless retry. */
    const ignoreUnknownHold = <A, E extends { readonly _tag: string }, R>(
      effect: Effect.Effect<A, E, R>,
      anomaly?: string
    ) =>
      Effect.catchIf(
        Effect.asVoid(effect),
        (error) => error._tag === "UnknownHold",
        () => (anomaly === undefined ? Effect.void : Effect.logError(anomaly))
      )

    /** Funds the lease on the poster's account; a poster who cannot pay fails the lease instead. */
    const openLease = (auctionId: string, poster: string, price: bigint) =>
      ledger.hold(poster, leaseHoldIdOf(auctionId), price).pipe(
        Effect.asVoid,
        Effect.catchTag(
          "InsufficientFunds",
          () =>
            send(auctionId, { _tag: "MarkUnfunded" }, leaseCommandId(auctionId)).pipe(
              Effect.flatMap((result) => settleAll(auctionId, result.events))
            )
        )
      )

    /** The ledger leg of one auction event; each step is idempotent under its own id. */
    const settle = (auctionId: string, event: AuctionEvent): Effect.Effect<void, SettlementError> =>
      Effect.gen(function*() {
        const escrow = escrowAccountOf(auctionId)
        switch (event._tag) {
          case "BidCommitted":
            if (event.deposit > 0n) {
              yield* ignoreUnknownHold(
                ledger.capture(event.bidder, depositHoldIdOf(auctionId, event.bidder), escrow, event.deposit),
                `auction ${auctionId}: the deposit hold of ${event.bidder} is gone`
              )
            }
            return
          case "AuctionResolved":
          case "AuctionCancelled": {
            for (const bid of event.bids) {
              if (bid.deposit === 0n) continue
              yield* bid.outcome === "refunded"
                ? ledger.transfer(escrow, bid.bidder, bid.deposit, commandId(auctionId, `refund/${bid.bidder}`))
                : ledger.transfer(escrow, TREASURY_ACCOUNT, bid.deposit, commandId(auctionId, `forfeit/${bid.bidder}`))
            }
            if (event._tag === "AuctionResolved") {
              const { terms } = yield* existing(auctionId)
              yield* openLease(auctionId, terms.poster, event.price)
            }
            return
          }
          case "LeaseCompleted": {
            const { terms } = yield* existing(auctionId)
            yield* ignoreUnknownHold(
              ledger.capture(terms.poster, leaseHoldIdOf(auctionId), event.winner, event.price),
              `auction ${auctionId}: the lease was completed without its hold`
            )
            return
          }
          case "LeaseFailed": {
            const { terms } = yield* existing(auctionId)
            yield* ignoreUnknownHold(ledger.release(terms.poster, leaseHoldIdOf(auctionId)))
            return
          }
          default:
            return
        }
      })

    const settleAll = (auctionId: string, events: ReadonlyArray<AuctionEvent>): Effect.Effect<void, SettlementError> =>
      Effect.forEach(events, (event) => settle(auctionId, event), { discard: true })

    const state = Effect.fn("Auctions.state")(function*(auctionId: string) {
      const { state: current, version } = yield* existing(auctionId)
      return toView(auctionId, current, version)
    })

    /** Opens an auction with the market's bid deposit in force; the poster must be able to pay its maximum price. */
    const open = Effect.fn("Auctions.open")(function*(request: OpenRequest) {
      const market = yield* parameters.current("market")
      const funds = yield* ledger.balance(request.poster)
      if (funds.available < request.maxPrice) {
        return yield* Effect.fail(new InsufficientFunds({ available: funds.available, requested: request.maxPrice }))
      }
      const result = yield* send(request.auctionId, {
        _tag: "Open",
        ...request,
        bidDepositRuv: market.values["bidDepositRuv"]!,
        parametersVersion: market.version
      }, commandId(request.auctionId, "open"))
      // The open's command id is the auction's: a resend answers as the first open did, but other terms under the same id are another auction.
      if (result.duplicate && !sameTerms(request, result.state.terms)) {
        return yield* Effect.fail(new AuctionExists({ auctionId: request.auctionId }))
      }
      return toView(request.auctionId, result.state, result.version)
    })

    /**
     * A sealed bid: eligibility, the deposit held, the auction's decision, the deposit captured into the
     * auction's escrow. A retry after a crash completes the bid, or (once refused) returns the deposit.
     */
    const commit = Effect.fn("Auctions.commit")(function*(auctionId: string, bidder: string, commitment: string) {
      const { state: current, terms } = yield* existing(auctionId)
      if (current.status !== "open") {
        return yield* Effect.fail(new AuctionClosed({ auctionId, action: "commit", status: current.status }))
      }
      const now = yield* Clock.currentTimeMillis
      if (now >= terms.commitDeadline) {
        return yield* Effect.fail(
          new OutsideWindow({ action: "commit", at: now, opensAt: terms.at, closesAt: terms.commitDeadline })
        )
      }
      if (!(yield* eligibility.canBid(bidder))) return yield* Effect.fail(new NotEligible({ node: bidder }))
      // Refusals the decider would make anyway, checked before any deposit is held: a held-then-refused bid cannot be retried.
      if (!isCommitment(commitment)) {
        return yield* Effect.fail(new BidRefused({ bidder, reason: "a commitment is a sha256 in hex" }))
      }
      if (bidder === terms.poster) {
        return yield* Effect.fail(
          new NotPermitted({ who: bidder, action: "bid", reason: "the poster cannot bid on its own task" })
        )
      }
      const deposit = terms.bidDepositRuv
      const step = commandId(auctionId, `commit/${bidder}`)
      if (deposit > 0n && !(bidder in current.bids)) {
        const holdId = depositHoldIdOf(auctionId, bidder)
        const held = yield* ledger.hold(bidder, holdId, deposit)
        if (held.holds[holdId] === undefined) {
          return yield* Effect.fail(
            new NotPermitted({
              who: bidder,
              action: "bid again",
              reason: "this bid was refused earlier and its deposit returned"
            })
          )
        }
        const result = yield* send(auctionId, { _tag: "Commit", bidder, commitment }, step).pipe(
          Effect.tapError(() => ignoreUnknownHold(ledger.release(bidder, holdId)).pipe(Effect.ignore))
        )
        yield* settleAll(auctionId, result.events)
        return toView(auctionId, result.state, result.version)
      }
      // Already committed (a retry) or no deposit: the decision alone, deduplicated by the step id.
      const result = yield* send(auctionId, { _tag: "Commit", bidder, commitment }, step)
      yield* settleAll(auctionId, result.events)
      return toView(auctionId, result.state, result.version)
    })

    const reveal = Effect.fn("Auctions.reveal")(
      function*(auctionId: string, bidder: string, price: bigint, salt: string) {
        yield* existing(auctionId)
        const result = yield* send(
          auctionId,
          { _tag: "Reveal", bidder, price, salt },
          commandId(auctionId, `reveal/${bidder}`)
        )
        return toView(auctionId, result.state, result.version)
      }
    )

    /** After the reveal deadline: winner and price, or cancellation; deposits refunded or forfeited; the lease funded. */
    const resolve = Effect.fn("Auctions.resolve")(function*(auctionId: string) {
      yield* existing(auctionId)
      const result = yield* send(auctionId, { _tag: "Resolve" }, commandId(auctionId, "resolve"))
      yield* settleAll(auctionId, result.events).pipe(
        Effect.catchAll((error) => Effect.logWarning(`auction ${auctionId}: settlement left to the policy`, error))
      )
      return yield* state(auctionId)
    })

    /** The poster accepts the result: the lease hold pays the winner. */
    const complete = Effect.fn("Auctions.complete")(function*(auctionId: string, by: string) {
      const { state: current, terms } = yield* existing(auctionId)
      if (current.status === "resolved" && by === terms.poster) {
        // Fund the lease first (a no-op when the policy already did), so the capture always finds its hold.
        yield* ledger.hold(terms.poster, leaseHoldIdOf(auctionId), current.price!)
      }
      const result = yield* send(auctionId, { _tag: "Complete", by }, leaseCommandId(auctionId)).pipe(
        // Refused because the lease ended meanwhile: do not leave the hold just made behind.
        Effect.tapError(() =>
          Effect.flatMap(
            existing(auctionId),
            ({ state: after }) =>
              after.status === "failed"
                ? ignoreUnknownHold(ledger.release(terms.poster, leaseHoldIdOf(auctionId)))
                : Effect.void
          ).pipe(Effect.ignore)
        )
      )
      yield* settleAll(auctionId, result.events).pipe(Effect.orDie)
      const event = result.events[0]
      if (event?._tag !== "LeaseCompleted") {
        return yield* Effect.fail(
          new AuctionClosed({ auctionId, action: "complete the lease", status: result.state.status })
        )
      }
      return toView(auctionId, result.state, result.version)
    })

    /** The poster rejects the result, or anyone reports that the lease deadline passed: the hold returns to the poster. */
    const fail = Effect.fn("Auctions.fail")(
      function*(auctionId: string, by: string, reason: "incorrectResult" | "challengeTimeout") {
        yield* existing(auctionId)
        const result = yield* send(auctionId, { _tag: "Fail", by, reason }, leaseCommandId(auctionId))
        yield* settleAll(auctionId, result.events).pipe(Effect.orDie)
        const event = result.events[0]
        if (event?._tag !== "LeaseFailed") {
          return yield* Effect.fail(
            new AuctionClosed({ auctionId, action: "fail the lease", status: result.state.status })
          )
        }
        return toView(auctionId, result.state, result.version)
      }
    )

    /**
     * The rUv each auction's escrow account should hold, folded from the log alone, for the audit's books:
     * deposits while the auction is open; resolution or cancellation refunds or forfeits them all.
     */
    const escrowAccountsFromLog = Effect.fn("Auctions.escrowAccountsFromLog")(function*(folds?: AuditFolds) {
      const owed = new Map<string, bigint>()
      for (const [auctionId, { state }] of yield* auctions.replayedIn(folds)) {
        owed.set(
          escrowAccountOf(auctionId),
          state.status === "open" ? Object.values(state.bids).reduce((sum, bid) => sum + bid.deposit, 0n) : 0n
        )
      }
      return owed as ReadonlyMap<string, bigint>
    })

    /** For the policies: the ledger leg of one stored auction event. */
    const settleEnvelope = (envelope: Envelope) =>
      Effect.flatMap(
        Effect.orDie(decodeEvent(envelope.payload)),
        (event) => settle(streamEntityId(envelope.streamId), event)
      )

    return {
      state,
      open,
      commit,
      reveal,
      resolve,
      complete,
      fail,
      settle,
      settleEnvelope,
      escrowAccountsFromLog
    } as const
  })
}) {}
