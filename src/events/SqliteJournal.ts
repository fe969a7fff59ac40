/**
 * The embedded journal: events, signed heads and the chain in one SQLite file. Appends from
 * concurrent fibers are committed together (group commit) by the writer thread, so many small
 * commands pay for one transaction and one head signature; reads use this thread's own connection.
 */
import type Database from "better-sqlite3"
import { Clock, Deferred, Duration, Effect, Either, Exit, FiberId, Layer } from "effect"
import { NodeKey } from "../content/NodeKey.js"
import { ChangeSignal, followLog, RecentTail, sharedPages } from "./ChangeSignal.js"
import type { ChainLink, Envelope, LoggedEvent, LoggedLink, StoredRecord } from "./Envelope.js"
import { GENESIS_HASH } from "./Envelope.js"
import type { AppendRefused, AppendRequest, AppendResult, ChainHead, JournalService, SignedHead } from "./Journal.js"
import { DEFAULT_MAX_PAYLOAD_BYTES, Journal, PayloadTooLarge, VersionConflict } from "./Journal.js"
import { headFileFor, readHeadFile } from "./JournalHeadFile.js"
import { SqliteDatabase } from "./SqliteDatabase.js"
import {
  DEFAULT_INLINE_COMMITS,
  DEFAULT_WRITER_IDLE_STOP,
  type InlineCommits,
  startWriter,
  type WriteOutcome,
  writtenHash
} from "./SqliteWriter.js"

export interface SqliteJournalOptions {
  /** How often a caught-up subscriber looks for appends made by other processes. */
  readonly pollInterval?: Duration.DurationInput
  /** Largest canonical payload of one event, in bytes (default 256 KiB); a bigger one is refused. */
  readonly maxPayloadBytes?: number | undefined
  /** Where the last signed head is also kept; default `journal.head` beside the database, null for none. */
  readonly headFile?: string | null | undefined
  /**
   * How long the writer thread may sit without a batch before it stops (default 30 s; the next append
   * starts another, about 60 ms); null keeps it as long as the journal.
   */
  readonly writerIdleStop?: Duration.DurationInput | null | undefined
  /**
   * When a quiet journal commits on the event loop instead of the thread (default: up to 20 small
   * batches a second, see SqliteWriter.ts); null commits every batch on the thread.
   */
  readonly inlineCommits?: InlineCommits | null | undefined
}

type AppendOutcome = Either.Either<AppendResult, AppendRefused>

interface Batch {
  readonly requests: Array<AppendRequest>
  readonly done: Deferred.Deferred<ReadonlyArray<AppendOutcome>>
}

// Column order of every events query, read in raw (array) mode: no object per row from the driver.
export const COLUMNS =
  "position, stream_id, stream_version, event_type, payload, recorded_at, node_id, command_id, causation_id, prev_hash, hash, authorization"
export type EventRow = [
  number,
  string,
  number,
  string,
  string,
  string,
  string,
  string | null,
  string | null,
  string,
  string,
  string | null
]

export const rowToRecord = (row: EventRow): StoredRecord => ({
  position: row[0],
  streamId: row[1],
  streamVersion: row[2],
  eventType: row[3],
  payloadText: row[4],
  recordedAt: row[5],
  nodeId: row[6],
  commandId: row[7],
  causationId: row[8],
  authorizationText: row[11],
  prevHash: row[9],
  hash: row[10]
})

/**
 * What each event's hash covers, assembled by SQLite from the row: `prev_hash` followed by the envelope's
 * canonical text (Envelope.ts `canonicalEnvelopeText`, keys in RFC 8785 order). The row layout is the
 * canonical form, so the text is built in C from the stored columns and read as one string, instead of
 * twelve strings read and joined in JavaScript: verification then costs what reading and hashing the
 * rows costs (1M events: 3.3 s against 3.9 s joined in JavaScript). json_quote escapes as JSON.stringify
 * does (test/events/SqliteJournal.test.ts holds it to that on arbitrary strings), and the numbers are
 * integers, printed alike. Old files need no migration: the text is rebuilt from the columns they have.
 */
const HASHED_TEXT =
  `prev_hash || (CASE WHEN authorization IS NULL THEN '{' ELSE '{"authorization":' || authorization || ',' END)` +
  ` || '"causationId":' || coalesce(json_quote(causation_id), 'null')` +
  ` || ',"commandId":' || coalesce(json_quote(command_id), 'null')` +
  ` || ',"eventType":' || json_quote(event_type)` +
  ` || ',"nodeId":' || json_quote(node_id)` +
  ` || ',"payload":' || payload` +
  ` || ',"position":' || position` +
  ` || ',"prevHash":' || json_quote(prev_hash)` +
  ` || ',"recordedAt":' || json_quote(recorded_at)` +
  ` || ',"streamId":' || json_quote(stream_id)` +
  ` || ',"streamVersion":' || stream_version || '}'`

