/**
 * What the journal's writer thread runs: a batch committed in one transaction, hashed, chained and
 * under a signed head. Free of Effect (the thread loads no Effect runtime); SqliteWriter.ts starts the
 * thread and talks to it.
 */
import type Database from "better-sqlite3"
import type { NodeKeyPair } from "../content/NodeKeyPair.js"
import { keyPairFromSeed } from "../content/NodeKeyPair.js"
import { GENESIS_HASH, headMessage, payloadTextsWithin, sharedFieldsHasher } from "./Envelope.js"
import type { ExpectedVersion, SignedHead } from "./Journal.js"
import { initializeHeadFile, makeHeadFileWriter } from "./JournalHeadFile.js"
import { INLINE_CHECKPOINT_PAGES, openDatabase, type Synchronous } from "./SqliteFile.js"

export interface WriteRequest {
  readonly streamId: string
  readonly expectedVersion: ExpectedVersion
  readonly events: ReadonlyArray<{ readonly eventType: string; readonly payload: unknown }>
  readonly commandId: string | null
  readonly causationId: string | null
  /** Canonical JSON of the signed command behind these events, stored and hashed with each of them. */
  readonly authorization: string | null
  /** Written only if the request before it in this batch was (see AppendRequest.onlyAfterPrevious). */
  readonly onlyAfterPrevious: boolean
}

/**
 * A request's events as written: consecutive positions from `position` and stream versions up to
 * `streamVersion`, chained from `prevHash`, their hashes concatenated (64 hex digits each). One string
 * rather than an array of tuples: the reply crosses threads, and cloning a thousand small arrays of
 * strings cost the writer thread about 7% of a batched append.
 */
export interface Written {
  readonly ok: true
  readonly streamVersion: number
  readonly position: number
  readonly prevHash: string
  readonly hashes: string
}

/** The hash of the `index`th event of a written request. */
export const writtenHash = (written: Written, index: number): string =>
  written.hashes.slice(index * 64, index * 64 + 64)

export type WriteOutcome =
  | Written
  /** The stream was not at the expected version. */
  | { readonly ok: false; readonly actual: number }
  /** An event's canonical payload was over the size limit; nothing of the request was written. */
  | { readonly ok: false; readonly eventType: string; readonly bytes: number; readonly maxBytes: number }

export interface WriterMessage {
  readonly id: number
  readonly requests: ReadonlyArray<WriteRequest>
  readonly recordedAt: string
}

export type WriterReply = { readonly id: number; readonly outcomes: ReadonlyArray<WriteOutcome> } | {
  readonly id: number
  readonly error: string
}

const versionMatches = (expected: ExpectedVersion, actual: number) =>
  expected === "any" || (expected === "none" ? actual === 0 : actual === expected)

/**
 * Appends a batch in one IMMEDIATE transaction. The chain head and stream versions are read inside
 * it, under the write lock, so commits by other processes are respected.
 */
