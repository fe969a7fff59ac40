/**
 * The append-only event log every subsystem writes to and rebuilds its state from. One interface,
 * several stores (SQLite embedded, in-memory); all pass test/events/JournalContract.ts.
 */
import { Context, Schema } from "effect"
import type { Effect, Either, Stream } from "effect"
import type { Authorization } from "./Authorization.js"
import type { ChainLink, Envelope, LoggedEvent, LoggedLink, NewEvent, StoredRecord } from "./Envelope.js"
import { payloadTextsWithin } from "./Envelope.js"

/** `"any"`: no check; `"none"`: the stream must not exist; `n`: the stream must hold exactly n events. */
export type ExpectedVersion = "any" | "none" | number

export class VersionConflict extends Schema.TaggedError<VersionConflict>()("VersionConflict", {
  streamId: Schema.String,
  expected: Schema.Union(Schema.Literal("any", "none"), Schema.Number),
  actual: Schema.Number
}) {
  override get message() {
    return `version conflict on ${this.streamId}: expected ${this.expected}, stream is at ${this.actual}`
  }
}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  streamId: Schema.String,
  eventType: Schema.String,
  bytes: Schema.Number,
  maxBytes: Schema.Number
}) {
  override get message() {
    return `event ${this.eventType} on ${this.streamId} is ${this.bytes} bytes of JSON, more than the journal's limit of ${this.maxBytes}`
  }
}

/** Why an append wrote nothing. */
export type AppendRefused = VersionConflict | PayloadTooLarge

/** The largest canonical payload an event may have, unless a journal layer is given another. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024

export interface AppendOptions {
  readonly commandId?: string | undefined
  readonly causationId?: string | undefined
  /** The signed command that caused these events; its canonical text is stored and hashed with each. */
  readonly authorization?: Authorization | null | undefined
}

export interface AppendRequest extends AppendOptions {
  readonly streamId: string
  readonly expectedVersion: ExpectedVersion
  readonly events: ReadonlyArray<NewEvent>
  /**
   * Written only if the request before it in the same `appendBatch` was (a transfer's credit with
   * its debit); otherwise refused as a conflict at the stream's version. Ignored on a batch's first.
   */
  readonly onlyAfterPrevious?: boolean | undefined
}

export interface AppendResult {
  readonly streamId: string
  /** The stream's version after the append (its number of events). */
  readonly streamVersion: number
  readonly envelopes: ReadonlyArray<Envelope>
}

export interface ChainHead {
  readonly position: number
  readonly hash: string
}

export interface SignedHead extends ChainHead {
  readonly publicKey: string
  readonly signature: string
}

/** The last signed head a journal keeps outside its store, to notice a log cut short with its heads. */
export type RecordedHead =
  | { readonly _tag: "Missing" }
  | { readonly _tag: "Unreadable"; readonly reason: string }
  | { readonly _tag: "Recorded"; readonly head: SignedHead }

export interface JournalService {
  /**
   * Appends atomically; concurrent callers are committed together (group commit). An event whose
   * canonical payload is over the journal's size limit fails the append, and nothing of it is written.
   */
  readonly append: (
    streamId: string,
    expectedVersion: ExpectedVersion,
    events: ReadonlyArray<NewEvent>,
    options?: AppendOptions
  ) => Effect.Effect<AppendResult, AppendRefused>
  /**
   * Appends to several streams in one transaction; a refused request leaves the others written, except
   * those marked `onlyAfterPrevious` right after it.
   */
  readonly appendBatch: (
    requests: ReadonlyArray<AppendRequest>
  ) => Effect.Effect<ReadonlyArray<Either.Either<AppendResult, AppendRefused>>>
  /** Events of one stream from `fromVersion` (1-based, inclusive), at most `limit` of them. */
  readonly readStream: (
    streamId: string,
    fromVersion?: number,
    limit?: number
  ) => Effect.Effect<ReadonlyArray<Envelope>>
  /** The global log from `fromPosition` (1-based, inclusive), at most `limit` envelopes. */
  readonly readAll: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<Envelope>>
  /** Like readAll, in stored form (payload unparsed): for verification and fast replay. */
  readonly readRecords: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<StoredRecord>>
  /** Like readRecords, only what a fold needs of each event: for replaying the log. */
  readonly readLoggedEvents: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<LoggedEvent>>
  /**
   * The chain from `fromPosition`, at most `limit` links: what each event's hash covers, as the store
   * holds it, for verification (SQLite assembles the canonical text itself, in the query).
   */
  readonly readChainLinks: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<ChainLink>>
  /** readLoggedEvents and readChainLinks in one read: for verifying and replaying the log together. */
  readonly readLoggedLinks: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<LoggedLink>>
  /**
   * Catches up from `fromPosition`, then follows live appends, from this process or any other. Every
   * event is delivered; `wanted` names the ones the subscriber acts on, so a store that can may wake it
   * less often for the others (they come with the next wanted one, or within the poll interval).
   */
  readonly subscribe: (fromPosition: number, wanted?: (envelope: Envelope) => boolean) => Stream.Stream<Envelope>
  readonly head: Effect.Effect<ChainHead>
  /** Signed heads from `fromPosition` on, in position order. */
  readonly signedHeads: (fromPosition: number, limit: number) => Effect.Effect<ReadonlyArray<SignedHead>>
  readonly streamVersion: (streamId: string) => Effect.Effect<number>
  /** The head recorded outside the store (SQLite: `journal.head`); "Missing" for stores that keep none. */
  readonly recordedHead: Effect.Effect<RecordedHead>
}

export class Journal extends Context.Tag("edge-net/Journal")<Journal, JournalService>() {}

/**
 * Every event's canonical payload text, or the refusal of the first one over `maxBytes`: all are
 * sized before any is written, so a request is appended whole or not at all.
 */
export const sizedPayloads = (
  request: { readonly streamId: string; readonly events: ReadonlyArray<NewEvent> },
  maxBytes: number
): ReadonlyArray<string> | PayloadTooLarge => {
  const sized = payloadTextsWithin(request.events, maxBytes)
  return "bytes" in sized ? new PayloadTooLarge({ streamId: request.streamId, ...sized, maxBytes }) : sized
}

export const checkExpectedVersion = (
  streamId: string,
  expected: ExpectedVersion,
  actual: number
): VersionConflict | undefined => {
  if (expected === "any") return undefined
  if (expected === "none" ? actual === 0 : actual === expected) return undefined
  return new VersionConflict({ streamId, expected, actual })
}
