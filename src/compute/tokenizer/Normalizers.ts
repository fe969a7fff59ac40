/**
 * Normalizers from tokenizer.json as plain string functions: BERT's, Unicode forms, lowercasing, accent
 * stripping, replace, strip, prepend, and sequences of them.
 */
import {
  isAscii,
  isBertControl,
  isBertWhitespace,
  isChineseCharacter,
  isWhitespace,
  lowercase,
  patternRegex,
  removeMarks,
  removeNonspacingMarks
} from "./Text.js"
import { booleanOr, objectAt, stringOr, unsupported } from "./TokenizerError.js"

export type Normalizer = (text: string) => string

const bertNormalizer = (config: Record<string, unknown>): Normalizer => {
  const cleanText = booleanOr(config.clean_text, true)
  const chinese = booleanOr(config.handle_chinese_chars, true)
  const lower = booleanOr(config.lowercase, true)
  // strip_accents left unset follows lowercase, as in the original BERT.
  const stripAccents = booleanOr(config.strip_accents, lower)
  return (text) => {
    let out = text
    if ((cleanText || chinese) && !(isAscii(text) && !/[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f\t\n\r]/.test(text))) {
      out = ""
      for (const char of text) {
        const code = char.codePointAt(0)!
        if (cleanText) {
          if (code === 0 || code === 0xfffd || isBertControl(char)) continue
          if (isBertWhitespace(char)) {
            out += " "
            continue
          }
        }
        out += chinese && isChineseCharacter(code) ? ` ${char} ` : char
      }
    }
    if (stripAccents && !isAscii(out)) out = removeNonspacingMarks(out.normalize("NFD"))
    if (lower) out = lowercase(out)
    return out
  }
}

const trimStart = (text: string) => {
  let start = 0
  for (const char of text) {
    if (!isWhitespace(char)) break
    start += char.length
  }
  return text.slice(start)
}

const trimEnd = (text: string) => {
  const chars = Array.from(text)
  let end = chars.length
  while (end > 0 && isWhitespace(chars[end - 1]!)) end--
  return chars.slice(0, end).join("")
}

export const buildNormalizer = (json: unknown): Normalizer | undefined => {
  if (json === null || json === undefined) return undefined
  const config = objectAt(json, "normalizer")
  switch (config.type) {
    case "BertNormalizer":
      return bertNormalizer(config)
    case "NFC":
    case "NFD":
    case "NFKC":
    case "NFKD": {
      const form = config.type
      return (text) => text.normalize(form)
    }
    case "Lowercase":
      return lowercase
    case "StripAccents":
      return removeMarks
    case "Strip": {
      const left = booleanOr(config.strip_left, true)
      const right = booleanOr(config.strip_right, true)
      return (text) => {
        const stripped = left ? trimStart(text) : text
        return right ? trimEnd(stripped) : stripped
      }
    }
    case "Replace": {
      const regex = patternRegex(config.pattern, "Replace normalizer")
      const content = stringOr(config.content, "")
      return (text) => text.replace(regex, () => content)
    }
    case "Prepend": {
      const prefix = stringOr(config.prepend, "")
      return (text) => (text.length > 0 ? prefix + text : text)
    }
    case "Sequence": {
      const list = Array.isArray(config.normalizers) ? config.normalizers : []
      const steps = list.map(buildNormalizer).filter((step): step is Normalizer => step !== undefined)
      return (text) => steps.reduce((current, step) => step(current), text)
    }
    default:
      return unsupported("normalizer", config.type)
  }
}
