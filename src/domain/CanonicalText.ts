/**
 * RFC 8785 (JSON Canonicalization Scheme) as text: one byte-exact string per JSON value. Plain
 * TypeScript with no dependency, so a web page bundles it small; CanonicalJson.ts adds the bounds
 * checks and their typed errors.
 */

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
  writeCanonical(value, Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY) as string

/** A bound the walk crossed: too deep (more than `maxDepth` open containers) or too long. */
export type BoundCrossed = { readonly crossed: "depth" } | { readonly crossed: "bytes" }

/**
 * The walk behind canonicalize and CanonicalJson's canonicalizeWithin: past `maxDepth` open
 * containers it answers `{ crossed: "depth" }`, and once the text is longer than `maxBytes` UTF-16
 * units (each at least one UTF-8 byte) `{ crossed: "bytes" }`.
 */
export const writeCanonical = (value: unknown, maxDepth: number, maxBytes: number): string | BoundCrossed => {
  const stack: Array<Frame> = []
  let text = ""
  let next: unknown = value
  let pending = true // `next` is a value still to be written
  let cycleCheckAt = FIRST_CYCLE_CHECK
  while (true) {
    if (pending) {
      if (typeof next === "object" && next !== null) {
        // This container opens one more level than the ones around it: `[]` is as deep as `[1]`.
        if (stack.length + 1 > maxDepth) return { crossed: "depth" }
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
      if (text.length > maxBytes) return { crossed: "bytes" }
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

/** UTF-8 size of JSON text (whose surrogates always come in pairs: JSON.stringify escapes a lone one). */
export const utf8Length = (text: string): number => {
  let bytes = text.length
  for (let index = 0; index < text.length; index++) {
    const unit = text.charCodeAt(index)
    if (unit >= 0x80) bytes += unit < 0x800 ? 1 : unit >= 0xd800 && unit <= 0xdfff ? 1 : 2
  }
  return bytes
}