const rowToLoggedEvent = (row: [number, string, number, string, string, string]): LoggedEvent => ({
  position: row[0],
  streamId: row[1],
  streamVersion: row[2],
  eventType: row[3],
  payloadText: row[4],
  hash: row[5]
})

type LoggedLinkRow = [number, string, number, string, string, string, string, string]

const rowToLoggedLink = (row: LoggedLinkRow): LoggedLink => ({
  position: row[0],
  streamId: row[1],
  streamVersion: row[2],
  eventType: row[3],
  payloadText: row[4],
  hash: row[5],
  prevHash: row[6],
  hashedText: row[7]
})

const rowToChainLink = (row: [number, string, string, string]): ChainLink => ({
  position: row[0],
  prevHash: row[1],
  hash: row[2],
  hashedText: row[3]
})

const rowToEnvelope = (row: EventRow): Envelope => ({
  position: row[0],
  streamId: row[1],
  streamVersion: row[2],
  eventType: row[3],
  payload: JSON.parse(row[4]),
  recordedAt: row[5],
  nodeId: row[6],
  commandId: row[7],
  causationId: row[8],
  authorization: row[11] === null ? null : JSON.parse(row[11]),
  prevHash: row[9],
  hash: row[10]
})

const prepareStatements = (db: Database.Database) => ({
  lastEvent: db.prepare<[], { position: number; hash: string }>(
    "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
  ),
  streamVersion: db.prepare<[string], number | null>(
    "SELECT stream_version FROM events WHERE stream_id = ? ORDER BY stream_version DESC LIMIT 1"
  ).pluck(),
  readAll: db.prepare<[number, number], EventRow>(
    `SELECT ${COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?`
  ).raw(),
  readLoggedEvents: db.prepare<[number, number], [number, string, number, string, string, string]>(
    "SELECT position, stream_id, stream_version, event_type, payload, hash FROM events WHERE position >= ? ORDER BY position LIMIT ?"
  ).raw(),
  readChainLinks: db.prepare<[number, number], [number, string, string, string]>(
    `SELECT position, prev_hash, hash, ${HASHED_TEXT} FROM events WHERE position >= ? ORDER BY position LIMIT ?`
  ).raw(),
  readLoggedLinks: db.prepare<[number, number], LoggedLinkRow>(
    `SELECT position, stream_id, stream_version, event_type, payload, hash, prev_hash, ${HASHED_TEXT} FROM events WHERE position >= ? ORDER BY position LIMIT ?`
  ).raw(),
  readStream: db
    .prepare<[string, number, number], EventRow>(
      `SELECT ${COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`
    )
    .raw(),
  heads: db.prepare<[number, number], { position: number; hash: string; public_key: string; signature: string }>(
    "SELECT position, hash, public_key, signature FROM heads WHERE position >= ? ORDER BY position LIMIT ?"
  )
})

/** Every read of a journal on `db`: the node's own, or a read-only copy of another node's feed. */
const readsOf = (
  db: Database.Database,
  signal: ChangeSignal,
  pollInterval: Duration.DurationInput,
  headFile: string | null,
  /** The events this process committed last (none for a read-only copy, which commits nothing). */
  recent?: RecentTail
): Omit<JournalService, "append" | "appendBatch"> => {
  const statements = prepareStatements(db)
  const readAll = (fromPosition: number, limit: number) =>
    Effect.sync(() => statements.readAll.all(fromPosition, limit).map(rowToEnvelope))
  const tail = sharedPages(readAll, signal)
  return {
    readStream: (streamId, fromVersion = 1, limit = Number.MAX_SAFE_INTEGER) =>
      Effect.sync(() => statements.readStream.all(streamId, fromVersion, limit).map(rowToEnvelope)),
    readAll,
    readRecords: (fromPosition, limit) =>
      Effect.sync(() => statements.readAll.all(fromPosition, limit).map(rowToRecord)),
    readLoggedEvents: (fromPosition, limit) =>
      Effect.sync(() => statements.readLoggedEvents.all(fromPosition, limit).map(rowToLoggedEvent)),
    readChainLinks: (fromPosition, limit) =>
      Effect.sync(() => statements.readChainLinks.all(fromPosition, limit).map(rowToChainLink)),
    readLoggedLinks: (fromPosition, limit) =>
      Effect.sync(() => statements.readLoggedLinks.all(fromPosition, limit).map(rowToLoggedLink)),
    subscribe: (fromPosition, wanted) => followLog(tail, signal, fromPosition, pollInterval, recent, wanted),
    head: Effect.sync((): ChainHead => {
      const last = statements.lastEvent.get()
      return { position: last?.position ?? 0, hash: last?.hash ?? GENESIS_HASH }
    }),
    signedHeads: (fromPosition, limit) =>
      Effect.sync(() =>
        statements.heads.all(fromPosition, limit).map(
          (row): SignedHead => ({
            position: row.position,
            hash: row.hash,
            publicKey: row.public_key,
            signature: row.signature
          })
        )
      ),
    streamVersion: (streamId) => Effect.sync(() => statements.streamVersion.get(streamId) ?? 0),
    recordedHead: Effect.sync(() => (headFile === null ? { _tag: "Missing" } : readHeadFile(headFile)))
  }
}

