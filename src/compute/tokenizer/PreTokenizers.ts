/**
 * Pre-tokenizers from tokenizer.json: each cuts the pieces of text it is given into smaller pieces (the
 * "words" a model then encodes one by one), exactly where the Rust library cuts them.
 */
import {
  compileRegex,
  isNumeric,
  isPunctuation,
  isWhitespace,
  markChars,
  markRegex,
  parseBehaviour,
  patternRegex,
  splitMarked,
  toByteLevel
} from "./Text.js"
import { booleanOr, objectAt, stringOr, unsupported } from "./TokenizerError.js"

/** A piece of text; `first` marks the piece that starts the original input (Metaspace's "first"). */
export interface Piece {
  readonly text: string
  readonly first: boolean
}

export type PreTokenizer = (pieces: ReadonlyArray<Piece>) => Array<Piece>

/** GPT-2's pattern, as the ByteLevel pre-tokenizer applies it. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/** Applies `split` to every piece; the first result of a first piece stays first. Empty results are dropped. */
const eachPiece = (split: (text: string, first: boolean) => ReadonlyArray<string>): PreTokenizer => (pieces) => {
  const out: Array<Piece> = []
  for (const piece of pieces) {
    let first = piece.first
    for (const text of split(piece.text, piece.first)) {
      if (text.length === 0) continue
      out.push({ text, first })
      first = false
    }
  }
  return out
}

const byteLevel = (config: Record<string, unknown>): PreTokenizer => {
  const addPrefixSpace = booleanOr(config.add_prefix_space, true)
  const regex = booleanOr(config.use_regex, true) ? compileRegex(GPT2_PATTERN) : undefined
  return eachPiece((text) => {
    const prefixed = addPrefixSpace && !text.startsWith(" ") ? ` ${text}` : text
    const words = regex === undefined ? [prefixed] : splitMarked(prefixed, markRegex(prefixed, regex), "Isolated")
    return words.map(toByteLevel)
  })
}

const metaspace = (config: Record<string, unknown>): PreTokenizer => {
  const replacement = stringOr(config.replacement, "\u2581")
  const scheme = typeof config.prepend_scheme === "string"
    ? config.prepend_scheme
    : booleanOr(config.add_prefix_space, true)
    ? "always"
    : "never"
  const split = booleanOr(config.split, true)
  return eachPiece((text, first) => {
    let replaced = text.replaceAll(" ", replacement)
    if ((scheme === "always" || (scheme === "first" && first)) && !replaced.startsWith(replacement)) {
      replaced = replacement + replaced
    }
    if (!split) return [replaced]
    return splitMarked(replaced, markChars(replaced, (char) => char === replacement), "MergedWithNext")
  })
}

// The Whitespace pre-tokenizer's \w+|[^\w\s]+ in the Rust regex crate, whose \w has Alphabetic and Join_Control.
const WHITESPACE_WORDS =
  /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+/gu

export const buildPreTokenizer = (json: unknown): PreTokenizer | undefined => {
  if (json === null || json === undefined) return undefined
  const config = objectAt(json, "pre_tokenizer")
  switch (config.type) {
    case "ByteLevel":
      return byteLevel(config)
    case "Metaspace":
      return metaspace(config)
    case "BertPreTokenizer":
      return eachPiece((text) =>
        splitMarked(text, markChars(text, isWhitespace), "Removed").flatMap((word) =>
          splitMarked(word, markChars(word, isPunctuation), "Isolated")
        )
      )
    case "Whitespace":
      return eachPiece((text) => splitMarked(text, markRegex(text, WHITESPACE_WORDS), "Removed", true))
    case "WhitespaceSplit":
      return eachPiece((text) => splitMarked(text, markChars(text, isWhitespace), "Removed"))
    case "CharDelimiterSplit": {
      const delimiter = stringOr(config.delimiter, " ")
      return eachPiece((text) => splitMarked(text, markChars(text, (char) => char === delimiter), "Removed"))
    }
    case "Punctuation": {
      const behaviour = parseBehaviour(config.behavior, "Isolated")
      return eachPiece((text) => splitMarked(text, markChars(text, isPunctuation), behaviour))
    }
    case "Digits": {
      const behaviour = booleanOr(config.individual_digits, false) ? "Isolated" : "Contiguous"
      return eachPiece((text) => splitMarked(text, markChars(text, isNumeric), behaviour))
    }
    case "Split": {
      const regex = patternRegex(config.pattern, "Split pre_tokenizer")
      const behaviour = parseBehaviour(config.behavior, "Isolated")
      const invert = booleanOr(config.invert, false)
      return eachPiece((text) => splitMarked(text, markRegex(text, regex), behaviour, invert))
    }
    case "Sequence": {
      const list = Array.isArray(config.pretokenizers) ? config.pretokenizers : []
      const steps = list.map(buildPreTokenizer).filter((step): step is PreTokenizer => step !== undefined)
      return (pieces) => steps.reduce<Array<Piece>>((current, step) => step(current), [...pieces])
    }
    default:
      return unsupported("pre_tokenizer", config.type)
  }
}
