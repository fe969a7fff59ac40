/**
 * Handlers of the content API: blob bytes with Range / ETag / conditional requests, verified uploads
 * of published artifacts (never more bytes than declared, within the store's cap), and the IPFS
 * trustless gateway (raw blocks and CARs) over the blob store. Also the bounded request bodies every
 * route that reads one uses.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { NodeHttpServerRequest, NodeStream } from "@effect/platform-node"
import * as dagPB from "@ipld/dag-pb"
import { Data, Effect, Option, Stream } from "effect"
import { Registry } from "../actors/registry/RegistryService.js"
import type { BlobStoreError } from "../content/BlobStore.js"
import { BlobStore, digestOf, sha256Of } from "../content/BlobStore.js"
import { carBlock, carHeader } from "../content/Car.js"
import { parseCid } from "../content/UnixFs.js"
import * as Metrics from "../domain/Metrics.js"
import { Peers } from "../net/Peers.js"
import { NodeApi } from "./Api.js"

/** Pulls this node served to clients and peers (whole or ranged blobs, raw blocks, CARs), and their body bytes. */
const pullMetrics = (kind: "blob" | "block" | "car") => ({
  pulls: Metrics.counter("edge_net_pulls_total", "Pulls served: blob bodies (whole or ranged), raw blocks and CARs", {
    kind
  }),
  bytes: Metrics.counter("edge_net_pull_bytes_total", "Body bytes of the pulls served", { kind })
})
const blobPulls = pullMetrics("blob")
const blockPulls = pullMetrics("block")
const carPulls = pullMetrics("car")

const countPull = (metrics: ReturnType<typeof pullMetrics>, bytes: number) =>
  Effect.sync(() => {
    metrics.pulls.unsafeUpdate(1, [])
    metrics.bytes.unsafeUpdate(bytes, [])
  })

export type ByteRange = { readonly start: number; readonly end: number }

/**
 * One `bytes=` range against a file of `size` bytes, as RFC 9110 reads it: `a-b`, `a-` or `-n`.
 * Undefined means "serve the whole file" (no header, several ranges, or a unit we don't know);
 * "unsatisfiable" means 416.
 */
export const parseRange = (header: string | undefined, size: number): ByteRange | "unsatisfiable" | undefined => {
  const match = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (match === null) return undefined
  const [, first = "", last = ""] = match
  if (first === "" && last === "") return undefined
  if (first === "") {
    const suffix = Number(last)
    if (suffix === 0) return "unsatisfiable"
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(first)
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1)
  if (start >= size || end < start) return "unsatisfiable"
  return { start, end }
}

/** A request body over its route's limit; refused before it is read (Content-Length) or at the first byte past it. */
export class BodyTooLarge extends Data.TaggedError("BodyTooLarge")<{ readonly what: string; readonly limit: number }> {
  override get message() {
    return `${this.what} is larger than ${this.limit} bytes: refused`
  }
}

export class BodyUnreadable extends Data.TaggedError("BodyUnreadable")<{ readonly reason: string }> {
  override get message() {
    return `the request body could not be read: ${this.reason}`
  }
}

/** The length a request announces, when it announces a sane one. */
export const declaredLength = (request: HttpServerRequest.HttpServerRequest): number | undefined => {
  const header = request.headers["content-length"]
  if (header === undefined || !/^\d{1,15}$/.test(header.trim())) return undefined
  return Number(header)
}

/**
 * The request's bytes as they arrive. Stopping early leaves the connection open, so the refusal can
 * still be sent (see `refuseBody` for what happens to the rest).
 */
export const bodyStream = (request: HttpServerRequest.HttpServerRequest): Stream.Stream<Uint8Array, BodyUnreadable> =>
  NodeStream.fromReadable<BodyUnreadable, Uint8Array>(
    () => NodeHttpServerRequest.toIncomingMessage(request),
    (cause) => new BodyUnreadable({ reason: cause instanceof Error ? cause.message : String(cause) }),
    { closeOnDone: false }
  )

/** The body as text, refused past `limit` bytes: by its Content-Length before reading, else at the first byte over. */
export const readBoundedText = (request: HttpServerRequest.HttpServerRequest, what: string, limit: number) =>
  Effect.gen(function*() {
    const announced = declaredLength(request)
    if (announced !== undefined && announced > limit) return yield* Effect.fail(new BodyTooLarge({ what, limit }))
    const chunks: Array<Uint8Array> = []
    let received = 0
    yield* Stream.runForEach(bodyStream(request), (chunk) => {
      received += chunk.length
      if (received > limit) return Effect.fail(new BodyTooLarge({ what, limit }))
      chunks.push(chunk)
      return Effect.void
    })
    return Buffer.concat(chunks).toString("utf8")
  })

