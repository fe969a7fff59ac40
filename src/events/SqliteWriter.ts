/**
 * The journal's writer thread. Commits (hashing, inserts, the head signature, SQLite's WAL writes
 * and any wait on another process's lock) run on a worker thread with its own connection, so the
 * node's event loop keeps serving while the disk works, and the two cores share the load.
 */
import type Database from "better-sqlite3"
import { Effect, Option } from "effect"
import * as path from "node:path"
import type { Worker } from "node:worker_threads"
import type { NodeKeyPair } from "../content/NodeKey.js"
import { moduleWorker } from "../node/ModuleWorker.js"
import { envelopeHash, GENESIS_HASH, headMessage } from "./Envelope.js"
import { type ExpectedVersion, PayloadTooLarge, type SignedHead, sizedPayloads } from "./Journal.js"

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

/** Per written event: position, stream version, prevHash, hash. */
export type WrittenEvent = readonly [number, number, string, string]

export type WriteOutcome =
  | { readonly ok: true; readonly streamVersion: number; readonly events: ReadonlyArray<WrittenEvent> }
  /** The stream was not at the expected version. */
  | { readonly ok: false; readonly actual: number }
  /** An event's canonical payload was over the size limit; nothing of the request was written. */
  | { readonly ok: false; readonly eventType: string; readonly bytes: number; readonly maxBytes: number }

interface WriterMessage {
  readonly id: number
  readonly requests: ReadonlyArray<WriteRequest>
  readonly recordedAt: string
}

type WriterReply = { readonly id: number; readonly outcomes: ReadonlyArray<WriteOutcome> } | {
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
      const sized = sizedPayloads(request, maxPayloadBytes)
      if (sized instanceof PayloadTooLarge) {
        outcomes.push({ ok: false, eventType: sized.eventType, bytes: sized.bytes, maxBytes: sized.maxBytes })
        previousWritten = false
        continue
      }
      previousWritten = true
      const payloadTexts = sized
      const written: Array<WrittenEvent> = []
      for (const [i, event] of request.events.entries()) {
        position++
        version++
        const payloadText = payloadTexts[i]!
        const hash = envelopeHash({
          position,
          streamId: request.streamId,
          streamVersion: version,
          eventType: event.eventType,
          payloadText,
          recordedAt,
          nodeId: key.nodeId,
          commandId: request.commandId,
          causationId: request.causationId,
          authorizationText: request.authorization,
          prevHash
        })
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
        written.push([position, version, prevHash, hash])
        prevHash = hash
      }
      versions.set(request.streamId, version)
      outcomes.push({ ok: true, streamVersion: version, events: written })
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
export const lastSignedHead = (db: Database.Database): Option.Option<SignedHead> =>
  Option.fromNullable(
    db.prepare<[], SignedHead>(
      "SELECT position, hash, public_key AS publicKey, signature FROM heads ORDER BY position DESC LIMIT 1"
    ).get()
  )

export interface WriterThreadData {
  readonly file: string
  readonly seed: Uint8Array
  readonly busyTimeoutMs: number
  readonly synchronous: string
  readonly maxPayloadBytes: number
  /** Where the last signed head is kept outside the database (see JournalHeadFile.ts); null for none. */
  readonly headFile: string | null
}

/** Starts the writer thread; closing the scope lets queued batches finish, then stops it. */
export const startWriter = (data: WriterThreadData) =>
  Effect.acquireRelease(
    Effect.async<Worker, Error>((resume) => {
      const workerData = { ...data, file: path.resolve(data.file) }
      const worker = moduleWorker(import.meta.url, "./SqliteWriterThread", { workerData })
      worker.once("message", (message) =>
        message === "ready"
          ? resume(Effect.succeed(worker))
          : resume(Effect.fail(new Error(String((message as { error?: string }).error ?? message)))))
      worker.once("error", (error) => resume(Effect.fail(error)))
    }),
    (worker) =>
      Effect.async<void>((resume) => {
        worker.once("exit", () => resume(Effect.void))
        worker.postMessage("close")
      }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
  ).pipe(Effect.map(writerClient))

const writerClient = (worker: Worker) => {
  let nextId = 0
  const pending = new Map<number, (reply: WriterReply) => void>()
  let failure: Error | undefined
  const failAll = (error: Error) => {
    failure = error
    for (const [id, settle] of pending) settle({ id, error: error.message })
    pending.clear()
  }
  worker.on("message", (reply: WriterReply) => {
    const settle = pending.get(reply.id)
    pending.delete(reply.id)
    settle?.(reply)
  })
  worker.on("error", failAll)
  worker.on("exit", (code) => failAll(new Error(`journal writer thread exited (code ${code})`)))
  return {
    /** Commits one batch; batches are committed in the order they were sent. */
    commit: (requests: ReadonlyArray<WriteRequest>, recordedAt: string) =>
      Effect.async<ReadonlyArray<WriteOutcome>>((resume) => {
        if (failure !== undefined) return resume(Effect.die(failure))
        const id = nextId++
        pending.set(
          id,
          (reply) => resume("error" in reply ? Effect.die(new Error(reply.error)) : Effect.succeed(reply.outcomes))
        )
        worker.postMessage({ id, requests, recordedAt } satisfies WriterMessage)
      })
  }
}

// tsx is a devDependency: only the from-sources path (tests, `node --import tsx`) ever loads it.
