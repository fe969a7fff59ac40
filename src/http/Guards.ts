/**
 * What every request to the node passes before a route sees it: its Host must name the node (DNS
 * rebinding), a state change must come from the node's own origin (CSRF), bodies are bounded, and
 * failures answer one line of JSON: a 500 names a reference to the log, never the internal cause.
 */
import {
  HttpIncomingMessage,
  HttpLayerRouter,
  HttpServer,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Effect, Option } from "effect"
import { httpLimitsOf, NodeConfig } from "../layers/NodeConfig.js"
import { withCors } from "./Cors.js"
import type { HostPolicy } from "./HostPolicy.js"
import { hostPolicy } from "./HostPolicy.js"
import { OPENAI_ROUTES } from "./OpenAiApi.js"
import { RPC_CONTENT_TYPE, rpcBodyProblem, scrubRpcReply } from "./RpcBody.js"

export interface GuardOptions {
  readonly policy: HostPolicy
  readonly maxBodyBytes: number
  /** Where the RPC server is mounted. */
  readonly rpcPath: string
}

const stateChanging = new Set(["POST", "PUT", "PATCH", "DELETE"])

/** One line of JSON, the shape of every refusal the guards make. */
export const refusal = (status: number, error: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson({ error }, { status, headers })

/**
 * The same refusal in OpenAI's error shape, for the OpenAI-compatible routes: OpenAI's clients read
 * `error.message`, and would show a bare string as no message at all.
 */
export const openAiRefusal = (status: number, message: string, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(
    { error: { message, type: "invalid_request_error", param: null, code: null } },
    { status, headers }
  )

export const pathOf = (url: string) => {
  const query = url.indexOf("?")
  return query === -1 ? url : url.slice(0, query)
}

/**
 * What the early checks read of a request: the platform's request, or Node's own (the routes answered
 * before the router, FastEmbeddings.ts), whose repeated headers come as arrays.
 */
export interface GuardedRequest {
  readonly method: string
  readonly url: string
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
}

const header = (request: GuardedRequest, name: string) => {
  const value = request.headers[name]
  return typeof value === "string" || value === undefined ? value : value[0]
}

/** Blob uploads are bounded by the artifact's declared size in their own route, not by the body cap. */
const isBlobUpload = (request: GuardedRequest) =>
  request.method === "PUT" && pathOf(request.url).startsWith("/v1/blobs/")

const mediaType = (contentType: string | undefined) => (contentType ?? "").split(";")[0]!.trim().toLowerCase()

const newRef = () => globalThis.crypto.randomUUID().slice(0, 8)

/** Logs a failure under a fresh reference and answers the client with that reference only. */
const internalError = (request: HttpServerRequest.HttpServerRequest, cause: unknown) => {
  const ref = newRef()
  return Effect.logError("internal error", cause).pipe(
    Effect.annotateLogs({ ref, request: `${request.method} ${pathOf(request.url)}` }),
    Effect.as(HttpServerResponse.unsafeJson({ error: "internal error", ref }, { status: 500 }))
  )
}

/** Why a request is refused before any route runs, or undefined. */
export const refuseEarly = (
  request: GuardedRequest,
  options: GuardOptions,
  refusal: typeof openAiRefusal
) => {
  const host = header(request, "host")
  if (host === undefined || host.trim() === "") return refusal(400, "missing Host header")
  if (!options.policy.allowsHost(host)) {
    return refusal(421, `this node does not answer to Host ${JSON.stringify(host.slice(0, 256))}`)
  }
  if (stateChanging.has(request.method)) {
    const site = header(request, "sec-fetch-site")
    if (site === "cross-site" || site === "same-site") {
      return refusal(403, `a ${site} request cannot change state on this node`)
    }
    const origin = header(request, "origin")
    if (origin !== undefined && !options.policy.isOwnOrigin(origin, host)) {
      return refusal(403, "a request from another origin cannot change state on this node")
    }
  }
  const isRpc = pathOf(request.url) === options.rpcPath
  if (isRpc && request.method === "POST" && mediaType(header(request, "content-type")) !== RPC_CONTENT_TYPE) {
    return refusal(415, `/rpc takes ${RPC_CONTENT_TYPE} (@effect/rpc's NDJSON serialization)`)
  }
  const length = header(request, "content-length")
  if (!isBlobUpload(request) && length !== undefined && Number(length) > options.maxBodyBytes) {
    // Node reads and drops the rest of the body, so the client sees this reply, not a reset.
    return refusal(413, `request body over ${options.maxBodyBytes} bytes`)
  }
  return undefined
}

const isOverLimit = (error: HttpServerError.RequestError) =>
  error.cause instanceof Error && error.cause.message.includes("maxBytes")

/**
 * Reads the whole /rpc body within the cap and checks its messages. The platform caches the body it
 * read, so the RPC server reads the same text again without touching the socket.
 */
const checkRpcBody = (request: HttpServerRequest.HttpServerRequest, options: GuardOptions) =>
  request.text.pipe(
    HttpIncomingMessage.withMaxBodySize(Option.some(options.maxBodyBytes)),
    Effect.map((body) => {
      const problem = rpcBodyProblem(body)
      return problem === undefined ? undefined : refusal(400, problem)
    }),
    Effect.catchAll((error) =>
      Effect.succeed(
        isOverLimit(error)
          ? refusal(413, `request body over ${options.maxBodyBytes} bytes`)
          : refusal(400, "the request body could not be read")
      )
    )
  )

/** A body a route could not read: past the cap while counting a body sent without a length, or broken. */
const unreadableBody = (cause: Cause.Cause<unknown>, maxBodyBytes: number) => {
  const error = [...Cause.failures(cause), ...Cause.defects(cause)].find(HttpServerError.isServerError)
  if (error === undefined || error._tag !== "RequestError") return refusal(400, "bad request")
  return isOverLimit(error)
    ? refusal(413, `request body over ${maxBodyBytes} bytes`)
    : refusal(400, "the request body could not be read")
}

/**
 * Turns a route's failure into the platform's reply, with one line of JSON where the platform's
 * is empty, and a 5xx as a reference to the log.
 */
const replyToFailure = (
  request: HttpServerRequest.HttpServerRequest,
  cause: Cause.Cause<unknown>,
  options: GuardOptions
) =>
  Effect.flatMap(HttpServerError.causeResponse(cause), ([response]) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.succeed(response)
    if (response.status >= 500) return internalError(request, Cause.pretty(cause))
    if (response.body._tag !== "Empty") return Effect.succeed(response)
    if (response.status === 404) return Effect.succeed(refusal(404, "not found"))
    if (response.status === 400) return Effect.succeed(unreadableBody(cause, options.maxBodyBytes))
    return Effect.succeed(response)
  })

/** The guards around `app`, the whole router. */
export const guard = (options: GuardOptions) =>
<E, R>(
  app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const early = refuseEarly(request, options, OPENAI_ROUTES.has(pathOf(request.url)) ? openAiRefusal : refusal)
    if (early !== undefined) return early
    const isRpc = request.method === "POST" && pathOf(request.url) === options.rpcPath
    if (isRpc) {
      const refused = yield* checkRpcBody(request, options)
      if (refused !== undefined) return refused
    }
    const bounded = isBlobUpload(request)
      ? app
      : HttpIncomingMessage.withMaxBodySize(app, Option.some(options.maxBodyBytes))
    const response = yield* Effect.catchAllCause(bounded, (cause) => replyToFailure(request, cause, options))
    if (!isRpc) return response
    return yield* scrubRpcReply(response, (defect) => {
      const ref = newRef()
      return Effect.as(Effect.logError("rpc defect", defect).pipe(Effect.annotateLogs({ ref })), ref)
    })
  })

/** The guards' settings: the Host policy from the node's settings and the port the server actually bound. */
export const guardOptions = Effect.gen(function*() {
  const config = yield* NodeConfig
  const server = yield* HttpServer.HttpServer
  const port = server.address._tag === "TcpAddress" ? server.address.port : config.port
  return {
    policy: hostPolicy({ host: config.host, port, allowedHosts: config.allowedHosts, publicUrl: config.publicUrl }),
    maxBodyBytes: httpLimitsOf(config).maxBodyBytes,
    rpcPath: "/rpc"
  } satisfies GuardOptions
})

/** The guards as global middleware of the node's router, inside CORS for reads and compression (Cors.ts). */
export const GuardsLayer = HttpLayerRouter.middleware(
  Effect.gen(function*() {
    const options = yield* guardOptions
    const cors = withCors({ policy: options.policy, allowedOrigins: (yield* NodeConfig).corsOrigins ?? [] })
    const guarded = guard(options)
    return <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) => cors(guarded(app))
  }),
  { global: true }
)
