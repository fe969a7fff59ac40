/**
 * Moves signed manifests and blobs to and from a registry node byte for byte: fetch a manifest as
 * its publisher signed it, publish one, upload artifacts. Every failure is one line naming the URL.
 * (The registry's other JSON answers are read by the typed client in http/RegistryClient.ts.)
 */
import { Data, Effect, Either, Schema } from "effect"
import * as fs from "node:fs"
import { Readable } from "node:stream"

export class RegistryError
  extends Data.TaggedError("RegistryError")<{ readonly url: string; readonly reason: string; readonly status?: number }>
{
  override get message() {
    return this.status === undefined
      ? `cannot reach the registry at ${this.url}: ${this.reason}`
      : `registry ${this.url}: ${this.reason}`
  }
}

const causeText = (cause: unknown): string => {
  if (cause instanceof Error) {
    const inner = (cause as Error & { cause?: unknown }).cause
    return inner instanceof Error ? `${cause.message} (${inner.message})` : cause.message
  }
  return String(cause)
}

/** Sends a request and decodes the JSON answer; a non-2xx answer becomes the server's own message. */
const request = (url: string, init: RequestInit = {}, timeoutMs = 30_000) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, { ...init, signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) })
      const text = await response.text()
      let body: unknown = undefined
      try {
        body = text === "" ? undefined : JSON.parse(text)
      } catch {
        body = text
      }
      return { status: response.status, ok: response.ok, body }
    },
    catch: (cause) => new RegistryError({ url, reason: causeText(cause) })
  }).pipe(
    Effect.flatMap(({ body, ok, status }) => {
      if (ok) return Effect.succeed(body)
      const message = typeof body === "object" && body !== null && "message" in body && typeof body.message === "string"
        ? body.message
        : `HTTP ${status}`
      return Effect.fail(new RegistryError({ url, reason: message, status }))
    })
  )

const base = (registry: string) => registry.replace(/\/+$/, "")

/** The raw JSON of a manifest as its publisher signed it: latest version unless one is asked for. */
export const fetchManifest = (registry: string, id: string, version?: string) =>
  request(
    `${base(registry)}/v1/models/${encodeURIComponent(id)}${
      version === undefined ? "" : `?version=${encodeURIComponent(version)}`
    }`
  )

export const publishManifest = (registry: string, manifest: unknown, adapter = false) =>
  request(`${base(registry)}/v1/${adapter ? "adapters" : "models"}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(manifest)
  })

export const hasBlob = (registry: string, sha256: string) =>
  Effect.tryPromise({
    try: async () => (await fetch(`${base(registry)}/v1/blobs/sha256-${sha256}`, { method: "HEAD" })).ok,
    catch: (cause) => new RegistryError({ url: registry, reason: causeText(cause) })
  })

/** A peer that says it holds a blob, and the node URL it serves it at (`<url>/v1/blobs/sha256-<hex>`). */
export const BlobHolder = Schema.Struct({ peerId: Schema.String, url: Schema.String })
export type BlobHolder = typeof BlobHolder.Type
export const BlobHolders = Schema.Struct({ holders: Schema.Array(BlobHolder) })
const decodeHolders = Schema.decodeUnknownEither(BlobHolders)

/**
 * The peers the registry node heard announce a blob on gossip. A registry that cannot tell (an older
 * node, or one not reached) has none to offer: holders only add sources, so their absence is no error.
 */
export const blobHolders = (registry: string, sha256: string) =>
  request(`${base(registry)}/v1/blobs/sha256-${sha256}/holders`, {}, 5_000).pipe(
    Effect.map((body) => Either.getOrElse(Either.map(decodeHolders(body), (found) => found.holders), () => [])),
    Effect.orElseSucceed((): ReadonlyArray<BlobHolder> => [])
  )

/** Streams a file to the registry, which verifies it against the digest before storing it. */
export const uploadBlob = (registry: string, sha256: string, file: string) =>
  request(
    `${base(registry)}/v1/blobs/sha256-${sha256}`,
    {
      method: "PUT",
      headers: { "content-type": "application/octet-stream", "content-length": String(fs.statSync(file).size) },
      body: Readable.toWeb(fs.createReadStream(file)) as ReadableStream,
      duplex: "half"
    } as RequestInit,
    10 * 60_000
  )