/**
 * How far a subscriber's poll backs off with a watcher (watchOtherWriters) waking it for what other
 * processes append: the poll is only a safety net then.
 */
const WATCHED_IDLE_POLL_LIMIT = Duration.seconds(30)

/**
 * Wakes the journal's subscribers when another process appended, found once a poll interval by
 * SQLite's `data_version` (which moves when another connection commits: this process's writer too,
 * so the newest position is read then, and compared with this process's newest commit). One pragma
 * per interval replaces every subscriber's own query: an idle node's ten subscribers asked ten times
 * a second, each query and the fibers around it garbage for the collector.
 */
const watchOtherWriters = (
  db: Database.Database,
  signal: ChangeSignal,
  pollInterval: Duration.DurationInput,
  ownHead: () => number
) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dataVersion = db.prepare<[], number>("PRAGMA data_version").pluck()
      const newest = db.prepare<[], number>("SELECT position FROM events ORDER BY position DESC LIMIT 1").pluck()
      let seen = dataVersion.get()
      const timer = setInterval(() => {
        const version = dataVersion.get()
        if (version === seen) return
        seen = version
        if ((newest.get() ?? 0) > ownHead()) signal.notify()
      }, Duration.toMillis(pollInterval))
      timer.unref()
      return timer
    }),
    (timer) => Effect.sync(() => clearInterval(timer))
  )

