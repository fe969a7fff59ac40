/**
 * The embedded journal: events, signed heads and the chain in one SQLite file. Appends from
 * concurrent fibers are queued and committed together by one writer fiber (group commit), so many
 * small commands pay for one transaction and one head signature.
 */
import type Database from "better-sqlite3"
import { Clock, Deferred, Duration, Effect, Either, Exit, FiberId, Layer } from "effect"
import { NodeKey } from "../content/NodeKey.js"
import { ChangeSignal, followLog } from "./ChangeSignal.js"
import type { Envelope, StoredRecord } from "./Envelope.js"
import { canonicalPayload, envelopeHash, GENESIS_HASH, headMessage } from "./Envelope.js"
import type { AppendRequest, AppendResult, ChainHead, JournalService, SignedHead } from "./Journal.js"
import { checkExpectedVersion, Journal, VersionConflict } from "./Journal.js"
import { SqliteDatabase } from "./SqliteDatabase.js"

export interface SqliteJournalOptions {
  /** How often a caught-up subscriber looks for appends made by other processes. */
  readonly pollInterval?: Duration.DurationInput
  /** The most append requests one transaction takes. */
  readonly maxBatch?: number
}

type AppendOutcome = Either.Either<AppendResult, VersionConflict>

interface Batch {
  readonly requests: Array<AppendRequest>
  readonly done: Deferred.Deferred<ReadonlyArray<AppendOutcome>>
}

// Column order of every events query, read in raw (array) mode: no object per row from the driver.
const COLUMNS = "position, stream_id, stream_version, event_type, payload, recorded_at, node_id, command_id, causation_id, prev_hash, hash"
type EventRow = [number, string, number, string, string, string, string, string | null, string | null, string, string]

const rowToRecord = (row: EventRow): StoredRecord => ({
  position: row[0], streamId: row[1], streamVersion: row[2], eventType: row[3], payloadText: row[4], recordedAt: row[5],
  nodeId: row[6], commandId: row[7], causationId: row[8], prevHash: row[9], hash: row[10]
})

export const rowToEnvelope = (row: EventRow): Envelope => ({
  position: row[0], streamId: row[1], streamVersion: row[2], eventType: row[3], payload: JSON.parse(row[4]), recordedAt: row[5],
  nodeId: row[6], commandId: row[7], causationId: row[8], prevHash: row[9], hash: row[10]
})

