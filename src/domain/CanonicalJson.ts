/**
 * RFC 8785 (JSON Canonicalization Scheme): one byte-exact text per JSON value, so hashes and
 * signatures over JSON are reproducible on every node and in every language.
 */
import type { ParseResult } from "effect"
import { Effect, Schema } from "effect"
import { utf8Length, writeCanonical } from "./CanonicalText.js"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

export { canonicalize, CanonicalJsonError, utf8Length } from "./CanonicalText.js"

/**
 * The canonical text of `value` if it keeps within `bounds`, else the first bound it breaks: one walk
 * that stops as soon as a bound is crossed, for input that has to be both checked and serialized.
 */
export const canonicalizeWithin = (value: unknown, bounds: JsonBounds = {}): string | JsonBoundsError => {
  const maxBytes = bounds.maxBytes ?? Number.POSITIVE_INFINITY
  const maxDepth = bounds.maxDepth ?? DEFAULT_MAX_JSON_DEPTH
  const written = writeCanonical(value, maxDepth, maxBytes)
  if (typeof written !== "string") {
    return written.crossed === "depth" ? new JsonTooDeep({ maxDepth }) : new JsonTooLarge({ maxBytes })
  }
  return written.length <= maxBytes / 3 || utf8Length(written) <= maxBytes ? written : new JsonTooLarge({ maxBytes })
}

export interface JsonBounds {
  /** Deepest nesting of arrays and objects accepted; a scalar is depth 0, `[1]` depth 1. Default 64. */
  readonly maxDepth?: number | undefined
  /** Largest accepted size of the value's canonical JSON, in UTF-8 bytes. Default: no limit. */
  readonly maxBytes?: number | undefined
}

export const DEFAULT_MAX_JSON_DEPTH = 64

export class JsonTooDeep extends Schema.TaggedError<JsonTooDeep>()("JsonTooDeep", { maxDepth: Schema.Number }) {
  override get message() {
    return `JSON value nested deeper than ${this.maxDepth} levels`
  }
}

export class JsonTooLarge extends Schema.TaggedError<JsonTooLarge>()("JsonTooLarge", { maxBytes: Schema.Number }) {
  override get message() {
    return `JSON value larger than ${this.maxBytes} bytes`
  }
}

export type JsonBoundsError = JsonTooDeep | JsonTooLarge

/**
 * The first bound `value` breaks, or undefined. Walks the value iteratively and stops as soon as a
 * bound is crossed, so a hostile value costs no more than the bound it breaks. Sizes count the
 * canonical text: members, keys, commas, colons and brackets.
 */
export const checkJsonBounds = (value: unknown, bounds: JsonBounds = {}): JsonBoundsError | undefined => {
  const maxDepth = bounds.maxDepth ?? DEFAULT_MAX_JSON_DEPTH
  const maxBytes = bounds.maxBytes ?? Number.POSITIVE_INFINITY
  // Each entry: a value still to visit and its depth (the number of containers around it).
  const values: Array<unknown> = [value]
  const depths: Array<number> = [0]
  let bytes = 0
  while (values.length > 0) {
    const next = values.pop()
    const depth = depths.pop()!
    if (typeof next === "object" && next !== null) {
      if (depth + 1 > maxDepth) return new JsonTooDeep({ maxDepth })
      if (Array.isArray(next)) {
        bytes += 2 + Math.max(0, next.length - 1)
        for (const item of next) {
          values.push(item)
          depths.push(depth + 1)
        }
      } else {
        const record = next as Record<string, unknown>
        const keys = Object.keys(record).filter((key) => record[key] !== undefined)
        bytes += 2 + Math.max(0, keys.length - 1)
        for (const key of keys) {
          bytes += utf8Length(JSON.stringify(key)) + 1
          values.push(record[key])
          depths.push(depth + 1)
        }
      }
    } else {
      bytes += next === undefined || next === null
        ? 4
        : typeof next === "string"
        ? utf8Length(JSON.stringify(next))
        : String(next).length
    }
    if (bytes > maxBytes) return new JsonTooLarge({ maxBytes })
  }
  return undefined
}

/** Fails with the bound `value` breaks; succeeds with the value as it is. */
export const boundedJson = (value: unknown, bounds: JsonBounds = {}): Effect.Effect<unknown, JsonBoundsError> => {
  const problem = checkJsonBounds(value, bounds)
  return problem === undefined ? Effect.succeed(value) : Effect.fail(problem)
}

/** Parses JSON text within bounds: the text's size is checked before parsing, the depth after. */
export const parseBoundedJson = (
  text: string,
  bounds: JsonBounds = {}
): Effect.Effect<unknown, JsonBoundsError | ParseResult.ParseError> =>
  bounds.maxBytes !== undefined && utf8Length(text) > bounds.maxBytes
    ? Effect.fail(new JsonTooLarge({ maxBytes: bounds.maxBytes }))
    : Effect.flatMap(
      Schema.decodeUnknown(Schema.parseJson())(text),
      (value) => boundedJson(value, { maxDepth: bounds.maxDepth })
    )

/**
 * Any JSON value within `bounds`: for `Unknown` fields (payloads, task specs) that would otherwise
 * carry a 100,000-deep value into the journal. Refused with the bound's one-line message.
 */
export const BoundedJson = (bounds: JsonBounds = {}) =>
  Schema.Unknown.pipe(
    Schema.filter((input) => checkJsonBounds(input, bounds)?.message ?? true, {
      identifier: "BoundedJson",
      description: `a JSON value nested at most ${bounds.maxDepth ?? DEFAULT_MAX_JSON_DEPTH} levels deep`
    })
  )

/**
 * Decodes unknown input with `schema` after checking it against `bounds`: the check runs first, so a
 * recursive schema never walks a hostile value.
 */
export const decodeBounded =
  <A, I, R>(schema: Schema.Schema<A, I, R>, bounds: JsonBounds = {}) =>
  (input: unknown): Effect.Effect<A, JsonBoundsError | ParseResult.ParseError, R> =>
    Effect.flatMap(boundedJson(input, bounds), (checked) => Schema.decodeUnknown(schema)(checked))
