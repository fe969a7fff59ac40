/**
 * Where a blob's bytes can come from: an HTTP(S) server or CDN, another edge-net node, an IPFS trustless
 * gateway. Each source streams what it is asked for and says plainly when it cannot; it verifies nothing.
 */
import type { Scope } from "effect"
import { Chunk, Data, Effect, Option, Stream } from "effect"
import * as http from "node:http"
import * as https from "node:https"
import { rawGet, Unreadable } from "./RawHttp.js"

export class SourceError extends Data.TaggedError("SourceError")<{ readonly source: string; readonly reason: string }> {
  override get message() {
    return `${this.source}: ${this.reason}`
  }
}

export interface RequestOptions {
  /** Fail with "stalled" when no byte arrives for this long while we wait for one; default 30 s. */
  readonly idleTimeoutMs?: number
}

export interface BlobSource {
  /** Who this is, for progress and errors: `cdn http://127.0.0.1:4000/tiny-lm/v1.0.0/model.onnx`. */
  readonly name: string
  readonly kind: "http" | "ipfs" | "peer"
  /** Bytes [start, end) of the file, as a stream of chunks. */
  readonly fetchRange?: (start: number, end: number, options?: RequestOptions) => Stream.Stream<Uint8Array, SourceError>
  /** One block by CID (raw leaf bytes). */
  readonly fetchBlock?: (cid: string, options?: RequestOptions) => Effect.Effect<Uint8Array, SourceError>
}

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000
// The trustless gateway spec lets gateways refuse blocks above 2 MiB; anything bigger is not a block.
const MAX_BLOCK_BYTES = 2 * 1024 * 1024
// Each pull of a range stream gathers socket reads up to this many bytes, or for this long: Stream's cost
// per element is paid per megabyte rather than per 64 KiB read.
const STREAM_BATCH_BYTES = 1024 * 1024
const STREAM_BATCH_MS = 50

/** A plain HTTP(S) URL of the whole file, fetched with Range requests. */
export const httpSource = (url: string, name?: string): BlobSource => {
  const sourceName = name ?? `http ${url}`
  return {
    name: sourceName,
    kind: "http",
    fetchRange: (start, end, options) => rangeStream(sourceName, url, start, end, options)
  }
}

/** Another edge-net node, which serves blobs at `GET {base}/v1/blobs/sha256-{hex}` with Range support. */
export const peerSource = (nodeBaseUrl: string, sha256: string, name?: string): BlobSource => {
  const url = `${nodeBaseUrl.replace(/\/+$/, "")}/v1/blobs/sha256-${sha256}`
  const sourceName = name ?? `peer ${nodeBaseUrl}`
  return {
    name: sourceName,
    kind: "peer",
    fetchRange: (start, end, options) => rangeStream(sourceName, url, start, end, options)
  }
}

/**
 * An IPFS trustless gateway: single raw blocks by CID, which the caller checks against their hashes.
 * `own` (models.yaml's `ipfs.timeout`) takes precedence over what the caller asks of every source.
 */
export const ipfsGatewaySource = (gatewayBaseUrl: string, name?: string, own?: RequestOptions): BlobSource => {
  const base = gatewayBaseUrl.replace(/\/+$/, "")
  const sourceName = name ?? `ipfs ${base}`
  return {
    name: sourceName,
    kind: "ipfs",
    fetchBlock: (cid, options) =>
      Effect.scoped(
        Effect.gen(function*() {
          const request = yield* openRequest(sourceName, `${base}/ipfs/${cid}?format=raw`, {
            accept: "application/vnd.ipld.raw"
          }, { ...options, ...own })
          if (request.response.status !== 200) {
            return yield* request.fail(`HTTP ${request.response.status} for block ${cid}`)
          }
          const parts: Array<Uint8Array> = []
          let received = 0
          for (;;) {
            const chunk = yield* request.read
            if (chunk === undefined) break
            received += chunk.length
            if (received > MAX_BLOCK_BYTES) {
              return yield* request.fail(`block ${cid} is larger than ${MAX_BLOCK_BYTES} bytes`)
            }
            parts.push(chunk)
          }
          return parts.length === 1 ? parts[0]! : Buffer.concat(parts, received)
        })
      )
  }
}

/** What a range or block request reads of an answer before its body. */
interface ResponseHead {
  readonly status: number
  readonly header: (name: string) => string | undefined
}

interface Answer extends ResponseHead {
  /** The body's chunks as the socket delivers them. */
  readonly body: AsyncIterator<Uint8Array>
}

