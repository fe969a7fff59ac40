/**
 * Added tokens (special tokens and user additions): found in the text before the model sees it, on the
 * raw text for tokens marked `normalized: false` and on the normalized text for the others, leftmost
 * longest first, with the lstrip / rstrip / single_word rules of the library.
 */
import { Schema } from "effect"
import type { Normalizer } from "./Normalizers.js"
import { isWhitespace, isWordCharacter } from "./Text.js"

export interface AddedToken {
  readonly id: number
  readonly content: string
  readonly special: boolean
  readonly singleWord: boolean
  readonly lstrip: boolean
  readonly rstrip: boolean
  readonly normalized: boolean
}

/** A stretch of input: either an added token, or text (normalized) still to be pre-tokenized. */
export type Segment =
  | { readonly kind: "token"; readonly id: number }
  | { readonly kind: "text"; readonly text: string; readonly first: boolean }

/** An entry of tokenizer.json's `added_tokens`: the members this reader uses, each flag optional. */
export const AddedTokenJson = Schema.Struct({
  id: Schema.Number.pipe(Schema.int(), Schema.nonNegative()),
  content: Schema.String,
  special: Schema.optional(Schema.Boolean),
  single_word: Schema.optional(Schema.Boolean),
  lstrip: Schema.optional(Schema.Boolean),
  rstrip: Schema.optional(Schema.Boolean),
  normalized: Schema.optional(Schema.Boolean)
}).annotations({ message: () => "is not an object" })

export const parseAddedTokens = (
  entries: ReadonlyArray<typeof AddedTokenJson.Type> | null | undefined
): Array<AddedToken> =>
  (entries ?? []).map((entry) => {
    const special = entry.special ?? false
    return {
      id: entry.id,
      content: entry.content,
      special,
      singleWord: entry.single_word ?? false,
      lstrip: entry.lstrip ?? false,
      rstrip: entry.rstrip ?? false,
      normalized: entry.normalized ?? !special
    }
  })

interface Candidate {
  readonly pattern: string
  readonly token: AddedToken
}

/** Leftmost-longest matching of a fixed set of strings, indexed by first UTF-16 unit. */
class Matcher {
  private readonly byFirst = new Map<string, Array<Candidate>>()
  constructor(candidates: ReadonlyArray<Candidate>) {
    for (const candidate of candidates) {
      if (candidate.pattern.length === 0) continue
      const first = candidate.pattern[0]!
      const list = this.byFirst.get(first) ?? []
      list.push(candidate)
      this.byFirst.set(first, list)
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.pattern.length - a.pattern.length)
  }

  get empty() {
    return this.byFirst.size === 0
  }

  /** Ranges [start, end) of accepted matches with their token, in order and not overlapping. */
  find(text: string): Array<{ start: number; end: number; token: AddedToken }> {
    const found: Array<{ start: number; end: number; token: AddedToken }> = []
    let previousEnd = 0
    let i = 0
    while (i < text.length) {
      const match = this.byFirst.get(text[i]!)?.find((candidate) => text.startsWith(candidate.pattern, i))
      if (match === undefined) {
        i++
        continue
      }
      let start = i
      let end = i + match.pattern.length
      const token = match.token
      if (token.singleWord) {
        const before = Array.from(text.slice(0, start)).pop()
        const after = text.slice(end).codePointAt(0)
        const wordBefore = before !== undefined && isWordCharacter(before)
        const wordAfter = after !== undefined && isWordCharacter(String.fromCodePoint(after))
        if (wordBefore || wordAfter) {
          i = end
          continue
        }
      }
      if (token.lstrip) {
        while (start > previousEnd) {
          const before = Array.from(text.slice(previousEnd, start)).pop()!
          if (!isWhitespace(before)) break
          start -= before.length
        }
      }
      if (token.rstrip) {
        while (end < text.length) {
          const after = String.fromCodePoint(text.codePointAt(end)!)
          if (!isWhitespace(after)) break
          end += after.length
        }
      }
      found.push({ start, end, token })
      previousEnd = end
      i = end
    }
    return found
  }
}

export class AddedVocabulary {
  readonly tokens: ReadonlyArray<AddedToken>
  readonly byId: ReadonlyMap<number, AddedToken>
  readonly byContent: ReadonlyMap<string, AddedToken>
  private readonly raw: Matcher
  private readonly normalizedMatcher: Matcher

  constructor(tokens: ReadonlyArray<AddedToken>, private readonly normalizer: Normalizer | undefined) {
    this.tokens = tokens
    this.byId = new Map(tokens.map((token) => [token.id, token]))
    this.byContent = new Map(tokens.map((token) => [token.content, token]))
    this.raw = new Matcher(
      tokens.filter((token) => !token.normalized).map((token) => ({ pattern: token.content, token }))
    )
    this.normalizedMatcher = new Matcher(
      tokens.filter((token) => token.normalized).map((token) => ({
        pattern: normalizer === undefined ? token.content : normalizer(token.content),
        token
      }))
    )
  }

  /** Cuts the input into added tokens and normalized text. */
  segment(text: string): Array<Segment> {
    const segments: Array<Segment> = []
    const emitText = (raw: string, first: boolean) => {
      const normalized = this.normalizer === undefined ? raw : this.normalizer(raw)
      let previous = 0
      for (const match of this.normalizedMatcher.find(normalized)) {
        if (match.start > previous) {
          segments.push({ kind: "text", text: normalized.slice(previous, match.start), first: first && previous === 0 })
        }
        segments.push({ kind: "token", id: match.token.id })
        previous = match.end
      }
      if (previous < normalized.length || (previous === 0 && normalized.length === 0)) {
        segments.push({ kind: "text", text: normalized.slice(previous), first: first && previous === 0 })
      }
    }
    if (text.length === 0) {
      emitText("", true)
      return segments
    }
    let previous = 0
    for (const match of this.raw.find(text)) {
      if (match.start > previous) emitText(text.slice(previous, match.start), previous === 0)
      segments.push({ kind: "token", id: match.token.id })
      previous = match.end
    }
    if (previous < text.length) emitText(text.slice(previous), previous === 0)
    return segments
  }
}
