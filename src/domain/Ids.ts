/**
 * Identifiers shared by every subsystem, as branded strings so that a stream id can never be passed
 * where a command id is expected.
 */
import { Schema } from "effect"

/** The node's identity: the first 128 bits of SHA-256 over its Ed25519 public key, in hex. */
export const NodeId = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{32}$/), Schema.brand("NodeId"))
export type NodeId = typeof NodeId.Type

/** `<category>-<entity id>`, as EventStoreDB names streams; the category never contains `-`. */
export const StreamId = Schema.String.pipe(Schema.pattern(/^[A-Za-z][A-Za-z0-9]*-.+$/), Schema.brand("StreamId"))
export type StreamId = typeof StreamId.Type

export const makeStreamId = (category: string, entityId: string): StreamId => `${category}-${entityId}` as StreamId

export const streamCategory = (streamId: string): string => {
  const dash = streamId.indexOf("-")
  return dash < 0 ? streamId : streamId.slice(0, dash)
}

export const streamEntityId = (streamId: string): string => {
  const dash = streamId.indexOf("-")
  return dash < 0 ? "" : streamId.slice(dash + 1)
}
