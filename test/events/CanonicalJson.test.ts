import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import fc from "fast-check"
import {
  BoundedJson,
  canonicalize,
  canonicalizeWithin,
  checkJsonBounds,
  decodeBounded,
  JsonTooDeep,
  JsonTooLarge,
  parseBoundedJson
} from "../../src/domain/CanonicalJson.js"

/** The recursive definition canonicalize used to be: the iterative one must write exactly the same text. */
const reference = (value: unknown): string => {
  if (value === null) return "null"
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? "null" : reference(item))).join(",")}]`
  if (typeof value === "object") {
    const record = value as Record<string, unknown>
    const keys = Object.keys(record).filter((key) => record[key] !== undefined).sort()
    return `{${keys.map((key) => `${JSON.stringify(key)}:${reference(record[key])}`).join(",")}}`
  }
  return JSON.stringify(value)
}

const nested = (depth: number, kind: "array" | "object") => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = kind === "array" ? [value] : { a: value }
  return value
}

describe("CanonicalJson", () => {
  it("writes RFC 8785 text: sorted keys, shortest numbers, no whitespace", () => {
    expect(canonicalize({ b: [1, 2.5, 1e21, -0], a: { "é": true, "\u20ac": null, "1": "x" }, c: undefined })).toBe(
      `{"a":{"1":"x","é":true,"€":null},"b":[1,2.5,1e+21,0]}`
    )
    expect(canonicalize([undefined, [], {}])).toBe("[null,[],{}]")
    expect(() => canonicalize({ n: Number.NaN })).toThrow("non-finite")
    expect(() => canonicalize({ f: () => 1 })).toThrow("type function")
  })

  it("matches the recursive definition on arbitrary JSON values", () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => canonicalize(value) === reference(value)), { numRuns: 500 })
  })

  it("canonicalizes a 100,000-deep value without a stack overflow", () => {
    expect(canonicalize(nested(100_000, "array"))).toBe("[".repeat(100_000) + "1" + "]".repeat(100_000))
    expect(canonicalize(nested(100_000, "object"))).toBe(`{"a":`.repeat(100_000) + "1" + "}".repeat(100_000))
  })

  it("refuses a value that contains itself instead of running for ever", () => {
    const cyclic: Array<unknown> = []
    cyclic.push({ again: cyclic })
    expect(() => canonicalize(cyclic)).toThrow("contains itself")
  })
})

describe("JSON bounds", () => {
  it("refuses a 3,000-deep array or object at the default depth of 64, in one line", () => {
    for (const kind of ["array", "object"] as const) {
      const deep = nested(3_000, kind)
      expect(() => canonicalize(deep)).not.toThrow()
      const problem = checkJsonBounds(deep)
      expect(problem).toBeInstanceOf(JsonTooDeep)
      expect(problem?.message).toBe("JSON value nested deeper than 64 levels")
    }
    expect(checkJsonBounds(nested(64, "array"))).toBeUndefined()
    expect(checkJsonBounds(nested(65, "object"))).toBeInstanceOf(JsonTooDeep)
    expect(checkJsonBounds(nested(10, "array"), { maxDepth: 9 })).toBeInstanceOf(JsonTooDeep)
  })

  it("measures size as the canonical text's UTF-8 bytes", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const bytes = new TextEncoder().encode(canonicalize(value)).length
        return checkJsonBounds(value, { maxDepth: 1_000, maxBytes: bytes }) === undefined &&
          checkJsonBounds(value, { maxDepth: 1_000, maxBytes: bytes - 1 }) instanceof JsonTooLarge
      }),
      { numRuns: 300 }
    )
  })

  it("canonicalizeWithin writes what canonicalize writes, or refuses exactly where checkJsonBounds does", () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: 0, max: 400 }),
        (value, maxDepth, maxBytes) => {
          const written = canonicalizeWithin(value, { maxDepth, maxBytes })
          const problem = checkJsonBounds(value, { maxDepth, maxBytes })
          if (problem === undefined) return written === canonicalize(value)
          // Both bounds broken: either refusal is right (the walks meet them in different orders).
          const other = problem instanceof JsonTooDeep
            ? checkJsonBounds(value, { maxDepth: 1_000, maxBytes })
            : checkJsonBounds(value, { maxDepth, maxBytes: Infinity })
          return typeof written !== "string" &&
            (written._tag === problem._tag || (other !== undefined && written._tag === other._tag))
        }
      ),
      { numRuns: 1_000 }
    )
    expect(canonicalizeWithin(nested(3_000, "object"))).toBeInstanceOf(JsonTooDeep)
    expect(canonicalizeWithin({ text: "é".repeat(10) }, { maxBytes: 30 })).toBeInstanceOf(JsonTooLarge)
    expect(canonicalizeWithin({ text: "é".repeat(10) }, { maxBytes: 31 })).toBe(`{"text":"${"é".repeat(10)}"}`)
  })

  it.effect("decode helpers refuse deep input before the schema sees it", () =>
    Effect.gen(function*() {
      const Task = Schema.Struct({ name: Schema.String, spec: Schema.Unknown })
      const deep = { name: "t", spec: nested(3_000, "array") }
      const refused = yield* Effect.flip(decodeBounded(Task)(deep))
      expect(refused.message).toBe("JSON value nested deeper than 64 levels")
      expect(yield* decodeBounded(Task)({ name: "t", spec: [1, { a: 2 }] })).toEqual({ name: "t", spec: [1, { a: 2 }] })

      const text = JSON.stringify(deep)
      expect((yield* Effect.flip(parseBoundedJson(text)))._tag).toBe("JsonTooDeep")
      expect((yield* Effect.flip(parseBoundedJson(text, { maxBytes: 1_000 })))._tag).toBe("JsonTooLarge")
      expect(yield* parseBoundedJson(`{"a":[1]}`, { maxBytes: 9 })).toEqual({ a: [1] })

      const Bounded = Schema.Struct({ spec: BoundedJson() })
      expect(Either.isLeft(Schema.decodeUnknownEither(Bounded)({ spec: nested(3_000, "object") }))).toBe(true)
      expect(Schema.decodeUnknownSync(Bounded)({ spec: nested(64, "object") })).toEqual({ spec: nested(64, "object") })
    }))
})
