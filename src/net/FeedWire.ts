/**
 * What peers say to each other about journals, as Schemas: a feed request and its answer (whole
 * batches, each ending at a signed head), a head announcement, and a fork proof. Everything received
 * is decoded with these before it is used; the feed is served from the journal as stored.
 */
import { Effect, Either, ParseResult, Schema } from "effect"
import { verifySignature } from "../content/NodeKey.js"
import { PublicKeyHex, SignatureHex } from "../domain/SignedCommand.js"
import { headMessage } from "../events/Envelope.js"
import type { StoredRecord } from "../events/Envelope.js"
import { Hash, Position, StoredRecordWire } from "../events/ForkProof.js"
import type { JournalService, SignedHead } from "../events/Journal.js"

/**
 * A follower asks once, from a position, and the source answers with pages one after another on the
 * same stream (each a FeedResponse, whole batches ending at signed heads) until a page with no events,
 * which carries the source's head and ends the answer. The follower checks and stores a page while the
 * next one is read and sent, instead of a round trip per page.
 */
export const FEED_PROTOCOL = "/edge-net/feed/2.0.0"

/** Most events a feed answer carries: a request asks for fewer, and whole batches may add a little. */
export const MAX_FEED_LIMIT = 2_000
/** A batch longer than this many events past a request's limit is served cut at its last head instead. */
const MAX_BATCH_OVERRUN = 8 * MAX_FEED_LIMIT
export const MAX_FEED_RESPONSE_BYTES = 64 * 1024 * 1024

export const SignedHeadWire = Schema.Struct({
  position: Position,
  hash: Hash,
  publicKey: PublicKeyHex,
  signature: SignatureHex
})

export const FeedRequest = Schema.Struct({
  from: Schema.Int.pipe(Schema.positive()),
  limit: Schema.Int.pipe(Schema.between(1, MAX_FEED_LIMIT))
})
export type FeedRequest = typeof FeedRequest.Type

export const FeedResponse = Schema.Struct({
  /** The source's newest signed head, whatever was asked: a follower compares it with what it holds. */
  head: Schema.NullOr(SignedHeadWire),
  records: Schema.Array(StoredRecordWire),
  heads: Schema.Array(SignedHeadWire)
})
export type FeedResponse = typeof FeedResponse.Type

/** A node's signed head, announced on the heads topic of its network. */
export const HeadAnnouncement = SignedHeadWire
export type HeadAnnouncement = typeof HeadAnnouncement.Type

export const headSignatureValid = (head: SignedHead): boolean =>
  verifySignature(head.publicKey, headMessage(head.position, head.hash), head.signature)

const encoder = new TextEncoder()
const decoder = new TextDecoder("utf-8", { fatal: true })

export const encodeJson = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value))

/** A decoding failure as one line: where the first problem is, and what it is. */
const firstIssue = (error: ParseResult.ParseError): string => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issue === undefined) return "malformed"
  const where = issue.path.length === 0 ? "" : `${issue.path.join(".")}: `
  return `${where}${issue.message}`.split("\n", 1)[0]!
}

/** Decodes bytes received from a peer; a message that is not the schema's shape is a one-line Left. */
export const wireDecoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(Schema.parseJson(schema))
  return (bytes: Uint8Array): Either.Either<A, string> => {
    let text: string
    try {
      text = decoder.decode(bytes)
    } catch {
      return Either.left("not UTF-8")
    }
    return Either.mapLeft(decode(text), firstIssue)
  }
}

const HEX64 = /^[0-9a-f]{64}$/
const HEX128 = /^[0-9a-f]{128}$/

const isPosition = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0
const isNullableString = (value: unknown) => value === null || typeof value === "string"

const isSignedHead = (value: unknown): boolean => {
  if (typeof value !== "object" || value === null) return false
  const head = value as Record<string, unknown>
  return isPosition(head.position) && typeof head.hash === "string" && HEX64.test(head.hash) &&
    typeof head.publicKey === "string" && HEX64.test(head.publicKey) && typeof head.signature === "string" &&
    HEX128.test(head.signature)
}

