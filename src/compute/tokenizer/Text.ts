/**
 * Character classes, regex translation and splitting as the Rust `tokenizers` library defines them, so
 * the components built on top split text exactly where the reference implementation does.
 */
import { fail } from "./TokenizerError.js"

const WHITE_SPACE = /^\p{White_Space}$/u
const PUNCTUATION = /^\p{P}$/u
const OTHER = /^\p{C}$/u
const SPACE_SEPARATOR = /^\p{Zs}$/u
const NUMERIC = /^[\p{Nd}\p{Nl}\p{No}]$/u
const NONSPACING_MARK = /\p{Mn}/gu
const MARK = /\p{M}/gu
const WORD = /^[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]$/u

// ASCII answers without a regex: most text is ASCII, and these run once per character.
const isAsciiWhitespace = (code: number) => code === 32 || (code >= 9 && code <= 13)
const isAsciiPunctuation = (code: number) =>
  (code >= 33 && code <= 47) || (code >= 58 && code <= 64) || (code >= 91 && code <= 96) || (code >= 123 && code <= 126)

/** Rust's `char::is_whitespace`: the Unicode White_Space property. */
export const isWhitespace = (char: string) => {
  const code = char.charCodeAt(0)
  return code < 128 ? isAsciiWhitespace(code) : WHITE_SPACE.test(char)
}

/** ASCII punctuation or any Unicode punctuation category, as BERT and the Punctuation pre-tokenizer use. */
export const isPunctuation = (char: string) => {
  const code = char.charCodeAt(0)
  return code < 128 ? isAsciiPunctuation(code) : PUNCTUATION.test(char)
}

export const isNumeric = (char: string) => NUMERIC.test(char)
export const isWordCharacter = (char: string) => WORD.test(char) || char === "_"

/** BERT's whitespace: tab, newline, carriage return, space and the space separators. */
export const isBertWhitespace = (char: string) => {
  const code = char.charCodeAt(0)
  return code < 128 ? code === 32 || code === 9 || code === 10 || code === 13 : SPACE_SEPARATOR.test(char)
}

/** BERT's control characters: every "other" category except tab, newline and carriage return. */
export const isBertControl = (char: string) => {
  const code = char.charCodeAt(0)
  if (code < 128) return (code < 32 && code !== 9 && code !== 10 && code !== 13) || code === 127
  return OTHER.test(char)
}

export const isChineseCharacter = (code: number) =>
  (code >= 0x4e00 && code <= 0x9fff) || (code >= 0x3400 && code <= 0x4dbf) || (code >= 0x20000 && code <= 0x2a6df) ||
  (code >= 0x2a700 && code <= 0x2b73f) || (code >= 0x2b740 && code <= 0x2b81f) ||
  (code >= 0x2b820 && code <= 0x2ceaf) ||
  (code >= 0xf900 && code <= 0xfaff) || (code >= 0x2f800 && code <= 0x2fa1f)

const NON_ASCII = /[^\x00-\x7f]/
export const isAscii = (text: string) => !NON_ASCII.test(text)

export const removeNonspacingMarks = (text: string) => text.replace(NONSPACING_MARK, "")
export const removeMarks = (text: string) => text.replace(MARK, "")

/** Per code point lowercasing, as Rust's `char::to_lowercase` does (no final-sigma context). */
export const lowercase = (text: string) => {
  // Only capital sigma lowercases differently in context; everything else maps the same one by one.
  if (!text.includes("\u03a3")) return text.toLowerCase()
  let out = ""
  for (const char of text) out += char.toLowerCase()
  return out
}

// ---------------------------------------------------------------------------------------------------
// GPT-2's byte to printable character table.

const buildByteTables = () => {
  const byteToChar: Array<string> = new Array(256)
  let extra = 0
  for (let byte = 0; byte < 256; byte++) {
    const printable = (byte >= 33 && byte <= 126) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff)
    byteToChar[byte] = String.fromCodePoint(printable ? byte : 256 + extra++)
  }
  const charToByte = new Map<string, number>()
  byteToChar.forEach((char, byte) => charToByte.set(char, byte))
  return { byteToChar, charToByte }
}

export const { byteToChar: BYTE_TO_CHAR, charToByte: CHAR_TO_BYTE } = buildByteTables()

const encoder = new TextEncoder()
export const utf8 = (text: string) => encoder.encode(text)
const decoder = new TextDecoder("utf-8", { fatal: false })
export const decodeUtf8 = (bytes: Uint8Array) => decoder.decode(bytes)