const MAX_REDIRECTS = 5
const REDIRECTS = new Set([301, 302, 303, 307, 308])

/**
 * A GET, redirects followed as fetch follows them: plain HTTP on a bare socket (RawHttp.ts), which
 * costs the pull's one thread a fraction of node:http's per megabyte; HTTPS, and answers the bare
 * reader does not read (chunked bodies), with node:http.
 */
const get = (url: string, headers: Record<string, string>, signal: AbortSignal, redirects = 0): Promise<Answer> => {
  let target: URL
  try {
    target = new URL(url)
  } catch (error) {
    return Promise.reject(error)
  }
  if (target.protocol !== "http:") return nodeGet(url, headers, signal, redirects)
  return rawGet(target, headers, signal).then(
    (answer): Answer | Promise<Answer> => {
      const location = answer.header("location")
      if (!REDIRECTS.has(answer.status) || location === undefined) return answer
      answer.close()
      if (redirects >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`)
      return get(new URL(location, target).toString(), headers, signal, redirects + 1)
    },
    (error: unknown) => (error instanceof Unreadable ? nodeGet(url, headers, signal, redirects) : Promise.reject(error))
  )
}

/**
 * The same GET with Node's own HTTP client. For bulk bodies it is lighter than fetch, whose web
 * streams cost the pull's one thread more per megabyte than the socket delivers it (a quarter of a
 * 1 GiB pull's main thread went to undici's stream machinery).
 */
const nodeGet = (
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  redirects: number
): Promise<Answer> =>
  new Promise<Answer>((resolve, reject) => {
    if (signal.aborted) return reject(new Error("aborted"))
    const target = new URL(url)
    const client = target.protocol === "https:" ? https : target.protocol === "http:" ? http : undefined
    if (client === undefined) return reject(new Error(`unsupported protocol ${target.protocol}`))
    // Aborted by hand rather than through the request's `signal` option, and with no error: either
    // fails the keep-alive socket of an answer already read in full with an error nothing catches. A
    // read still waiting sees the body end early, and a request still waiting for its answer fails.
    const request = client.get(target, { headers })
    let answered = false
    const abort = () => {
      request.destroy()
      if (!answered) reject(new Error("aborted"))
    }
    signal.addEventListener("abort", abort, { once: true })
    request.on("error", reject)
    request.once("response", (response) => {
      answered = true
      response.once("close", () => signal.removeEventListener("abort", abort))
      // A body no one reads any more (its scope closed) may still fail: that must not be uncaught.
      response.on("error", () => undefined)
      const status = response.statusCode ?? 0
      const location = response.headers.location
      if (REDIRECTS.has(status) && location !== undefined) {
        response.resume()
        if (redirects >= MAX_REDIRECTS) return reject(new Error(`more than ${MAX_REDIRECTS} redirects`))
        return resolve(get(new URL(location, target).toString(), headers, signal, redirects + 1))
      }
      resolve({
        status,
        header: (name) => {
          const value = response.headers[name.toLowerCase()]
          return Array.isArray(value) ? value.join(", ") : value
        },
        body: response[Symbol.asyncIterator]()
      })
    })
  })

interface OpenRequest {
  readonly response: ResponseHead
  /** The next chunk of the body, or undefined at its end; rejects when the source fails or stalls. */
  readonly readPromise: () => Promise<Uint8Array | undefined>
  readonly read: Effect.Effect<Uint8Array | undefined, SourceError>
  /** What a rejection of `readPromise` means, as this source's error. */
  readonly failure: (cause: unknown) => SourceError
  readonly fail: (reason: string) => Effect.Effect<never, SourceError>
}

/** A body that broke the protocol, thrown inside a read loop; its message is the reason. */
class BodyProblem extends Error {}

/**
 * Sends a GET whose every wait (for the headers, then for each chunk) is cut off after the idle timeout;
 * the request is aborted when the scope closes, so an abandoned body never keeps a socket busy.
 */
const openRequest = (
  source: string,
  url: string,
  headers: Record<string, string>,
  options: RequestOptions | undefined
): Effect.Effect<OpenRequest, SourceError, Scope.Scope> =>
  Effect.gen(function*() {
    const idleTimeoutMs = options?.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS
    const controller = new AbortController()
    let stalled = false
    yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
    // One timer per wait: armed while we wait for the source, never while we are busy with its bytes.
    const guard = <A>(promise: () => Promise<A>): Promise<A> => {
      const timer = setTimeout(() => {
        stalled = true
        controller.abort()
      }, idleTimeoutMs)
      return promise().then(
        (value) => {
          clearTimeout(timer)
          return value
        },
        (error: unknown) => {
          clearTimeout(timer)
          throw error
        }
      )
    }
    const failure = (cause: unknown) =>
      new SourceError({
        source,
        reason: stalled
          ? `stalled: no byte for ${formatSeconds(idleTimeoutMs)}`
          : cause instanceof BodyProblem
          ? cause.message
          : describeFailure(cause)
      })
    const response = yield* Effect.tryPromise({
      try: () => guard(() => get(url, headers, controller.signal)),
      catch: failure
    })
    const readPromise = (): Promise<Uint8Array | undefined> =>
      guard(() => response.body.next()).then((step) => (step.done === true ? undefined : step.value))
    const read = Effect.tryPromise({ try: readPromise, catch: failure })
    const fail = (reason: string) => Effect.fail(new SourceError({ source, reason }))
    return { response, readPromise, read, failure, fail }
  })

/**
 * Bytes [start, end) as a stream. A 206 must carry exactly the range asked for; a 200 (a server that
 * ignores Range) is accepted only from offset 0, and read no further than `end`.
 */
const rangeStream = (
  source: string,
  url: string,
  start: number,
  end: number,
  options: RequestOptions | undefined
): Stream.Stream<Uint8Array, SourceError> =>
  end <= start ? Stream.empty : Stream.unwrapScoped(
    Effect.gen(function*() {
      const request = yield* openRequest(source, url, { range: `bytes=${start}-${end - 1}` }, options)
      const status = request.response.status
      if (status === 206) {
        const contentRange = request.response.header("content-range") ?? ""
        const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange.trim())
        if (match === null || Number(match[1]) !== start || Number(match[2]) !== end - 1) {
          return yield* request.fail(
            `answered "${contentRange || "no Content-Range"}" to a request for bytes ${start}-${end - 1}`
          )
        }
      } else if (status !== 200 || start !== 0) {
        return yield* request.fail(
          status === 200 ? `ignored the Range header (HTTP 200 for bytes ${start}-${end - 1})` : `HTTP ${status}`
        )
      }
      const expected = end - start
      let received = 0
      let finished = false
      // A failure after some bytes of a batch came in is reported on the next pull: those bytes are good.
      let failedWith: { readonly cause: unknown } | undefined
      const readBatch = async (): Promise<Array<Uint8Array>> => {
        if (failedWith !== undefined) throw failedWith.cause
        const batch: Array<Uint8Array> = []
        const startedAt = performance.now()
        try {
          for (
            let batchBytes = 0;
            batchBytes < STREAM_BATCH_BYTES && !finished && performance.now() - startedAt < STREAM_BATCH_MS;
          ) {
            const chunk = await request.readPromise()
            if (chunk === undefined) {
              if (received < expected) {
                throw new BodyProblem(`the response ended after ${received} of ${expected} bytes`)
              }
              finished = true
            } else if (received >= expected) {
              // A 200 carries the rest of the file: stop at `end`; the scope's abort drops the remainder.
              finished = true
            } else {
              const wanted = Math.min(chunk.length, expected - received)
              received += wanted
              batchBytes += wanted
              batch.push(wanted === chunk.length ? chunk : chunk.subarray(0, wanted))
            }
          }
        } catch (cause) {
          if (batch.length === 0) throw cause
          failedWith = { cause }
        }
        return batch
      }
      const pull: Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<SourceError>> = Effect.suspend(() =>
        finished && failedWith === undefined ? Effect.fail(Option.none()) : Effect.tryPromise({
          try: readBatch,
          catch: (cause) => Option.some(request.failure(cause))
        }).pipe(
          Effect.flatMap((batch) =>
            batch.length === 0 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(batch))
          )
        )
      )
      return Stream.repeatEffectChunkOption(pull)
    })
  )

const describeFailure = (cause: unknown): string => {
  if (cause instanceof Error) {
    // Node's own errors carry their code (ECONNREFUSED, ECONNRESET...), named first as before.
    const own = (cause as { code?: unknown }).code
    if (typeof own === "string" && own !== "ABORT_ERR") return `${own}: ${cause.message}`
    // undici reports "fetch failed" and hides the socket error in `cause`.
    const inner = (cause as { cause?: unknown }).cause
    if (inner instanceof Error) {
      const code = (inner as { code?: unknown }).code
      return typeof code === "string" ? `${code}: ${inner.message}` : inner.message
    }
    return cause.message
  }
  return String(cause)
}

const formatSeconds = (milliseconds: number) =>
  milliseconds % 1000 === 0 ? `${milliseconds / 1000} s` : `${milliseconds} ms`
