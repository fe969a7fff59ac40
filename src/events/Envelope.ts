/**
 * The stored form of every event: where it sits in the global log and in its stream, who recorded it
 * and why, and the hash that chains it to everything before it. Free of Effect, as the journal's writer
 * thread hashes with it (its Schema, for APIs that send envelopes, is in EnvelopeSchema.ts).
 */
import * as crypto from "node:crypto"
import { canonicalize, utf8Length } from "../domain/CanonicalText.js"

export const GENESIS_HASH = "0".repeat(64)

export interface Envelope {
  readonly position: number
  readonly streamId: string
  readonly streamVersion: number
  readonly eventType: string
  readonly payload: unknown
  readonly recordedAt: string
  readonly nodeId: string
  readonly commandId: string | null
  readonly causationId: string | null
  /** The signed command that caused the event, as parsed JSON; null for events no signed command caused. */
  readonly authorization: unknown
  readonly prevHash: string
  readonly hash: string
}

/** An event on its way into the journal; the journal assigns positions, versions and hashes. */
export interface NewEvent {
  readonly eventType: string
  readonly payload: unknown
}

/** Everything of an envelope that its hash covers, with the payload already in canonical text. */
export interface EnvelopeFields {
  readonly position: number
  readonly streamId: string
  readonly streamVersion: number
  readonly eventType: string
  readonly payloadText: string
  readonly recordedAt: string
  readonly nodeId: string
  readonly commandId: string | null
  readonly causationId: string | null
  /** The signed command's canonical text, hashed raw; null when no signed command caused the event. */
  readonly authorizationText: string | null
  readonly prevHash: string
}

/**
 * `hash = sha256(prevHash || canonical(envelope without hash))`. The canonical text is assembled in
 * RFC 8785 key order by hand so the payload (already canonical) is not parsed and serialized again.
 */
export const envelopeHash = (fields: EnvelopeFields): string =>
  crypto.hash("sha256", fields.prevHash + canonicalEnvelopeText(fields), "hex")

/**
 * What a fold reads of a stored event: where it sits, its type, its payload in the canonical text the
 * hash covers, and the hash. Replay reads only these columns: half the bytes of a whole record.
 */
export interface LoggedEvent {
  readonly position: number
  readonly streamId: string
  readonly streamVersion: number
  readonly eventType: string
  readonly payloadText: string
  readonly hash: string
}

/** An event exactly as stored: the payload still in its canonical text, which the hash covers. */
export interface StoredRecord extends EnvelopeFields {
  readonly hash: string
}

export const recordToEnvelope = (record: StoredRecord): Envelope => ({
  position: record.position,
  streamId: record.streamId,
  streamVersion: record.streamVersion,
  eventType: record.eventType,
  payload: JSON.parse(record.payloadText),
  recordedAt: record.recordedAt,
  nodeId: record.nodeId,
  commandId: record.commandId,
  causationId: record.causationId,
  authorization: record.authorizationText === null ? null : JSON.parse(record.authorizationText),
  prevHash: record.prevHash,
  hash: record.hash
})

/** The canonical text's keys before "eventType". */
const canonicalTextHead = (fields: Pick<EnvelopeFields, "authorizationText" | "causationId" | "commandId">) =>
  (fields.authorizationText === null ? "{" : `{"authorization":${fields.authorizationText},`) +
  `"causationId":${fields.causationId === null ? "null" : JSON.stringify(fields.causationId)}` +
  `,"commandId":${fields.commandId === null ? "null" : JSON.stringify(fields.commandId)}`

/**
 * Keys in RFC 8785 order: "authorization" sorts first, and is left out when null, so every envelope
 * written before authorizations existed hashes exactly as it did.
 */