export const toByteLevel = (text: string) => {
  let out = ""
  for (const byte of utf8(text)) out += BYTE_TO_CHAR[byte]!
  return out
}

// ---------------------------------------------------------------------------------------------------
// Regular expressions written for Oniguruma (what `tokenizers` compiles) rewritten for JavaScript's
// `u` mode: Unicode-aware \s \d \w, inline (?i:...) groups, and escapes JavaScript rejects.

const SPACE_CLASS = "\\p{White_Space}"
const DIGIT_CLASS = "\\p{Nd}"
// Oniguruma's Unicode \w (what Split patterns compile with); Rust's regex crate adds Alphabetic and Join_Control.
const WORD_CLASS = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"
const SYNTAX = new Set(["^", "$", "\\", ".", "*", "+", "?", "(", ")", "[", "]", "{", "}", "|", "/"])

export const translateRegex = (pattern: string): string => {
  let out = ""
  let inClass = false
  let caseless = 0
  const groups: Array<boolean> = []
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!
    if (char === "\\") {
      const next = pattern[i + 1]
      if (next === undefined) return fail(`regex ${JSON.stringify(pattern)} ends with a backslash`)
      i++
      switch (next) {
        case "s":
          out += inClass ? SPACE_CLASS : `[${SPACE_CLASS}]`
          break
        case "S":
          out += inClass ? fail(`regex ${JSON.stringify(pattern)}: \\S inside a class`) : `[^${SPACE_CLASS}]`
          break
        case "d":
          out += inClass ? DIGIT_CLASS : `[${DIGIT_CLASS}]`
          break
        case "D":
          out += inClass ? fail(`regex ${JSON.stringify(pattern)}: \\D inside a class`) : `[^${DIGIT_CLASS}]`
          break
        case "w":
          out += inClass ? WORD_CLASS : `[${WORD_CLASS}]`
          break
        case "W":
          out += inClass ? fail(`regex ${JSON.stringify(pattern)}: \\W inside a class`) : `[^${WORD_CLASS}]`
          break
        case "p":
        case "P": {
          const close = pattern.indexOf("}", i)
          out += pattern.slice(i - 1, close + 1)
          i = close
          break
        }
        case "x": {
          if (pattern[i + 1] === "{") {
            const close = pattern.indexOf("}", i)
            out += `\\u{${pattern.slice(i + 2, close)}}`
            i = close
          } else {
            out += pattern.slice(i - 1, i + 3)
            i += 2
          }
          break
        }
        default:
          if (/[A-Za-z0-9]/.test(next) || SYNTAX.has(next) || (inClass && next === "-")) out += `\\${next}`
          else out += `\\u{${next.codePointAt(0)!.toString(16)}}`
      }
      continue
    }
    if (inClass) {
      if (char === "]") inClass = false
      out += char
      continue
    }
    if (char === "[") {
      inClass = true
      out += char
      if (pattern[i + 1] === "]") {
        out += "\\]"
        i++
      }
      continue
    }
    if (char === "(") {
      if (pattern.startsWith("(?i:", i)) {
        groups.push(true)
        caseless++
        out += "(?:"
        i += 3
        continue
      }
      if (pattern.startsWith("(?>", i) || /^\(\?[imsx-]+[:)]/.test(pattern.slice(i))) {
        fail(`regex ${JSON.stringify(pattern)} uses an unsupported group`)
      }
      groups.push(false)
      out += char
      continue
    }
    if (char === ")") {
      if (groups.pop() === true) caseless--
      out += char
      continue
    }
    if ((char === "+" || char === "*" || char === "?" || char === "}") && pattern[i + 1] === "+") {
      fail(`regex ${JSON.stringify(pattern)} uses a possessive quantifier`)
    }
    if (caseless > 0 && /[A-Za-z]/.test(char)) {
      out += `[${char.toLowerCase()}${char.toUpperCase()}]`
      continue
    }
    out += char
  }
  return out
}

export const compileRegex = (pattern: string): RegExp => {
  try {
    return new RegExp(translateRegex(pattern), "gu")
  } catch (error) {
    return fail(
      `cannot compile regex ${JSON.stringify(pattern)}: ${error instanceof Error ? error.message : String(error)}`
    )
  }
}

export const escapeRegex = (literal: string) => literal.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&")

