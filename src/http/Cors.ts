/**
 * Cross-origin reads and compressed JSON, as the model-distribution seed (§4.2) configures its CDN: a
 * page on an allowed origin may GET, HEAD and preflight the registry and content routes, and read
 * `X-Model-Version` / `X-Model-Checksum`; state changes stay same-origin (Guards.ts refuses the rest).
 */
import { HttpBody, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { promisify } from "node:util"
import * as zlib from "node:zlib"
import type { HostPolicy } from "./HostPolicy.js"

export interface CorsOptions {
  readonly policy: HostPolicy
  /** Origins besides the node's own that may read (`https://app.example`), or `*` for any. */
  readonly allowedOrigins: ReadonlyArray<string>
}

/**
 * The routes a page on another origin may read: the registry, blobs and the IPFS gateway, and the
 * browser SDK with its onnxruntime-web files (a module script from another origin needs CORS).
 */
const READABLE = [
  /^\/v1\/models(\/|$)/,
  /^\/v1\/adapters(\/|$)/,
  /^\/v1\/blobs\//,
  /^\/ipfs\//,
  /^\/ui\/sdk\.js$/,
  /^\/ui\/ort\//
]
const READ_METHODS = new Set(["GET", "HEAD"])

export const EXPOSED_HEADERS = [
  "Content-Type",
  "Content-Length",
  "Content-Encoding",
  "Content-Range",
  "Accept-Ranges",
  "ETag",
  "X-Model-Version",
  "X-Model-Checksum"
].join(", ")

/** Request headers a cross-origin read may carry: ranged and conditional fetches of blobs. */
const ALLOWED_REQUEST_HEADERS = "Range, If-None-Match, If-Range, If-Modified-Since"

const pathOf = (url: string) => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

const isReadable = (url: string) => {
  const route = pathOf(url)
  return READABLE.some((pattern) => pattern.test(route))
}

/** The value of `Access-Control-Allow-Origin` for `origin` reaching the node at `host`, or undefined. */
export const allowedOriginOf = (options: CorsOptions, origin: string, host: string): string | undefined => {
  if (options.allowedOrigins.includes("*")) return "*"
  const lower = origin.trim().toLowerCase()
  if (options.policy.isOwnOrigin(lower, host)) return origin
  return options.allowedOrigins.some((allowed) => allowed.replace(/\/$/, "").toLowerCase() === lower)
    ? origin
    : undefined
}

const preflight = (options: CorsOptions, request: HttpServerRequest.HttpServerRequest) => {
  const host = request.headers["host"] ?? ""
  // The guards answer after this: a preflight is held to the same Host rule (DNS rebinding) here.
  if (!options.policy.allowsHost(host)) {
    return HttpServerResponse.unsafeJson({
      error: `this node does not answer to Host ${JSON.stringify(host.slice(0, 256))}`
    }, {
      status: 421
    })
  }
  const origin = request.headers["origin"]
  const asked = (request.headers["access-control-request-method"] ?? "").toUpperCase()
  const allowed = origin === undefined ? undefined : allowedOriginOf(options, origin, host)
  if (allowed === undefined || !READ_METHODS.has(asked) || !isReadable(request.url)) {
    return HttpServerResponse.unsafeJson(
      { error: "cross-origin requests may only read the registry and content routes (GET, HEAD) from allowed origins" },
      { status: 403, headers: { vary: "Origin" } }
    )
  }
  return HttpServerResponse.empty({
    status: 204,
    headers: {
      "access-control-allow-origin": allowed,
      "access-control-allow-methods": "GET, HEAD, OPTIONS",
      "access-control-allow-headers": ALLOWED_REQUEST_HEADERS,
      "access-control-max-age": "600",
      vary: "Origin"
    }
  })
}

const brotli = promisify(zlib.brotliCompress)
const gzip = promisify(zlib.gzip)

/** Smaller bodies gain less than the header and the work cost. */
const COMPRESS_FROM_BYTES = 1024

/** The encoding to answer with: br before gzip, either only when the client names it without q=0. */
export const chooseEncoding = (acceptEncoding: string | undefined): "br" | "gzip" | undefined => {
  const accepted = new Set(
    (acceptEncoding ?? "").split(",").flatMap((part) => {
      const [name = "", ...parameters] = part.trim().toLowerCase().split(";")
      const refused = parameters.some((parameter) => /^\s*q\s*=\s*0(\.0*)?\s*$/.test(parameter))
      return name === "" || refused ? [] : [name]
    })
  )
  return accepted.has("br") ? "br" : accepted.has("gzip") ? "gzip" : undefined
}

const isJson = (contentType: string) => /^application\/([a-z.+-]*\+)?json\b/i.test(contentType)

/** A JSON reply to a read, compressed when the client accepts br or gzip and it is worth it. */
const compressed = (request: HttpServerRequest.HttpServerRequest, response: HttpServerResponse.HttpServerResponse) => {
  const body = response.body
  // GET only: a HEAD reply's Content-Length must stay the one GET would send as is.
  if (request.method !== "GET" || body._tag !== "Uint8Array") return Effect.succeed(response)
  if (!isJson(body.contentType) || body.contentLength < COMPRESS_FROM_BYTES) return Effect.succeed(response)
  if (response.headers["content-encoding"] !== undefined) return Effect.succeed(response)
  const encoding = chooseEncoding(request.headers["accept-encoding"])
  if (encoding === undefined) return Effect.succeed(response)
  return Effect.promise(() =>
    encoding === "br"
      ? brotli(body.body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5 } })
      : gzip(body.body, { level: 6 })
  ).pipe(
    Effect.map((bytes) =>
      HttpServerResponse.setBody(response, HttpBody.uint8Array(new Uint8Array(bytes), body.contentType)).pipe(
        HttpServerResponse.setHeaders({ "content-encoding": encoding, vary: "Accept-Encoding" })
      )
    )
  )
}

/** CORS on reads, preflights answered, and compressed JSON, around `app`. */
export const withCors = (options: CorsOptions) =>
<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const origin = request.headers["origin"]
    if (request.method === "OPTIONS" && origin !== undefined) return preflight(options, request)
    const response = yield* Effect.flatMap(app, (response) => compressed(request, response))
    if (origin === undefined || !READ_METHODS.has(request.method) || !isReadable(request.url)) return response
    const allowed = allowedOriginOf(options, origin, request.headers["host"] ?? "")
    if (allowed === undefined) return response
    const vary = response.headers["vary"]
    return HttpServerResponse.setHeaders(response, {
      "access-control-allow-origin": allowed,
      "access-control-expose-headers": EXPOSED_HEADERS,
      vary: vary === undefined ? "Origin" : `${vary}, Origin`
    })
  })