const isStoredRecord = (value: unknown): boolean => {
  if (typeof value !== "object" || value === null) return false
  const record = value as Record<string, unknown>
  return isPosition(record.position) && typeof record.streamId === "string" && isPosition(record.streamVersion) &&
    typeof record.eventType === "string" && typeof record.payloadText === "string" &&
    typeof record.recordedAt === "string" && typeof record.nodeId === "string" &&
    isNullableString(record.commandId) && isNullableString(record.causationId) &&
    isNullableString(record.authorizationText) && typeof record.prevHash === "string" &&
    HEX64.test(record.prevHash) && typeof record.hash === "string" && HEX64.test(record.hash)
}

/** The FeedResponse Schema's checks written out: what it accepts, this accepts (a test holds them together). */
export const isFeedResponse = (value: unknown): value is FeedResponse => {
  if (typeof value !== "object" || value === null) return false
  const page = value as Record<string, unknown>
  return (page.head === null || isSignedHead(page.head)) && Array.isArray(page.records) &&
    page.records.every(isStoredRecord) && Array.isArray(page.heads) && page.heads.every(isSignedHead)
}

const decodeFeedResponseSlowly = wireDecoder(FeedResponse)

/**
 * Decodes a feed page. A page holds thousands of events, and the Schema's decoder took longer over
 * them than checking their hashes: a page is checked by `isFeedResponse` instead, and only one that
 * fails goes through the Schema, for its one-line message.
 */
export const decodeFeedResponse = (bytes: Uint8Array): Either.Either<FeedResponse, string> => {
  let page: unknown
  try {
    page = JSON.parse(decoder.decode(bytes))
  } catch {
    return decodeFeedResponseSlowly(bytes)
  }
  return isFeedResponse(page) ? Either.right(page) : decodeFeedResponseSlowly(bytes)
}

/**
 * The journal's newest signed head, from its heads table: every batch ends at one, so the head of
 * the chain has one. (The head file lags the table by design; a follower must not mistake that lag
 * for a log cut back.)
 */
export const newestSignedHead = (journal: JournalService) =>
  Effect.flatMap(journal.head, (chain) =>
    chain.position === 0
      ? Effect.succeed(undefined)
      : Effect.map(journal.signedHeads(chain.position, 1), ([signed]) => signed))

/**
 * Answers a feed request from the journal: events from `from`, extended to the end of their batch (the
 * next signed head) so the follower can verify all it gets, with the heads among them and the
 * journal's newest signed head.
 */
export const serveFeed = (journal: JournalService, request: FeedRequest) =>
  Effect.gen(function*() {
    const head = (yield* newestSignedHead(journal)) ?? null
    const records: Array<StoredRecord> = [...(yield* journal.readRecords(request.from, request.limit))]
    if (records.length === 0) return { head, records: [], heads: [] } satisfies FeedResponse
    const heads: Array<SignedHead> = [...(yield* journal.signedHeads(request.from, records.length))].filter((h) =>
      h.position <= records[records.length - 1]!.position
    )
    const last = records[records.length - 1]!.position
    if (heads.length === 0 || heads[heads.length - 1]!.position !== last) {
      const [next] = yield* journal.signedHeads(last + 1, 1)
      if (next !== undefined && next.position - last <= MAX_BATCH_OVERRUN) {
        for (const record of yield* journal.readRecords(last + 1, next.position - last)) records.push(record)
        heads.push(next)
      } else {
        // A batch too long to finish here (or not signed yet): serve up to the last head it has.
        const cut = heads.length === 0 ? request.from - 1 : heads[heads.length - 1]!.position
        records.splice(cut - request.from + 1)
      }
    }
    return { head, records, heads } satisfies FeedResponse
  })

/** The pages of a feed from `from` on, encoded, up to and including the first with no events. */
export const feedPages = async function*(journal: JournalService, from: number): AsyncGenerator<Uint8Array> {
  let next = from
  while (true) {
    const page = await Effect.runPromise(serveFeed(journal, { from: next, limit: MAX_FEED_LIMIT }))
    yield encodeJson(page)
    const last = page.records[page.records.length - 1]
    if (last === undefined) return
    next = last.position + 1
  }
}