// ---------------------------------------------------------------------------------------------------
// Splitting on matches with the library's delimiter behaviours.

export type SplitBehaviour = "Removed" | "Isolated" | "MergedWithPrevious" | "MergedWithNext" | "Contiguous"

/** Pieces of `text` marked as matched or not, covering it from start to end. */
export type Marked = Array<{ readonly start: number; readonly end: number; readonly match: boolean }>

export const markRegex = (text: string, regex: RegExp): Marked => {
  const marked: Marked = []
  let previous = 0
  regex.lastIndex = 0
  for (const found of text.matchAll(regex)) {
    const start = found.index
    const end = start + found[0].length
    if (start !== previous) marked.push({ start: previous, end: start, match: false })
    marked.push({ start, end, match: true })
    previous = end
  }
  if (previous !== text.length) marked.push({ start: previous, end: text.length, match: false })
  return marked
}

/** Every character for which `test` holds is a match of its own. */
export const markChars = (text: string, test: (char: string) => boolean): Marked => {
  const marked: Marked = []
  let previous = 0
  let offset = 0
  for (const char of text) {
    const end = offset + char.length
    if (test(char)) {
      if (offset !== previous) marked.push({ start: previous, end: offset, match: false })
      marked.push({ start: offset, end, match: true })
      previous = end
    }
    offset = end
  }
  if (previous !== text.length) marked.push({ start: previous, end: text.length, match: false })
  return marked
}

export const splitMarked = (text: string, marked: Marked, behaviour: SplitBehaviour, invert = false): Array<string> => {
  const pieces = invert ? marked.map((piece) => ({ ...piece, match: !piece.match })) : marked
  const ranges: Array<[number, number]> = []
  switch (behaviour) {
    case "Removed":
      for (const piece of pieces) if (!piece.match) ranges.push([piece.start, piece.end])
      break
    case "Isolated":
      for (const piece of pieces) ranges.push([piece.start, piece.end])
      break
    case "Contiguous": {
      let previousMatch = false
      for (const piece of pieces) {
        const last = ranges[ranges.length - 1]
        if (piece.match && previousMatch && last !== undefined) last[1] = piece.end
        else ranges.push([piece.start, piece.end])
        previousMatch = piece.match
      }
      break
    }
    case "MergedWithPrevious": {
      let previousMatch = false
      for (const piece of pieces) {
        const last = ranges[ranges.length - 1]
        if (piece.match && !previousMatch && last !== undefined) last[1] = piece.end
        else ranges.push([piece.start, piece.end])
        previousMatch = piece.match
      }
      break
    }
    case "MergedWithNext": {
      let previousMatch = false
      for (let i = pieces.length - 1; i >= 0; i--) {
        const piece = pieces[i]!
        const last = ranges[ranges.length - 1]
        if (piece.match && !previousMatch && last !== undefined) last[0] = piece.start
        else ranges.push([piece.start, piece.end])
        previousMatch = piece.match
      }
      ranges.reverse()
      break
    }
  }
  const out: Array<string> = []
  for (const [start, end] of ranges) if (end > start) out.push(text.slice(start, end))
  return out
}

export const parseBehaviour = (value: unknown, fallback: SplitBehaviour): SplitBehaviour => {
  if (value === undefined || value === null) return fallback
  const names: Record<string, SplitBehaviour> = {
    removed: "Removed",
    isolated: "Isolated",
    mergedwithprevious: "MergedWithPrevious",
    merged_with_previous: "MergedWithPrevious",
    mergedwithnext: "MergedWithNext",
    merged_with_next: "MergedWithNext",
    contiguous: "Contiguous"
  }
  const name = typeof value === "string" ? names[value.toLowerCase()] : undefined
  return name ?? fail(`unknown split behaviour ${JSON.stringify(value)}`)
}

/** A `{"String": "..."}` or `{"Regex": "..."}` pattern from tokenizer.json as a global regex. */
export const patternRegex = (pattern: unknown, where: string): RegExp => {
  if (typeof pattern === "object" && pattern !== null) {
    const record = pattern as Record<string, unknown>
    if (typeof record.String === "string") return new RegExp(escapeRegex(record.String), "gu")
    if (typeof record.Regex === "string") return compileRegex(record.Regex)
  }
  if (typeof pattern === "string") return new RegExp(escapeRegex(pattern), "gu")
  return fail(`${where}: pattern must be {"String": ...} or {"Regex": ...}`)
}
