/**
 * What a node tells its network about the blobs it holds: where it serves them over HTTP
 * (`<url>/v1/blobs/sha256-<hex>`, with Range) and the SHA-256 of each, newest first. Announcements go
 * out on `edge-net/<network>/blobs/1` (signed by the sender's peer key, like every gossip message)
 * when the set changes and every half minute; a pull asks a node which peers hold a blob and adds
 * them as sources. A holder proves nothing: every byte is still checked against the signed manifest.
 */
import { Schema } from "effect"
import { Hash } from "../events/ForkProof.js"

/** Most digests one announcement lists: the newest this many blobs (about 280 KiB of JSON). */
export const MAX_ANNOUNCED_BLOBS = 4_096
/** How long an announcement counts without being repeated. */
export const HOLDER_TTL_MS = 120_000

const HttpUrl = Schema.String.pipe(
  Schema.maxLength(512),
  Schema.filter((text) => /^https?:\/\//.test(text) && URL.canParse(text) || "an http(s) URL")
)

export const BlobAnnouncement = Schema.Struct({
  url: HttpUrl,
  sha256s: Schema.Array(Hash).pipe(Schema.maxItems(MAX_ANNOUNCED_BLOBS))
})
export type BlobAnnouncement = typeof BlobAnnouncement.Type
