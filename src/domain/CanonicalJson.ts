/**
 * RFC 8785 (JSON Canonicalization Scheme): one byte-exact text per JSON value, so hashes and
 * signatures over JSON are reproducible on every node and in every language.
 */

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

export class CanonicalJsonError extends Error {
  override readonly name = "CanonicalJsonError"
}

/** Serializes a JSON value canonically: keys sorted by UTF-16 code units, ECMAScript number form. */
export const canonicalize = (value: unknown): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "boolean":
      return value ? "true" : "false"
    case "number":
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`cannot canonicalize non-finite number ${value}`)
      // JSON.stringify already uses the ECMAScript shortest round-trip form that RFC 8785 requires.
      return JSON.stringify(value)
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) {
        return `[${value.map((item) => (item === undefined ? "null" : canonicalize(item))).join(",")}]`
      }
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).filter((key) => record[key] !== undefined).sort(compareUtf16)
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalize(record[key])}`).join(",")}}`
    }
    default:
      throw new CanonicalJsonError(`cannot canonicalize a value of type ${typeof value}`)
  }
}

// Array.prototype.sort's default comparison is by UTF-16 code units, which is what RFC 8785 asks for;
// spelled out so nobody "fixes" it with localeCompare.
const compareUtf16 = (left: string, right: string): number => (left < right ? -1 : left > right ? 1 : 0)