/**
 * What a client may still send after its body was refused: read and dropped (never stored), so that it
 * reads the refusal instead of a reset; past this, the connection is dropped.
 */
export const LINGER_BYTES = 4 * 1024 * 1024

/**
 * A one-line JSON refusal of a request whose body is unread or partly read. The rest of the body is
 * dropped as it arrives, up to LINGER_BYTES, then the socket is closed: a client that goes on sending
 * after the answer is cut off, and none of it is kept. (Closing at once would reset the connection
 * under the answer before most clients read it.)
 */
export const refuseBody = (
  request: HttpServerRequest.HttpServerRequest,
  status: number,
  tag: string,
  message: string
) =>
  Effect.sync(() => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    if (!incoming.complete) {
      let dropped = 0
      incoming.on("data", (chunk: Buffer) => {
        dropped += chunk.length
        if (dropped > LINGER_BYTES) incoming.socket.destroy()
      })
      incoming.resume()
    }
    return HttpServerResponse.unsafeJson({ _tag: tag, message }, { status })
  })

const uploadStatus: Record<string, number> = {
  BlobTooLarge: 413,
  BodyTooLarge: 413,
  BlobStoreFull: 507,
  BlobStoreError: 500
}

const etagOf = (sha256: string) => `"${digestOf(sha256)}"`

const notFound = (what: string) =>
  HttpServerResponse.unsafeJson({ _tag: "NotFound", message: `no ${what} on this node` }, { status: 404 })

/** Serves a stored blob's bytes honouring Range, If-None-Match and If-Range; `head` sends no body. */
export const serveBlob = (request: HttpServerRequest.HttpServerRequest, digest: string, head = false) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    const info = yield* store.stat(digest)
    if (Option.isNone(info) || !(yield* store.has(digest))) return notFound(`blob ${digestOf(sha256Of(digest))}`)
    const { sha256, size } = info.value
    const etag = etagOf(sha256)
    const headers = { etag, "accept-ranges": "bytes", "cache-control": "public, max-age=31536000, immutable" }
    const ifNoneMatch = request.headers["if-none-match"]
    if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((tag) => tag.trim() === etag || tag.trim() === "*")) {
      return HttpServerResponse.empty({ status: 304, headers })
    }
    const ifRange = request.headers["if-range"]
    const range = ifRange !== undefined && ifRange !== etag ? undefined : parseRange(request.headers["range"], size)
    if (range === "unsatisfiable") {
      return HttpServerResponse.empty({ status: 416, headers: { ...headers, "content-range": `bytes */${size}` } })
    }
    yield* store.touch(sha256)
    const start = range?.start ?? 0
    const length = range === undefined ? size : range.end - range.start + 1
    const status = range === undefined ? 200 : 206
    const rangeHeaders = range === undefined ? {} : { "content-range": `bytes ${range.start}-${range.end}/${size}` }
    if (head || length === 0) {
      return HttpServerResponse.empty({
        status,
        headers: { ...headers, ...rangeHeaders, "content-length": String(length) }
      })
    }
    yield* countPull(blobPulls, length)
    const response = yield* HttpServerResponse.file(store.pathOf(sha256), {
      status,
      offset: start,
      bytesToRead: length,
      contentType: "application/octet-stream",
      headers: rangeHeaders
    })
    // The platform sets a weak ETag from the file's mtime; ours is the content's digest.
    return HttpServerResponse.setHeaders(response, headers)
  })

/**
 * The blocks of the DAG under `root`, depth first, each block once (trustless gateways' default
 * `dups=n`), as a stream of CAR sections after the header.
 */
const carStream = (store: typeof BlobStore.Service, root: string) => {
  const sent = new Set<string>()
  const walk = (cid: string): Stream.Stream<Uint8Array, BlobStoreError | Error> =>
    Stream.unwrap(
      Effect.map(store.block(cid), (block) => {
        if (Option.isNone(block)) return Stream.fail(new Error(`block ${cid} is not on this node`))
        const self = Stream.succeed(carBlock(cid, block.value))
        if (parseCid(cid)?.code !== dagPB.code) return self
        const children = dagPB.decode(block.value).Links.map((link) => link.Hash.toString())
        return Stream.concat(self, Stream.flatMap(Stream.fromIterable(children), once, { concurrency: 1 }))
      })
    )
  const once = (cid: string): Stream.Stream<Uint8Array, BlobStoreError | Error> =>
    Stream.suspend(() => {
      if (sent.has(cid)) return Stream.empty
      sent.add(cid)
      return walk(cid)
    })
  return Stream.concat(Stream.succeed(carHeader(root)), once(root))
}

