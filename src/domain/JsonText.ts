/**
 * JSON read from a file or the network, decoded with a Schema whose codec is built once: bad content
 * is one line naming where it came from and the first thing wrong, never a value cast to a type.
 */
import { Data, Either, ParseResult, Schema } from "effect"

export class JsonTextError
  extends Data.TaggedError("JsonTextError")<{ readonly source: string; readonly problem: string }>
{
  override get message() {
    return `${this.source}: ${this.problem}`
  }
}

// The first issue, with the path to it: `alpha: is missing`, `done.0.1: Expected number, actual "50"`.
const firstIssue = (error: ParseResult.ParseError) => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issue === undefined) return error.message
  const message = issue.message.replace(/\s+/g, " ")
  return issue.path.length === 0 ? message : `${issue.path.join(".")}: ${message}`
}

/** A decoder of JSON text into `schema`'s type; build it once per schema, at module level. */
export const jsonDecoder = <A, I>(schema: Schema.Schema<A, I>) => jsonValueDecoder(Schema.parseJson(schema))

/** Like `jsonDecoder`, for JSON a caller has already parsed (an object handed to a library function). */
export const jsonValueDecoder = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknownEither(schema)
  return (value: unknown, source: string): Either.Either<A, JsonTextError> =>
    Either.mapLeft(decode(value), (error) => new JsonTextError({ source, problem: firstIssue(error) }))
}

/** Like `jsonDecoder`, throwing the error: for synchronous readers inside an `Effect.try`. */
export const jsonDecoderSync = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = jsonDecoder(schema)
  return (text: string, source: string): A => Either.getOrThrowWith(decode(text, source), (error) => error)
}

/** Any JSON value, for content whose shape another decoder checks (a tokenizer, a manifest). */
export const JsonValue = Schema.Unknown

/** A JSON object whose members another reader interprets (a model's config.json). */
export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })
