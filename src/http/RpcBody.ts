/**
 * What /rpc accepts and what it answers: a body of NDJSON messages in @effect/rpc's client shape,
 * checked before the RPC server parses it, and replies whose defects carry a reference, not internals.
 */
import { HttpBody, HttpServerResponse } from "@effect/platform"
import { Effect, Either, Schema, Stream } from "effect"

/** The content type @effect/rpc's NDJSON serialization sends (RpcSerialization.ndjson). */
export const RPC_CONTENT_TYPE = "application/ndjson"

// The RPC server turns ids into bigints with BigInt(), which throws on anything but an integer.
const RequestId = Schema.String.pipe(Schema.pattern(/^-?\d{1,20}$/))

const ClientMessage = Schema.Union(
  Schema.Struct({
    _tag: Schema.Literal("Request"),
    id: RequestId,
    tag: Schema.String,
    payload: Schema.Unknown,
    headers: Schema.Array(Schema.Tuple(Schema.String, Schema.String)),
    traceId: Schema.optional(Schema.String),
    spanId: Schema.optional(Schema.String),
    sampled: Schema.optional(Schema.Boolean)
  }),
  Schema.Struct({ _tag: Schema.Literal("Ack", "Interrupt"), requestId: RequestId }),
  Schema.Struct({ _tag: Schema.Literal("Ping", "Eof") })
)
const decodeMessage = Schema.decodeUnknownEither(Schema.parseJson(ClientMessage))

/** Why an /rpc body is refused, in one line, or undefined when every message is well formed. */
export const rpcBodyProblem = (body: string): string | undefined => {
  const lines = body.split("\n")
  const unterminated = lines.pop()
  if (unterminated !== undefined && unterminated.trim() !== "") {
    return "the last RPC message does not end with a newline"
  }
  if (lines.length === 0) return "the body holds no RPC message"
  for (let index = 0; index < lines.length; index++) {
    if (Either.isLeft(decodeMessage(lines[index]))) {
      return `RPC message ${index + 1} is not an @effect/rpc message (JSON with _tag, id, tag, payload and headers)`
    }
  }
  return undefined
}

const DEFECT_PREFIX = "{\"_tag\":\"Defect\""
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const defectMarker = Buffer.from("\"_tag\":\"Defect\"")

const containsMarker = (bytes: Uint8Array) =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes(defectMarker)

/**
 * Replaces the defect of every `Defect` line (a handler that died: its message can name files,
 * SQL, internal state) with a reference; `report` logs the original under that reference.
 */
const scrubLines = (bytes: Uint8Array, report: (defect: string) => Effect.Effect<string>) => {
  if (!containsMarker(bytes)) return Effect.succeed(bytes)
  const lines = decoder.decode(bytes).split("\n")
  return Effect.forEach(lines, (line) =>
    line.startsWith(DEFECT_PREFIX)
      ? Effect.map(report(line), (ref) =>
        JSON.stringify({ _tag: "Defect", defect: { name: "InternalError", message: `internal error (ref ${ref})` } }))
      : Effect.succeed(line)).pipe(Effect.map((scrubbed) => encoder.encode(scrubbed.join("\n"))))
}

/** The RPC server's reply with its defects scrubbed, whether it came whole or as a stream. */
export const scrubRpcReply = (
  response: HttpServerResponse.HttpServerResponse,
  report: (defect: string) => Effect.Effect<string>
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const body = response.body
  if (body._tag === "Uint8Array") {
    return Effect.map(
      scrubLines(body.body, report),
      (bytes) =>
        bytes === body.body
          ? response
          : HttpServerResponse.setBody(response, HttpBody.uint8Array(bytes, body.contentType))
    )
  }
  if (body._tag === "Stream") {
    // The server writes each message whole into one chunk, so a chunk never splits a line.
    const stream = Stream.mapEffect(body.stream, (chunk) => scrubLines(chunk, report))
    return Effect.succeed(HttpServerResponse.setBody(response, HttpBody.stream(stream, body.contentType)))
  }
  return Effect.succeed(response)
}