export const canonicalEnvelopeText = (fields: EnvelopeFields): string =>
  canonicalTextHead(fields) +
  `,"eventType":${JSON.stringify(fields.eventType)}` +
  `,"nodeId":${JSON.stringify(fields.nodeId)}` +
  `,"payload":${fields.payloadText}` +
  `,"position":${fields.position}` +
  `,"prevHash":${JSON.stringify(fields.prevHash)}` +
  `,"recordedAt":${JSON.stringify(fields.recordedAt)}` +
  `,"streamId":${JSON.stringify(fields.streamId)}` +
  `,"streamVersion":${fields.streamVersion}}`

/** What the events of one append share: everything the hash covers but type, payload, position, version and prevHash. */
export type SharedFields = Pick<
  EnvelopeFields,
  "streamId" | "recordedAt" | "nodeId" | "commandId" | "causationId" | "authorizationText"
>

/**
 * `envelopeHash` for the events of one append: the text the hash covers is `canonicalEnvelopeText`'s,
 * with the parts the events share quoted once rather than per event (the writer thread's hot loop).
 */
export const sharedFieldsHasher = (shared: SharedFields) => {
  const head = `${canonicalTextHead(shared)},"eventType":`
  const beforePayload = `,"nodeId":${JSON.stringify(shared.nodeId)},"payload":`
  const beforeVersion = `,"recordedAt":${JSON.stringify(shared.recordedAt)},"streamId":${
    JSON.stringify(shared.streamId)
  },"streamVersion":`
  return (eventType: string, payloadText: string, position: number, streamVersion: number, prevHash: string): string =>
    crypto.hash(
      "sha256",
      prevHash + head + JSON.stringify(eventType) + beforePayload + payloadText + ",\"position\":" + position +
        ",\"prevHash\":" + JSON.stringify(prevHash) + beforeVersion + streamVersion + "}",
      "hex"
    )
}

export const canonicalPayload = (payload: unknown): string => canonicalize(payload)

/** An event whose canonical payload is over the size limit: its type and UTF-8 size. */
export interface OversizedPayload {
  readonly eventType: string
  readonly bytes: number
}

/**
 * Every event's canonical payload text, or the first one over `maxBytes` (UTF-8): all are sized before
 * any is written, so a request is appended whole or not at all.
 */
export const payloadTextsWithin = (
  events: ReadonlyArray<NewEvent>,
  maxBytes: number
): ReadonlyArray<string> | OversizedPayload => {
  const texts: Array<string> = []
  for (const event of events) {
    const text = canonicalPayload(event.payload)
    // Each UTF-16 unit is 1 to 3 bytes: most payloads are decided without counting.
    if (text.length * 3 > maxBytes) {
      const bytes = utf8Length(text)
      if (bytes > maxBytes) return { eventType: event.eventType, bytes }
    }
    texts.push(text)
  }
  return texts
}

/**
 * One link of the hash chain as verification reads it: `hashedText` is exactly what `hash` is the
 * SHA-256 of (`prevHash` followed by the canonical envelope), assembled by the store from what it holds.
 */
export interface ChainLink {
  readonly position: number
  readonly prevHash: string
  readonly hash: string
  readonly hashedText: string
}

/** A stored event as a fold reads it and as its chain link: for verifying and replaying in one read. */
export interface LoggedLink extends LoggedEvent, ChainLink {}

export const loggedLinkOf = (record: StoredRecord): LoggedLink => ({
  position: record.position,
  streamId: record.streamId,
  streamVersion: record.streamVersion,
  eventType: record.eventType,
  payloadText: record.payloadText,
  prevHash: record.prevHash,
  hash: record.hash,
  hashedText: record.prevHash + canonicalEnvelopeText(record)
})

export const chainLinkOf = (record: StoredRecord): ChainLink => ({
  position: record.position,
  prevHash: record.prevHash,
  hash: record.hash,
  hashedText: record.prevHash + canonicalEnvelopeText(record)
})

/** The message a node signs for a chain head: position and hash, domain-separated. */
export const headMessage = (position: number, hash: string): string => `edge-net/journal-head/v1\n${position}\n${hash}`