const wants = (request: HttpServerRequest.HttpServerRequest, format: "raw" | "car" | undefined) => {
  if (format !== undefined) return format
  const accept = request.headers["accept"] ?? ""
  if (accept.includes("application/vnd.ipld.raw")) return "raw"
  if (accept.includes("application/vnd.ipld.car")) return "car"
  return undefined
}

export const ContentHandlers = HttpApiBuilder.group(NodeApi, "content", (handlers) =>
  handlers
    .handle("blob", ({ path, request }) => serveBlob(request, path.digest).pipe(Effect.orDie))
    .handle("blobHead", ({ path, request }) => serveBlob(request, path.digest, true).pipe(Effect.orDie))
    .handle("blobHolders", ({ path }) =>
      Effect.map(
        Effect.flatMap(Peers, (peers) => peers.holders(sha256Of(path.digest))),
        (holders) => ({ holders })
      ))
    .handleRaw("uploadBlob", ({ path, request }) =>
      Effect.gen(function*() {
        const store = yield* BlobStore
        const registry = yield* Registry
        const sha256 = sha256Of(path.digest)
        // Only bytes a publisher asked for, and never more of them than its manifest declares.
        const sizes = yield* registry.artifactSizes(sha256)
        const declared = sizes[sizes.length - 1]
        if (declared === undefined) {
          return yield* refuseBody(
            request,
            403,
            "Forbidden",
            `no published manifest lists ${path.digest}: publish the signed manifest first`
          )
        }
        const announced = declaredLength(request)
        if (announced !== undefined && announced > declared) {
          return yield* refuseBody(
            request,
            413,
            "BodyTooLarge",
            `${path.digest} is declared as ${declared} bytes: an upload of ${announced} is refused`
          )
        }
        const stored = yield* store.put(bodyStream(request), { sha256, atMost: declared, mustFit: true }).pipe(
          Effect.either
        )
        if (stored._tag === "Left") {
          const error = stored.left
          const message = error._tag === "BlobTooLarge"
            ? `${path.digest} is declared as ${declared} bytes: ${error.message}`
            : error.message
          return yield* refuseBody(
            request,
            uploadStatus[error._tag] ?? 400,
            error._tag === "BlobMismatch" ? "BadUpload" : error._tag,
            message
          )
        }
        // What this registry publishes must stay servable: published artifacts are never evicted.
        yield* store.pin(sha256)
        return HttpServerResponse.unsafeJson({
          digest: stored.right.digest,
          size: stored.right.size,
          cid: stored.right.cid
        }, { status: 201 })
      }).pipe(Effect.orDie))
    .handle("ipfs", ({ path, urlParams, request }) =>
      Effect.gen(function*() {
        const store = yield* BlobStore
        if (parseCid(path.cid) === undefined) {
          return HttpServerResponse.unsafeJson({ _tag: "BadRequest", message: `invalid CID ${path.cid}` }, {
            status: 400
          })
        }
        const format = wants(request, urlParams.format)
        if (format === "raw") {
          const block = yield* store.block(path.cid)
          if (Option.isNone(block)) return notFound(`block ${path.cid}`)
          yield* countPull(blockPulls, block.value.length)
          return HttpServerResponse.uint8Array(block.value, {
            contentType: "application/vnd.ipld.raw",
            headers: {
              etag: `"${path.cid}.raw"`,
              "cache-control": "public, max-age=29030400, immutable",
              "x-ipfs-roots": path.cid
            }
          })
        }
        if (format === "car") {
          if (Option.isNone(yield* store.block(path.cid))) return notFound(`block ${path.cid}`)
          yield* countPull(carPulls, 0)
          const counted = Stream.tap(
            carStream(store, path.cid),
            (section) => Effect.sync(() => carPulls.bytes.unsafeUpdate(section.length, []))
          )
          return HttpServerResponse.stream(counted, {
            contentType: "application/vnd.ipld.car; version=1",
            headers: { etag: `"${path.cid}.car"`, "x-ipfs-roots": path.cid }
          })
        }
        const blob = yield* store.byCid(path.cid)
        if (Option.isNone(blob)) {
          return notFound(`file ${path.cid}`)
        }
        return yield* serveBlob(request, blob.value.sha256)
      }).pipe(Effect.orDie)))