const prepareStatements = (db: Database.Database) => ({
  lastEvent: db.prepare<[], { position: number; hash: string }>("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"),
  streamVersion: db.prepare<[string], number | null>("SELECT stream_version FROM events WHERE stream_id = ? ORDER BY stream_version DESC LIMIT 1").pluck(),
  insertEvent: db.prepare(
    `INSERT INTO events (position, stream_id, stream_version, event_type, payload, recorded_at, node_id, command_id, causation_id, prev_hash, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  ),
  insertHead: db.prepare("INSERT INTO heads (position, hash, public_key, signature) VALUES (?, ?, ?, ?)"),
  readAll: db.prepare<[number, number], EventRow>(`SELECT ${COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?`).raw(),
  readStream: db
    .prepare<[string, number, number], EventRow>(`SELECT ${COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?`)
    .raw(),
  heads: db.prepare<[number, number], { position: number; hash: string; public_key: string; signature: string }>(
    "SELECT position, hash, public_key, signature FROM heads WHERE position >= ? ORDER BY position LIMIT ?"
  )
})

export const make = (options: SqliteJournalOptions = {}) =>
  Effect.gen(function* () {
    const { db } = yield* SqliteDatabase
    const key = yield* NodeKey
    const statements = prepareStatements(db)
    const signal = new ChangeSignal()
    const pollInterval = options.pollInterval ?? Duration.millis(50)
    const maxBatch = options.maxBatch ?? 1024

    // One transaction for a whole batch of requests. The chain head and stream versions are read
    // inside it (BEGIN IMMEDIATE holds the write lock), so another process's commits are respected.
    const commitBatch = db.transaction((requests: ReadonlyArray<AppendRequest>, recordedAt: string): Array<AppendOutcome> => {
      const last = statements.lastEvent.get()
      let position = last?.position ?? 0
      let prevHash = last?.hash ?? GENESIS_HASH
      const versions = new Map<string, number>()
      const outcomes: Array<AppendOutcome> = []
      for (const request of requests) {
        let version = versions.get(request.streamId)
        if (version === undefined) version = statements.streamVersion.get(request.streamId) ?? 0
        const conflict = checkExpectedVersion(request.streamId, request.expectedVersion, version)
        if (conflict !== undefined) {
          outcomes.push(Either.left(conflict))
          continue
        }
        const commandId = request.commandId ?? null
        const causationId = request.causationId ?? null
        const envelopes: Array<Envelope> = []
        for (const event of request.events) {
          position++
          version++
          const payloadText = canonicalPayload(event.payload)
          const fields = {
            position, streamId: request.streamId, streamVersion: version, eventType: event.eventType, payloadText,
            recordedAt, nodeId: key.nodeId, commandId, causationId, prevHash
          }
          const hash = envelopeHash(fields)
          statements.insertEvent.run(position, request.streamId, version, event.eventType, payloadText, recordedAt, key.nodeId, commandId, causationId, prevHash, hash)
          envelopes.push({
            position, streamId: request.streamId, streamVersion: version, eventType: event.eventType, payload: event.payload,
            recordedAt, nodeId: key.nodeId, commandId, causationId, prevHash, hash
          })
          prevHash = hash
        }
        versions.set(request.streamId, version)
        outcomes.push(Either.right({ streamId: request.streamId, streamVersion: version, envelopes }))
      }
      if (position !== (last?.position ?? 0)) {
        statements.insertHead.run(position, prevHash, key.publicKey, key.sign(headMessage(position, prevHash)))
      }
      return outcomes
    })

    // Group commit, leader and followers: the first append of a batch yields once so that every
    // fiber with an append ready joins it, then commits the whole batch in one transaction.
    let open: Batch | undefined

    const commit = (batch: Batch) =>
      Effect.gen(function* () {
        if (open === batch) open = undefined
        const now = yield* Clock.currentTimeMillis
        // A failed transaction rolled back as a whole: every caller in it learns why.
        let outcomes: Exit.Exit<ReadonlyArray<AppendOutcome>>
        try {
          outcomes = Exit.succeed(commitBatch.immediate(batch.requests, new Date(now).toISOString()))
        } catch (error) {
          outcomes = Exit.die(error)
        }
        yield* Deferred.done(batch.done, outcomes)
        signal.notify()
      })

    const submit = (requests: ReadonlyArray<AppendRequest>): Effect.Effect<ReadonlyArray<AppendOutcome>> =>
      Effect.suspend(() => {
        const leader = open === undefined || open.requests.length >= maxBatch
        const batch = leader ? (open = { requests: [], done: Deferred.unsafeMake(FiberId.none) }) : open!
        const offset = batch.requests.length
        batch.requests.push(...requests)
        const mine = Deferred.await(batch.done).pipe(Effect.map((outcomes) => outcomes.slice(offset, offset + requests.length)))
        // Uninterruptible: followers are waiting on this leader to commit the batch.
        return leader ? Effect.uninterruptible(Effect.yieldNow().pipe(Effect.zipRight(commit(batch)))).pipe(Effect.zipRight(mine)) : mine
      })

    const readAll = (fromPosition: number, limit: number) =>
      Effect.sync(() => statements.readAll.all(fromPosition, limit).map(rowToEnvelope))

    const service: JournalService = {
      append: (streamId, expectedVersion, events, appendOptions = {}) =>
        submit([{ streamId, expectedVersion, events, ...appendOptions }]).pipe(
          Effect.flatMap((outcomes) => outcomes[0]!)
        ),
      appendBatch: (requests) => (requests.length === 0 ? Effect.succeed([]) : submit(requests)),
      readStream: (streamId, fromVersion = 1, limit = Number.MAX_SAFE_INTEGER) =>
        Effect.sync(() => statements.readStream.all(streamId, fromVersion, limit).map(rowToEnvelope)),
      readAll,
      readRecords: (fromPosition, limit) => Effect.sync(() => statements.readAll.all(fromPosition, limit).map(rowToRecord)),
      subscribe: (fromPosition) => followLog(readAll, signal, fromPosition, pollInterval),
      head: Effect.sync((): ChainHead => {
        const last = statements.lastEvent.get()
        return { position: last?.position ?? 0, hash: last?.hash ?? GENESIS_HASH }
      }),
      signedHeads: (fromPosition, limit) =>
        Effect.sync(() =>
          statements.heads.all(fromPosition, limit).map(
            (row): SignedHead => ({ position: row.position, hash: row.hash, publicKey: row.public_key, signature: row.signature })
          )
        ),
      streamVersion: (streamId) => Effect.sync(() => statements.streamVersion.get(streamId) ?? 0)
    }
    return service
  })

export const layer = (options: SqliteJournalOptions = {}) => Layer.scoped(Journal, make(options))

export { VersionConflict }
