/**
 * The journal in process memory, for tests and throwaway nodes. Same contract as the SQLite journal,
 * chain and signed heads included, so audit code runs unchanged against it.
 */
import { Clock, Duration, Effect, Either, Layer } from "effect"
import { NodeKey } from "../content/NodeKey.js"
import { ChangeSignal, followLog } from "./ChangeSignal.js"
import type { Envelope, StoredRecord } from "./Envelope.js"
import { chainLinkOf, envelopeHash, GENESIS_HASH, headMessage, loggedLinkOf, recordToEnvelope } from "./Envelope.js"
import type { AppendRefused, AppendRequest, AppendResult, JournalService, SignedHead } from "./Journal.js"
import {
  checkExpectedVersion,
  DEFAULT_MAX_PAYLOAD_BYTES,
  Journal,
  PayloadTooLarge,
  sizedPayloads,
  VersionConflict
} from "./Journal.js"

export interface MemoryJournalOptions {
  /** Largest canonical payload of one event, in bytes (default 256 KiB). */
  readonly maxPayloadBytes?: number | undefined
}

export const makeWith = (options: MemoryJournalOptions = {}) =>
  Effect.gen(function*() {
    const key = yield* NodeKey
    const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES
    // Stored as the SQLite journal stores them (payload text), and parsed on every read the same way.
    const log: Array<StoredRecord> = []
    const heads: Array<SignedHead> = []
    const streams = new Map<string, Array<StoredRecord>>()
    const signal = new ChangeSignal()

    const lastHash = () => log[log.length - 1]?.hash ?? GENESIS_HASH

    // Synchronous from start to end: JavaScript runs it to completion, which makes it one transaction.
    const commit = (requests: ReadonlyArray<AppendRequest>, recordedAt: string) => {
      const outcomes: Array<Either.Either<AppendResult, AppendRefused>> = []
      const before = log.length
      let previousWritten = true
      for (const [index, request] of requests.entries()) {
        const stream = streams.get(request.streamId) ?? []
        const conflict = request.onlyAfterPrevious === true && index > 0 && !previousWritten
          ? new VersionConflict({
            streamId: request.streamId,
            expected: request.expectedVersion,
            actual: stream.length
          })
          : checkExpectedVersion(request.streamId, request.expectedVersion, stream.length)
        if (conflict !== undefined) {
          outcomes.push(Either.left(conflict))
          previousWritten = false
          continue
        }
        const sized = sizedPayloads(request, maxPayloadBytes)
        if (sized instanceof PayloadTooLarge) {
          outcomes.push(Either.left(sized))
          previousWritten = false
          continue
        }
        previousWritten = true
        const payloadTexts = sized
        const authorization = request.authorization ?? null
        const authorizationText = authorization === null ? null : authorization.text
        const envelopes: Array<Envelope> = []
        for (const [i, event] of request.events.entries()) {
          const payloadText = payloadTexts[i]!
          const fields = {
            position: log.length + 1,
            streamId: request.streamId,
            streamVersion: stream.length + 1,
            eventType: event.eventType,
            payloadText,
            recordedAt,
            nodeId: key.nodeId,
            commandId: request.commandId ?? null,
            causationId: request.causationId ?? null,
            authorizationText,
            prevHash: lastHash()
          }
          const record: StoredRecord = { ...fields, hash: envelopeHash(fields) }
          log.push(record)
          stream.push(record)
          envelopes.push(recordToEnvelope(record))
        }
        streams.set(request.streamId, stream)
        outcomes.push(Either.right({ streamId: request.streamId, streamVersion: stream.length, envelopes }))
      }
      if (log.length > before) {
        const hash = lastHash()
        heads.push({
          position: log.length,
          hash,
          publicKey: key.publicKey,
          signature: key.sign(headMessage(log.length, hash))
        })
        signal.notify()
      }
      return outcomes
    }

    const appendBatch = (requests: ReadonlyArray<AppendRequest>) =>
      Clock.currentTimeMillis.pipe(Effect.map((now) => commit(requests, new Date(now).toISOString())))

    /** `limit` entries from the 1-based `from` on. */
    const page = <A>(entries: ReadonlyArray<A>, from: number, limit: number) =>
      entries.slice(Math.max(0, from - 1), Math.max(0, from - 1) + limit)

    const readAll = (fromPosition: number, limit: number) =>
      Effect.sync(() => page(log, fromPosition, limit).map(recordToEnvelope))

    const service: JournalService = {
      append: (streamId, expectedVersion, events, options = {}) =>
        appendBatch([{ streamId, expectedVersion, events, ...options }]).pipe(
          Effect.flatMap((outcomes) => outcomes[0]!)
        ),
      appendBatch,
      readStream: (streamId, fromVersion = 1, limit = Number.MAX_SAFE_INTEGER) =>
        Effect.sync(() => page(streams.get(streamId) ?? [], fromVersion, limit).map(recordToEnvelope)),
      readAll,
      readRecords: (fromPosition, limit) => Effect.sync(() => page(log, fromPosition, limit)),
      readLoggedEvents: (fromPosition, limit) => Effect.sync(() => page(log, fromPosition, limit)),
      readChainLinks: (fromPosition, limit) => Effect.sync(() => page(log, fromPosition, limit).map(chainLinkOf)),
      readLoggedLinks: (fromPosition, limit) => Effect.sync(() => page(log, fromPosition, limit).map(loggedLinkOf)),
      subscribe: (fromPosition) => followLog(readAll, signal, fromPosition, Duration.seconds(1)),
      head: Effect.sync(() => ({ position: log.length, hash: lastHash() })),
      signedHeads: (fromPosition, limit) =>
        Effect.sync(() => heads.filter((head) => head.position >= fromPosition).slice(0, limit)),
      streamVersion: (streamId) => Effect.sync(() => streams.get(streamId)?.length ?? 0),
      // Nothing outside the process to cut the log short: no record needed.
      recordedHead: Effect.succeed({ _tag: "Missing" })
    }
    return service
  })

export const make = makeWith()

export const layer = Layer.effect(Journal, make)

/** The memory journal with options (a payload size limit other than 256 KiB). */
export const layerWith = (options: MemoryJournalOptions) => Layer.effect(Journal, makeWith(options))
