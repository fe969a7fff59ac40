/**
 * Handlers of the OpenAI-compatible routes: the body read within the node's cap, decoded, handed to
 * InferenceServing, and the answer written as JSON or server-sent events; every refusal is OpenAI's
 * error shape (`{error: {message, type, param, code}}`) with a 4xx, so OpenAI's clients report it.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { NodeHttpServerRequest } from "@effect/platform-node"
import type { Either } from "effect"
import { Effect, Stream } from "effect"
import { httpLimitsOf, NodeConfig } from "../layers/NodeConfig.js"
import { InferenceServing, type Served } from "../serve/OpenAi.js"
import {
  ChatCompletionRequest,
  CompletionRequest,
  decodeRequest,
  EmbeddingRequest,
  invalidRequest,
  OpenAiError
} from "../serve/OpenAiSchema.js"
import { NodeApi } from "./Api.js"
import { declaredLength, readBoundedText } from "./ContentRoutes.js"

export const openAiErrorResponse = (error: OpenAiError) =>
  HttpServerResponse.unsafeJson(error.body, { status: error.status })

const unreadable = () => invalidRequest("the request body could not be read")

/**
 * A body whose Content-Length is within the cap, read in one piece: Node's parser never delivers more
 * than the length announced, so no count is kept per chunk. (Reading it as a stream cost more than
 * the model run of a one-text embedding.)
 */
const readDeclared = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<string, OpenAiError>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    const onData = (chunk: Buffer) => chunks.push(chunk)
    const onEnd = () => {
      stop()
      resume(Effect.succeed(Buffer.concat(chunks).toString("utf8")))
    }
    const onError = () => {
      stop()
      resume(Effect.fail(unreadable()))
    }
    const stop = () => {
      incoming.off("data", onData)
      incoming.off("end", onEnd)
      incoming.off("error", onError)
    }
    incoming.on("data", onData)
    incoming.on("end", onEnd)
    incoming.on("error", onError)
    return Effect.sync(stop)
  })

/** The body as JSON, within the node's body cap. */
const readJson = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.gen(function*() {
    const limit = httpLimitsOf(yield* NodeConfig).maxBodyBytes
    const announced = declaredLength(request)
    const text = announced !== undefined && announced <= limit
      ? yield* readDeclared(request)
      : yield* readBoundedText(request, "the request body", limit).pipe(
        Effect.mapError((error) =>
          error._tag === "BodyTooLarge"
            ? new OpenAiError({
              status: 413,
              message: `the request body is over ${limit} bytes`,
              type: "invalid_request_error",
              param: null,
              code: "body_too_large"
            })
            : unreadable()
        )
      )
    return yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: () => invalidRequest("the request body is not JSON", null, "invalid_json")
    })
  })

const decodeEmbedding = decodeRequest(EmbeddingRequest)
const decodeCompletion = decodeRequest(CompletionRequest)
const decodeChat = decodeRequest(ChatCompletionRequest)

const answer = <R>(run: Effect.Effect<HttpServerResponse.HttpServerResponse, OpenAiError, R>) =>
  Effect.catchAll(run, (error) => Effect.succeed(openAiErrorResponse(error)))

/** Which stored adapter ran the request (named by it or chosen by the pool), as `id@version`. */
export const ADAPTER_HEADER = "x-edge-net-adapter"

const adapterHeader = (served: Served<unknown>): Record<string, string> =>
  served.adapter === undefined ? {} : { [ADAPTER_HEADER]: served.adapter }

const json = (served: Served<unknown>) =>
  HttpServerResponse.unsafeJson(served.value, { headers: adapterHeader(served) })

const eventStream = (served: Served<Stream.Stream<string>>) =>
  HttpServerResponse.stream(Stream.encodeText(served.value), {
    contentType: "text/event-stream",
    headers: { "cache-control": "no-cache", "x-accel-buffering": "no", ...adapterHeader(served) }
  })

const generationRoute = <A extends { readonly stream?: boolean | null | undefined }>(
  request: HttpServerRequest.HttpServerRequest,
  decode: (body: unknown) => Either.Either<A, OpenAiError>,
  asked: (decoded: A) => Parameters<InferenceServing["complete"]>[0]
) =>
  answer(Effect.gen(function*() {
    const serving = yield* InferenceServing
    const decoded = yield* Effect.flatMap(readJson(request), decode)
    if (decoded.stream === true) return eventStream(yield* serving.completeStream(asked(decoded)))
    return json(yield* serving.complete(asked(decoded)))
  }))

export const OpenAiHandlers = HttpApiBuilder.group(NodeApi, "openai", (handlers) =>
  handlers
    .handleRaw("embeddings", ({ request }) =>
      answer(Effect.gen(function*() {
        const serving = yield* InferenceServing
        const decoded = yield* Effect.flatMap(readJson(request), decodeEmbedding)
        return json(yield* serving.embeddings(decoded))
      })))
    .handleRaw("completions", ({ request }) =>
      generationRoute(request, decodeCompletion, (decoded) => ({ kind: "completion", request: decoded })))
    .handleRaw("chatCompletions", ({ request }) =>
      generationRoute(request, decodeChat, (decoded) => ({ kind: "chat", request: decoded }))))