export const makeBatchCommitter = (db: Database.Database, key: NodeKeyPair, maxPayloadBytes: number) => {
  const lastEvent = db.prepare<[], { position: number; hash: string }>(
    "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
  )
  const streamVersion = db
    .prepare<[string], number>(
      "SELECT stream_version FROM events WHERE stream_id = ? ORDER BY stream_version DESC LIMIT 1"
    )
    .pluck()
  const insertEvent = db.prepare(
    `INSERT INTO events (position, stream_id, stream_version, event_type, payload, recorded_at, node_id, command_id, causation_id, prev_hash, hash, authorization)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  )
  const insertHead = db.prepare("INSERT INTO heads (position, hash, public_key, signature) VALUES (?, ?, ?, ?)")
  // The head this batch signed, if it wrote anything; read by the caller once the transaction committed.
  let signed: SignedHead | undefined
  const commit = db.transaction((requests: ReadonlyArray<WriteRequest>, recordedAt: string): Array<WriteOutcome> => {
    signed = undefined
    const last = lastEvent.get()
    let position = last?.position ?? 0
    let prevHash = last?.hash ?? GENESIS_HASH
    const versions = new Map<string, number>()
    const outcomes: Array<WriteOutcome> = []
    let previousWritten = true
    for (const request of requests) {
      let version = versions.get(request.streamId) ?? streamVersion.get(request.streamId) ?? 0
      if (!versionMatches(request.expectedVersion, version) || (request.onlyAfterPrevious && !previousWritten)) {
        outcomes.push({ ok: false, actual: version })
        previousWritten = false
        continue
      }
      const sized = payloadTextsWithin(request.events, maxPayloadBytes)
      if ("bytes" in sized) {
        outcomes.push({ ok: false, ...sized, maxBytes: maxPayloadBytes })
        previousWritten = false
        continue
      }
      previousWritten = true
      const payloadTexts = sized
      const first = { position: position + 1, prevHash }
      let hashes = ""
      const hashOf = sharedFieldsHasher({
        streamId: request.streamId,
        recordedAt,
        nodeId: key.nodeId,
        commandId: request.commandId,
        causationId: request.causationId,
        authorizationText: request.authorization
      })
      for (const [i, event] of request.events.entries()) {
        position++
        version++
        const payloadText = payloadTexts[i]!
        const hash = hashOf(event.eventType, payloadText, position, version, prevHash)
        insertEvent.run(
          position,
          request.streamId,
          version,
          event.eventType,
          payloadText,
          recordedAt,
          key.nodeId,
          request.commandId,
          request.causationId,
          prevHash,
          hash,
          request.authorization
        )
        hashes += hash
        prevHash = hash
      }
      versions.set(request.streamId, version)
      outcomes.push({ ok: true, streamVersion: version, ...first, hashes })
    }
    if (position !== (last?.position ?? 0)) {
      signed = {
        position,
        hash: prevHash,
        publicKey: key.publicKey,
        signature: key.sign(headMessage(position, prevHash))
      }
      insertHead.run(signed.position, signed.hash, signed.publicKey, signed.signature)
    }
    return outcomes
  })
  return (requests: ReadonlyArray<WriteRequest>, recordedAt: string) => {
    const outcomes = commit.immediate(requests, recordedAt)
    return { outcomes, head: signed }
  }
}

/** The newest signed head in the database, if any. */
export const lastSignedHead = (db: Database.Database): SignedHead | undefined =>
  db.prepare<[], SignedHead>(
    "SELECT position, hash, public_key AS publicKey, signature FROM heads ORDER BY position DESC LIMIT 1"
  ).get()

export interface WriterThreadData {
  readonly file: string
  readonly seed: Uint8Array
  readonly busyTimeoutMs: number
  readonly synchronous: string
  readonly maxPayloadBytes: number
  /** Where the last signed head is kept outside the database (see JournalHeadFile.ts); null for none. */
  readonly headFile: string | null
}

/** A writer's own connection, its committer, and what keeps its head file (none without one). */
export interface OpenCommitter {
  readonly db: Database.Database
  readonly commit: ReturnType<typeof makeBatchCommitter>
  readonly headFile: ReturnType<typeof makeHeadFileWriter> | undefined
}

/**
 * Opens a writer's connection to the journal of `data` (the thread's, or the event loop's with a
 * `busyTimeoutMs` of its own), records the database's head when no head file exists yet, and makes
 * its committer. Writers checkpoint only should the checkpointer thread fall behind.
 */
export const openCommitter = (data: WriterThreadData, busyTimeoutMs = data.busyTimeoutMs): OpenCommitter => {
  const db = openDatabase({
    file: data.file,
    busyTimeoutMs,
    synchronous: data.synchronous as Synchronous,
    autoCheckpointPages: INLINE_CHECKPOINT_PAGES
  })
  try {
    const hashAt = db.prepare<[number], string>("SELECT hash FROM events WHERE position = ?").pluck()
    const headFile = data.headFile === null
      ? undefined
      : makeHeadFileWriter(data.headFile, (position) => hashAt.get(position))
    if (data.headFile !== null) initializeHeadFile(data.headFile, lastSignedHead(db))
    return { db, commit: makeBatchCommitter(db, keyPairFromSeed(data.seed), data.maxPayloadBytes), headFile }
  } catch (error) {
    db.close()
    throw error
  }
}
