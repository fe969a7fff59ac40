/**
 * The OpenAI-compatible requests a node serves (embeddings, completions, chat completions) as Schemas,
 * the error shape every refusal takes, and which of OpenAI's parameters are refused or ignored.
 */
import { Data, Either, ParseResult, Schema } from "effect"

/** OpenAI's error body: `{ error: { message, type, param, code } }`, with the HTTP status it goes with. */
export class OpenAiError extends Data.TaggedError("OpenAiError")<{
  readonly status: number
  readonly message: string
  readonly type: "invalid_request_error" | "not_found_error" | "rate_limit_error" | "server_error"
  readonly param: string | null
  readonly code: string | null
}> {
  get body() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new OpenAiError({ status: 400, message, type: "invalid_request_error", param, code })

export const notFound = (message: string, param: string, code: string) =>
  new OpenAiError({ status: 404, message, type: "not_found_error", param, code })

export const serverError = (message: string, status = 500) =>
  new OpenAiError({ status, message, type: "server_error", param: null, code: null })

const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.greaterThanOrEqualTo(0))

/** Knobs shared by completions and chat completions; `null` means "not given", as OpenAI's clients send it. */
const generationFields = {
  model: Schema.String.pipe(Schema.minLength(1)),
  /** A stored LoRA adapter, `id[@version]`, made for `model` (this node's extension). */
  adapter: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.minLength(1)))),
  max_tokens: Schema.optional(Schema.NullOr(NonNegativeInt)),
  temperature: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.between(0, 2)))),
  top_p: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)))),
  stop: Schema.optional(
    Schema.NullOr(Schema.Union(Schema.String, Schema.Array(Schema.String).pipe(Schema.maxItems(4))))
  ),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean))
}

export const CompletionRequest = Schema.Struct({
  ...generationFields,
  /** One prompt: a string, or an array holding exactly one string. */
  prompt: Schema.Union(Schema.String, Schema.Tuple(Schema.String))
})
export type CompletionRequest = typeof CompletionRequest.Type

const TextPart = Schema.Struct({ type: Schema.Literal("text"), text: Schema.String })

export const ChatRequestMessage = Schema.Struct({
  role: Schema.Literal("system", "developer", "user", "assistant"),
  content: Schema.Union(Schema.String, Schema.Array(TextPart)),
  name: Schema.optional(Schema.String)
})

export const ChatCompletionRequest = Schema.Struct({
  ...generationFields,
  /** The newer name of `max_tokens`. */
  max_completion_tokens: Schema.optional(Schema.NullOr(NonNegativeInt)),
  messages: Schema.NonEmptyArray(ChatRequestMessage)
})
export type ChatCompletionRequest = typeof ChatCompletionRequest.Type

/** Texts embedded in one request at most. */
export const MAX_EMBEDDING_INPUTS = 2048

export const EmbeddingRequest = Schema.Struct({
  model: Schema.String.pipe(Schema.minLength(1)),
  adapter: Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.minLength(1)))),
  input: Schema.Union(
    Schema.String,
    Schema.Array(Schema.String).pipe(Schema.minItems(1), Schema.maxItems(MAX_EMBEDDING_INPUTS))
  ),
  /** `base64`: little-endian float32 bytes, what the official clients ask for by default. */
  encoding_format: Schema.optional(Schema.NullOr(Schema.Literal("float", "base64")))
})
export type EmbeddingRequest = typeof EmbeddingRequest.Type

/**
 * Parameters that change nothing when ignored: `user` (an end-user id for abuse tracking), and the
 * values of the knobs we do not serve that ask for what we do anyway (`n: 1`, `logprobs: false`...).
 */
const IGNORED = new Set(["user"])

/** Each unsupported parameter, with the value that asks for the default behaviour (accepted). */
const DEFAULT_VALUES: Record<string, ReadonlyArray<unknown>> = {
  n: [1, null],
  best_of: [1, null],
  logprobs: [false, null],
  echo: [false, null],
  presence_penalty: [0, null],
  frequency_penalty: [0, null],
  stream_options: [null],
  tools: [null],
  tool_choice: ["none", null],
  parallel_tool_calls: [null],
  functions: [null],
  function_call: ["none", null],
  logit_bias: [null],
  response_format: [null],
  seed: [null],
  suffix: [null],
  top_logprobs: [null],
  dimensions: [null]
}

/**
 * Refuses parameters this node does not serve, so a client never gets an answer that silently
 * ignored what it asked for (n > 1, logprobs, tools...). `response_format: {type: "text"}` is the
 * default and is accepted.
 */
const refuseUnsupported = (body: Record<string, unknown>, known: ReadonlySet<string>) => {
  for (const [key, value] of Object.entries(body)) {
    if (known.has(key) || IGNORED.has(key)) continue
    const defaults = DEFAULT_VALUES[key]
    if (defaults !== undefined && defaults.includes(value)) continue
    if (key === "response_format" && typeof value === "object" && value !== null && "type" in value) {
      if (value.type === "text") continue
    }
    return invalidRequest(
      defaults === undefined
        ? `unknown parameter: ${key}`
        : `${key} ${JSON.stringify(value)} is not supported by this node`,
      key,
      defaults === undefined ? "unknown_parameter" : "unsupported_parameter"
    )
  }
  return undefined
}

/** A request body decoded, or the one line saying what is wrong with it and where. */
export const decodeRequest = <A, I>(schema: Schema.Schema<A, I> & { readonly fields: Schema.Struct.Fields }) => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "first" })
  const known = new Set(Object.keys(schema.fields))
  return (body: unknown): Either.Either<A, OpenAiError> => {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return Either.left(invalidRequest("the request body must be a JSON object"))
    }
    const refused = refuseUnsupported(body as Record<string, unknown>, known)
    if (refused !== undefined) return Either.left(refused)
    return Either.mapLeft(decode(body), (error) => {
      const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0]
      const param = issue?.path.map(String).join(".") ?? ""
      const problem = issue?._tag === "Missing" ? "is required" : issue?.message ?? "is invalid"
      return invalidRequest(
        param === "" ? `invalid request: ${problem}` : `${param}: ${problem.replace(/\n/g, " ")}`,
        param === "" ? null : param,
        issue?._tag === "Missing" ? "missing_required_parameter" : "invalid_value"
      )
    })
  }
}
