/**
 * A verified copy of another node's journal: the same SQLite schema, filled only with whole batches
 * that link to what the copy already holds, hash as stored, and end at a head signed by the feed's
 * key. What a source sends that does not fit is refused and nothing of it is written, so the copy is
 * always a prefix of what the source signed. Because rows are stored byte for byte, the copy verifies
 * and replays with the same code as the node's own journal (`verifyChain`, the actors' replay).
 */
import type Database from "better-sqlite3"
import { Data } from "effect"
import { verifySignature } from "../content/NodeKey.js"
import type { StoredRecord } from "./Envelope.js"
import { envelopeHash, GENESIS_HASH, headMessage } from "./Envelope.js"
import type { ChainHead, SignedHead } from "./Journal.js"
import { openDatabase } from "./SqliteDatabase.js"
import type { EventRow } from "./SqliteJournal.js"
import { COLUMNS, rowToRecord } from "./SqliteJournal.js"

/** Why a batch from a feed was refused; `position` is the first position that does not fit. */
export class ReplicaRefused extends Data.TaggedError("ReplicaRefused")<{
  readonly position: number
  readonly reason: string
}> {
  override get message() {
    return `refused at position ${this.position}: ${this.reason}`
  }
}

export interface Replica {
  readonly file: string
  /** The last event held (the copy ends at a signed head, so this is also the last signed position). */
  readonly head: () => ChainHead
  readonly lastSignedHead: () => SignedHead | undefined
  /** The signed head held at `position`, if the copy has one there. */
  readonly signedHeadAt: (position: number) => SignedHead | undefined
  /** The first signed head at or after `position`. */
  readonly signedHeadFrom: (position: number) => SignedHead | undefined
  /** Events `from` to `to` (inclusive) as stored. */
  readonly records: (from: number, to: number) => ReadonlyArray<StoredRecord>
  /** Appends records and heads that continue the copy; refuses the whole batch otherwise. */
  readonly append: (
    records: ReadonlyArray<StoredRecord>,
    heads: ReadonlyArray<SignedHead>
  ) => ReplicaRefused | ChainHead
  readonly close: () => void
}

/**
 * Checks a batch against the copy's head and the feed's key: contiguous positions, each event linked
 * to the one before and hashing to its stored hash, every head on an event of the batch with that
 * event's hash and a valid signature by `publicKey`, and the batch ending exactly at a head.
 */
export const checkBatch = (
  head: ChainHead,
  publicKey: string,
  records: ReadonlyArray<StoredRecord>,
  heads: ReadonlyArray<SignedHead>
): ReplicaRefused | undefined => {
  if (records.length === 0) {
    return heads.length === 0
      ? undefined
      : new ReplicaRefused({ position: head.position + 1, reason: "heads without events" })
  }
  let expected = head.position + 1
  let prevHash = head.hash
  const hashes = new Map<number, string>()
  for (const record of records) {
    if (record.position !== expected) {
      return new ReplicaRefused({ position: expected, reason: `expected event ${expected}, got ${record.position}` })
    }
    if (record.prevHash !== prevHash) {
      return new ReplicaRefused({ position: expected, reason: "the event does not link to the copy's last event" })
    }
    if (envelopeHash(record) !== record.hash) {
      return new ReplicaRefused({ position: expected, reason: "the event does not hash to its stored hash" })
    }
    hashes.set(record.position, record.hash)
    prevHash = record.hash
    expected++
  }
  const last = expected - 1
  for (const signed of heads) {
    const hash = hashes.get(signed.position)
    if (hash === undefined) {
      return new ReplicaRefused({ position: signed.position, reason: "a head outside the batch's events" })
    }
    if (hash !== signed.hash) return new ReplicaRefused({ position: signed.position, reason: "a head off the chain" })
    if (signed.publicKey !== publicKey) {
      return new ReplicaRefused({
        position: signed.position,
        reason: `a head signed by ${signed.publicKey}, not the feed's key`
      })
    }
    if (!verifySignature(signed.publicKey, headMessage(signed.position, signed.hash), signed.signature)) {
      return new ReplicaRefused({ position: signed.position, reason: "a head whose signature does not verify" })
    }
  }
  if (heads.length === 0 || heads[heads.length - 1]!.position !== last) {
    return new ReplicaRefused({ position: last, reason: "the batch does not end at a signed head" })
  }
  return undefined
}

/** Opens (or creates) the copy at `file` for the feed signed by `publicKey`. */
export const openReplica = (file: string, publicKey: string): Replica => {
  const db: Database.Database = openDatabase({ file, synchronous: "normal" })
  const lastEvent = db.prepare<[], { position: number; hash: string }>(
    "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
  )
  const headRow = (row: { position: number; hash: string; public_key: string; signature: string } | undefined) =>
    row === undefined
      ? undefined
      : { position: row.position, hash: row.hash, publicKey: row.public_key, signature: row.signature }
  const lastHead = db.prepare<[], { position: number; hash: string; public_key: string; signature: string }>(
    "SELECT position, hash, public_key, signature FROM heads ORDER BY position DESC LIMIT 1"
  )
  const headFrom = db.prepare<[number], { position: number; hash: string; public_key: string; signature: string }>(
    "SELECT position, hash, public_key, signature FROM heads WHERE position >= ? ORDER BY position LIMIT 1"
  )
  const recordsBetween = db.prepare<[number, number], EventRow>(
    `SELECT ${COLUMNS} FROM events WHERE position >= ? AND position <= ? ORDER BY position`
  ).raw()
  const headAt = db.prepare<[number], { position: number; hash: string; public_key: string; signature: string }>(
    "SELECT position, hash, public_key, signature FROM heads WHERE position = ?"
  )
  const insertEvent = db.prepare(
    `INSERT INTO events (position, stream_id, stream_version, event_type, payload, recorded_at, node_id, command_id, causation_id, prev_hash, hash, authorization)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
  )
  const insertHead = db.prepare("INSERT INTO heads (position, hash, public_key, signature) VALUES (?, ?, ?, ?)")
  const head = (): ChainHead => {
    const last = lastEvent.get()
    return { position: last?.position ?? 0, hash: last?.hash ?? GENESIS_HASH }
  }
  const write = db.transaction((records: ReadonlyArray<StoredRecord>, heads: ReadonlyArray<SignedHead>) => {
    for (const r of records) {
      insertEvent.run(
        r.position,
        r.streamId,
        r.streamVersion,
        r.eventType,
        r.payloadText,
        r.recordedAt,
        r.nodeId,
        r.commandId,
        r.causationId,
        r.prevHash,
        r.hash,
        r.authorizationText
      )
    }
    for (const h of heads) insertHead.run(h.position, h.hash, h.publicKey, h.signature)
  })
  return {
    file,
    head,
    lastSignedHead: () => headRow(lastHead.get()),
    signedHeadAt: (position) => headRow(headAt.get(position)),
    signedHeadFrom: (position) => headRow(headFrom.get(position)),
    records: (from, to) => recordsBetween.all(from, to).map(rowToRecord),
    append: (records, heads) => {
      const refused = checkBatch(head(), publicKey, records, heads)
      if (refused !== undefined) return refused
      if (records.length > 0) write.immediate(records, heads)
      return head()
    },
    close: () => db.close()
  }
}
