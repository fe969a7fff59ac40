/**
 * RFC 8785 (JSON Canonicalization Scheme): one byte-exact text per JSON value, so hashes and
 * signatures over JSON are reproducible on every node and in every language.
 */
import type { ParseResult } from "effect"
import { Effect, Schema } from "effect"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

export class CanonicalJsonError extends Error {
  override readonly name = "CanonicalJsonError"
}

/** An array or object being written: its members, the keys of an object, and how far we got. */
interface Frame {
  readonly members: ReadonlyArray<unknown> | Readonly<Record<string, unknown>>
  /** Sorted keys for an object, undefined for an array. */
  readonly keys: ReadonlyArray<string> | undefined
  readonly length: number
  index: number
}

// A cycle makes the stack grow for ever: past this depth we look for one, and again each time the
// depth doubles, so an honest deep value pays for the look-ups at most twice its size.
const FIRST_CYCLE_CHECK = 10_000

const scalarText = (value: unknown): string => {
  switch (typeof value) {
    case "string":
      // Keys are written by JSON.stringify too. RFC 8785 (3.2.2.2) wants an error on a lone surrogate;
      // JSON.stringify writes it as a \udxxx escape, and we keep that: the text is still one ASCII
      // spelling on every node, and a payload from the network carrying one cannot make the signed-command
      // gate or an event append throw (a defect, not a refusal).
      return JSON.stringify(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`cannot canonicalize non-finite number ${value}`)
      // JSON.stringify already uses the ECMAScript shortest round-trip form that RFC 8785 requires.
      return JSON.stringify(value)
    default:
      throw new CanonicalJsonError(`cannot canonicalize a value of type ${typeof value}`)
  }
}

const hasCycle = (stack: ReadonlyArray<Frame>): boolean =>
  new Set(stack.map((frame) => frame.members)).size !== stack.length

/**
 * Serializes a JSON value canonically: keys sorted by UTF-16 code units, ECMAScript number form.
 * Iterative (an explicit stack, no recursion), so no nesting depth can overflow the call stack.
 */
export const canonicalize = (value: unknown): string =>
  write(value, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY) as string

/**
 * The canonical text of `value` if it keeps within `bounds`, else the first bound it breaks: one walk
 * that stops as soon as a bound is crossed, for input that has to be both checked and serialized.
 */
export const canonicalizeWithin = (value: unknown, bounds: JsonBounds = {}): string | JsonBoundsError => {
  const maxBytes = bounds.maxBytes ?? Number.POSITIVE_INFINITY
  const written = write(value, bounds.maxDepth ?? DEFAULT_MAX_JSON_DEPTH, maxBytes)
  if (typeof written !== "string") return written
  return written.length <= maxBytes / 3 || utf8Length(written) <= maxBytes ? written : new JsonTooLarge({ maxBytes })
}

/**
 * The walk behind both: past `maxDepth` open containers it answers JsonTooDeep, and once the text
 * is longer than `maxBytes` UTF-16 units (each at least one UTF-8 byte) JsonTooLarge.
 */
const write = (value: unknown, maxDepth: number, maxBytes: number): string | JsonBoundsError => {
  const stack: Array<Frame> = []
  let text = ""
  let next: unknown = value
  let pending = true // `next` is a value still to be written
  let cycleCheckAt = FIRST_CYCLE_CHECK
  while (true) {
    if (pending) {
      if (typeof next === "object" && next !== null) {
        // This container opens one more level than the ones around it: `[]` is as deep as `[1]`.
        if (stack.length + 1 > maxDepth) return new JsonTooDeep({ maxDepth })
        if (Array.isArray(next)) {
          if (next.length === 0) text += "[]"
          else {
            text += "["
            stack.push({ members: next, keys: undefined, length: next.length, index: 0 })
          }
        } else {
          const record = next as Record<string, unknown>
          const keys = Object.keys(record).filter((key) => record[key] !== undefined).sort(compareUtf16)
          if (keys.length === 0) text += "{}"
          else {
            text += "{"
            stack.push({ members: record, keys, length: keys.length, index: 0 })
          }
        }
        if (stack.length >= cycleCheckAt) {
          if (hasCycle(stack)) throw new CanonicalJsonError("cannot canonicalize a value that contains itself")
          cycleCheckAt = stack.length * 2
        }
      } else {
        text += next === null ? "null" : scalarText(next)
      }
      if (text.length > maxBytes) return new JsonTooLarge({ maxBytes })
    }
    const frame = stack[stack.length - 1]
    if (frame === undefined) return text
    if (frame.index === frame.length) {
      text += frame.keys === undefined ? "]" : "}"
      stack.pop()
      pending = false
      continue
    }
    if (frame.index > 0) text += ","
    if (frame.keys === undefined) {
      const item = (frame.members as ReadonlyArray<unknown>)[frame.index]
      next = item === undefined ? null : item
    } else {
      const key = frame.keys[frame.index]!
      text += `${JSON.stringify(key)}:`
      next = (frame.members as Readonly<Record<string, unknown>>)[key]
    }
    frame.index++
    pending = true
  }
}

// Array.prototype.sort's default comparison is by UTF-16 code units, which is what RFC 8785 asks for;
// spelled out so nobody "fixes" it with localeCompare.
const compareUtf16 = (left: string, right: string): number => (left < right ? -1 : left > right ? 1 : 0)

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

/** UTF-8 size of JSON text (whose surrogates always come in pairs: JSON.stringify escapes a lone one). */
export const utf8Length = (text: string): number => {
  let bytes = text.length
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index)
    if (unit >= 0x80) bytes += unit < 0x800 ? 1 : unit >= 0xd800 && unit <= 0xdfff ? 1 : 2
  }
  return bytes
}

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
