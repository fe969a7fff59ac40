/**
 * The Envelope as a Schema, for the APIs that send envelopes (Envelope.ts holds the type and the
 * hashing, free of Effect).
 */
import { Schema } from "effect"
import type { Envelope as EnvelopeShape } from "./Envelope.js"

export const Envelope: Schema.Schema<EnvelopeShape> = Schema.Struct({
  position: Schema.Number,
  streamId: Schema.String,
  streamVersion: Schema.Number,
  eventType: Schema.String,
  payload: Schema.Unknown,
  recordedAt: Schema.String,
  nodeId: Schema.String,
  commandId: Schema.NullOr(Schema.String),
  causationId: Schema.NullOr(Schema.String),
  /** The signed command that caused the event, as parsed JSON; null for events no signed command caused. */
  authorization: Schema.NullOr(Schema.Unknown),
  prevHash: Schema.String,
  hash: Schema.String
})
export type Envelope = EnvelopeShape
