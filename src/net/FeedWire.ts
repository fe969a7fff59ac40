/**
 * What peers say to each other about journals, as Schemas: a feed request and its answer (whole
 * batches, each ending at a signed head), a head announcement, and a fork proof. Everything received
 * is decoded with these before it is used; the feed is served from the journal as stored.
 */
import { Effect, Either, Schema } from "effect"
import { verifySignature } from "../content/NodeKey.js"
import { PublicKeyHex, SignatureHex } from "../domain/SignedCommand.js"
import { headMessage } from "../events/Envelope.js"
import type { StoredRecord } from "../events/Envelope.js"
import { Hash, Position, StoredRecordWire } from "../events/ForkProof.js"
import type { JournalService, SignedHead } from "../events/Journal.js"

export const FEED_PROTOCOL = "/edge-net/feed/1.0.0"

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
    return Either.mapLeft(decode(text), (error) => error.message.split("\n", 1)[0] ?? "malformed")
  }
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