export const make = (options: SqliteJournalOptions = {}) =>
  Effect.gen(function*() {
    const database = yield* SqliteDatabase
    const db = database.db
    const key = yield* NodeKey
    const signal = new ChangeSignal(WATCHED_IDLE_POLL_LIMIT)
    const recent = new RecentTail()
    const pollInterval = options.pollInterval ?? Duration.millis(50)
    // Past this process's newest commit, the database holds another process's appends.
    yield* watchOtherWriters(db, signal, pollInterval, () => recent.newest)
    const headFile = options.headFile === undefined ? headFileFor(database.file) : options.headFile

    const writer = yield* startWriter(
      {
        file: database.file,
        seed: key.seed,
        busyTimeoutMs: database.options.busyTimeoutMs ?? 5_000,
        synchronous: database.options.synchronous ?? "normal",
        maxPayloadBytes: options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES,
        headFile
      },
      options.writerIdleStop === undefined ? DEFAULT_WRITER_IDLE_STOP : options.writerIdleStop,
      options.inlineCommits === undefined ? DEFAULT_INLINE_COMMITS : options.inlineCommits
    )

    const toOutcome = (request: AppendRequest, outcome: WriteOutcome, recordedAt: string): AppendOutcome => {
      if (!outcome.ok) {
        return Either.left(
          "actual" in outcome
            ? new VersionConflict({
              streamId: request.streamId,
              expected: request.expectedVersion,
              actual: outcome.actual
            })
            : new PayloadTooLarge({
              streamId: request.streamId,
              eventType: outcome.eventType,
              bytes: outcome.bytes,
              maxBytes: outcome.maxBytes
            })
        )
      }
      const authorization = request.authorization == null ? null : request.authorization.value
      const firstVersion = outcome.streamVersion - request.events.length + 1
      let prevHash = outcome.prevHash
      const envelopes = request.events.map((event, index): Envelope => {
        const hash = writtenHash(outcome, index)
        const envelope: Envelope = {
          position: outcome.position + index,
          streamId: request.streamId,
          streamVersion: firstVersion + index,
          eventType: event.eventType,
          payload: event.payload,
          recordedAt,
          nodeId: key.nodeId,
          commandId: request.commandId ?? null,
          causationId: request.causationId ?? null,
          authorization,
          prevHash,
          hash
        }
        prevHash = hash
        return envelope
      })
      return Either.right({ streamId: request.streamId, streamVersion: outcome.streamVersion, envelopes })
    }

    // Group commit. An append joins the open batch; the first append of a batch leads it: it yields
    // while others are still joining (see gather), then hands the batch to the writer
    // thread. A batch takes at most half of the recent peak of waiting appends, so two batches
    // alternate: one is written while the callers of the other run their next commands here.
    let open: Batch | undefined
    let waiting = 0
    let peakWaiting = 0

    const commit = (batch: Batch) =>
      Effect.gen(function*() {
        if (open === batch) open = undefined
        const recordedAt = new Date(yield* Clock.currentTimeMillis).toISOString()
        const written = yield* Effect.exit(
          writer.commit(
            batch.requests.map((request) => ({
              streamId: request.streamId,
              expectedVersion: request.expectedVersion,
              events: request.events,
              commandId: request.commandId ?? null,
              causationId: request.causationId ?? null,
              authorization: request.authorization == null ? null : request.authorization.text,
              onlyAfterPrevious: request.onlyAfterPrevious === true
            })),
            recordedAt
          )
        )
        waiting -= batch.requests.length
        const outcomes = Exit.map(
          written,
          (outcomes) => outcomes.map((outcome, i) => toOutcome(batch.requests[i]!, outcome, recordedAt))
        )
        // Subscribers take what this batch wrote from memory (in position order: the batch's order).
        const committed: Array<Envelope> = []
        if (Exit.isSuccess(outcomes)) {
          for (const outcome of outcomes.value) {
            if (Either.isRight(outcome)) { for (const envelope of outcome.right.envelopes) committed.push(envelope) }
          }
          recent.add(committed)
        }
        // A failed transaction rolled back as a whole: every caller in the batch learns why.
        yield* Deferred.done(batch.done, outcomes)
        signal.notify(committed)
      })

    const batchCap = () => Math.max(1, Math.ceil(peakWaiting / 2))

    // The leader yields while the batch has room and callers seen recently have not submitted yet
    // (they are still deciding), a bounded number of times: every fiber with an append ready joins.
    const gather = (batch: Batch, yieldsLeft: number): Effect.Effect<void> =>
      Effect.yieldNow().pipe(
        Effect.zipRight(
          Effect.suspend(() =>
            open === batch && yieldsLeft > 0 && batch.requests.length < batchCap() && waiting < peakWaiting
              ? gather(batch, yieldsLeft - 1)
              : Effect.void
          )
        )
      )

    /** Joins (or leads) a batch; `take` picks this caller's outcomes out of the batch's. */
    const submit = <A, E>(
      requests: ReadonlyArray<AppendRequest>,
      take: (outcomes: ReadonlyArray<AppendOutcome>, offset: number) => Effect.Effect<A, E>
    ): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        waiting += requests.length
        // Decays slowly, so a lull of one round does not shrink the batches; a lasting drop in load does.
        peakWaiting = Math.max(waiting, peakWaiting - 1 / 64)
        const leader = open === undefined || open.requests.length >= batchCap()
        const batch = leader ? (open = { requests: [], done: Deferred.unsafeMake(FiberId.none) }) : open!
        const offset = batch.requests.length
        for (const item of requests) batch.requests.push(item)
        const mine = Effect.flatMap(Deferred.await(batch.done), (outcomes) => take(outcomes, offset))
        // Uninterruptible: the batch's other callers wait on its leader to hand it over.
        return leader
          ? Effect.uninterruptible(gather(batch, 8).pipe(Effect.zipRight(commit(batch)))).pipe(Effect.zipRight(mine))
          : mine
      })

    const service: JournalService = {
      ...readsOf(db, signal, pollInterval, headFile, recent),
      append: (streamId, expectedVersion, events, appendOptions = {}) => {
        const request = { streamId, expectedVersion, events, ...appendOptions }
        return submit([request], (outcomes, offset) => outcomes[offset]!)
      },
      appendBatch: (requests) =>
        requests.length === 0
          ? Effect.succeed([])
          : submit(
            // The first request follows another caller's in the writer's batch: its mark means nothing.
            requests[0]!.onlyAfterPrevious === true
              ? [{ ...requests[0]!, onlyAfterPrevious: false }, ...requests.slice(1)]
              : requests,
            (outcomes, offset) => Effect.succeed(outcomes.slice(offset, offset + requests.length))
          )
    }
    return service
  })

export const layer = (options: SqliteJournalOptions = {}) => Layer.scoped(Journal, make(options))

/**
 * A journal that is only read: a copy of another node's feed (events/Replica.ts fills it). Appending
 * to it is a bug, not an input error: nothing of this node may land in another node's log.
 */
export const readOnlyLayer = (options: Pick<SqliteJournalOptions, "pollInterval"> = {}) =>
  Layer.effect(
    Journal,
    Effect.map(SqliteDatabase, (database): JournalService => ({
      ...readsOf(database.db, new ChangeSignal(), options.pollInterval ?? Duration.millis(50), null),
      append: (streamId) =>
        Effect.dieMessage(`${database.file} is a read-only copy of a feed: cannot append to ${streamId}`),
      appendBatch: () => Effect.dieMessage(`${database.file} is a read-only copy of a feed: cannot append`)
    }))
  )

export { VersionConflict }
