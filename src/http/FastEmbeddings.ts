/**
 * POST /v1/embeddings answered on Node's request event, ahead of the Effect router. For a one-text
 * embedding the router's own work per request (a fiber with its context, the route match, the HttpApi
 * handler, the guards' wrapping, the response's conversion) cost more than the model run: the node's
 * thread, which also reads every request, was the bottleneck. Here the body is read, decoded and
 * handed to InferenceServing (the same service, queue and batches the router's handler uses), and the
 * reply written with one `end`.
 *
 * Only requests that pass the same early checks as every route (Guards.refuseEarly: Host, Origin,
 * body cap) and that announce their body's length take this path; any other request, including one
 * the guards would refuse, goes on to the router, which answers it as before.
 */
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import type { IncomingMessage, RequestListener, Server, ServerResponse } from "node:http"
import { InferenceServing } from "../serve/OpenAi.js"
import { decodeRequest, EmbeddingRequest, invalidRequest, type OpenAiError } from "../serve/OpenAiSchema.js"
import { type GuardOptions, guardOptions, openAiRefusal, pathOf, refuseEarly } from "./Guards.js"
import { ADAPTER_HEADER } from "./OpenAiRoutes.js"

const decodeEmbedding = decodeRequest(EmbeddingRequest)

const reply = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  if (response.headersSent || response.destroyed) return
  const text = JSON.stringify(body)
  response.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    ...headers
  })
  response.end(text)
}

const fail = (response: ServerResponse, error: OpenAiError) => reply(response, error.status, error.body)

/** Whether this path takes the request: the route, a declared length within the cap, and nothing the guards refuse. */
const takes = (request: IncomingMessage, options: GuardOptions) => {
  if (request.method !== "POST" || request.url === undefined || pathOf(request.url) !== "/v1/embeddings") return false
  const length = Number(request.headers["content-length"] ?? Number.NaN)
  if (!Number.isSafeInteger(length) || length > options.maxBodyBytes) return false
  return refuseEarly({ method: request.method, url: request.url, headers: request.headers }, options, openAiRefusal) ===
    undefined
}

/**
 * A handler that answers the requests it takes and returns true, or returns false and leaves the
 * request untouched for the router.
 */
export const makeFastEmbeddings = Effect.gen(function*() {
  const serving = yield* InferenceServing
  const options = yield* guardOptions
  const runtime = yield* Effect.runtime<never>()
  const run = Runtime.runCallback(runtime)

  const answer = (body: string, response: ServerResponse) => {
    let parsed: unknown
    try {
      parsed = JSON.parse(body)
    } catch {
      return fail(response, invalidRequest("the request body is not JSON", null, "invalid_json"))
    }
    const decoded = decodeEmbedding(parsed)
    if (decoded._tag === "Left") return fail(response, decoded.left)
    const cancel = run(serving.embeddings(decoded.right), {
      onExit: (exit) => {
        if (Exit.isSuccess(exit)) {
          const adapter = exit.value.adapter
          return reply(response, 200, exit.value.value, adapter === undefined ? {} : { [ADAPTER_HEADER]: adapter })
        }
        const failure = Cause.failureOption(exit.cause)
        if (failure._tag === "Some") return fail(response, failure.value)
        if (Cause.isInterruptedOnly(exit.cause)) return
        // As the guards answer a defect: a reference to the log, never the cause.
        const ref = globalThis.crypto.randomUUID().slice(0, 8)
        run(
          Effect.logError("internal error", exit.cause).pipe(
            Effect.annotateLogs({ ref, request: "POST /v1/embeddings" })
          )
        )
        reply(response, 500, { error: "internal error", ref })
      }
    })
    // A client that goes away stops its request (it leaves the queue, or its share of a run).
    response.once("close", () => {
      if (!response.writableEnded) cancel()
    })
  }

  return (request: IncomingMessage, response: ServerResponse): boolean => {
    if (!takes(request, options)) return false
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.once("end", () => answer(Buffer.concat(chunks).toString("utf8"), response))
    request.once("error", () => response.destroy())
    return true
  }
})

/**
 * Puts the fast path in front of the platform's request handler on `server`; built after the router
 * is serving (its handler is the server's request listener then), and undone with the layer.
 */
export const fastEmbeddingsLayer = (server: Server) =>
  Layer.scopedDiscard(Effect.gen(function*() {
    const fast = yield* makeFastEmbeddings
    // Node types a listener list as bare functions; these are the request listeners added with `on("request")`.
    const platform = server.listeners("request") as Array<RequestListener>
    const dispatch: RequestListener = (request, response) => {
      if (fast(request, response)) return
      for (const listener of platform) listener.call(server, request, response)
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        for (const listener of platform) server.removeListener("request", listener)
        server.on("request", dispatch)
      }),
      () =>
        Effect.sync(() => {
          server.removeListener("request", dispatch)
          for (const listener of platform) server.on("request", listener)
        })
    )
  }))
