/**
 * Decoders from tokenizer.json: turn a list of tokens back into text (bytes for byte-level BPE, "##"
 * continuations for WordPiece, "▁" for SentencePiece-style vocabularies). Each maps tokens to tokens;
 * the text is their concatenation.
 */
import { CHAR_TO_BYTE, decodeUtf8, patternRegex, utf8 } from "./Text.js"
import { booleanOr, numberOr, objectAt, stringOr, unsupported } from "./TokenizerError.js"

export type Decoder = (tokens: ReadonlyArray<string>) => Array<string>

const byteLevel: Decoder = (tokens) => {
  const bytes: Array<number> = []
  for (const token of tokens) {
    const mapped: Array<number> = []
    let complete = true
    for (const char of token) {
      const byte = CHAR_TO_BYTE.get(char)
      if (byte === undefined) {
        complete = false
        break
      }
      mapped.push(byte)
    }
    // A token outside the byte alphabet (an added token, say) contributes its own UTF-8 bytes.
    for (const item of (complete ? mapped : utf8(token))) bytes.push(item)
  }
  return [decodeUtf8(Uint8Array.from(bytes))]
}

const CLEANUPS: ReadonlyArray<readonly [string, string]> = [
  [" .", "."],
  [" ?", "?"],
  [" !", "!"],
  [" ,", ","],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" do not", " don't"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"]
]

/** The library's `cleanup` of spaces BERT-style tokenization leaves before punctuation and contractions. */
export const cleanupSpaces = (text: string) =>
  CLEANUPS.reduce((current, [from, to]) => current.replaceAll(from, to), text)

const wordPiece = (config: Record<string, unknown>): Decoder => {
  const prefix = stringOr(config.prefix, "##")
  const cleanup = booleanOr(config.cleanup, true)
  return (tokens) =>
    tokens.map((token, index) => {
      let out = token
      if (index > 0) out = out.startsWith(prefix) ? out.slice(prefix.length) : ` ${out}`
      return cleanup ? cleanupSpaces(out) : out
    })
}

const metaspace = (config: Record<string, unknown>): Decoder => {
  const replacement = stringOr(config.replacement, "\u2581")
  const scheme = typeof config.prepend_scheme === "string"
    ? config.prepend_scheme
    : booleanOr(config.add_prefix_space, true)
    ? "always"
    : "never"
  return (tokens) =>
    tokens.map((token, index) => {
      let out = ""
      for (const char of token) {
        if (char !== replacement) out += char
        else if (!(index === 0 && scheme !== "never")) out += " "
      }
      return out
    })
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

const byteFallback: Decoder = (tokens) => {
  const out: Array<string> = []
  let pending: Array<number> = []
  const flush = () => {
    if (pending.length === 0) return
    try {
      out.push(strictUtf8.decode(Uint8Array.from(pending)))
    } catch {
      for (let i = 0; i < pending.length; i++) out.push("\uFFFD")
    }
    pending = []
  }
  for (const token of tokens) {
    const byte = BYTE_TOKEN.exec(token)
    if (byte !== null) {
      pending.push(parseInt(byte[1]!, 16))
      continue
    }
    flush()
    out.push(token)
  }
  flush()
  return out
}

const strip = (config: Record<string, unknown>): Decoder => {
  const content = stringOr(config.content, " ")
  const start = numberOr(config.start, 0)
  const stop = numberOr(config.stop, 0)
  return (tokens) =>
    tokens.map((token) => {
      const chars = Array.from(token)
      let from = 0
      while (from < start && from < chars.length && chars[from] === content) from++
      let to = chars.length
      while (chars.length - to < stop && to > from && chars[to - 1] === content) to--
      return chars.slice(from, to).join("")
    })
}

export const buildDecoder = (json: unknown): Decoder | undefined => {
  if (json === null || json === undefined) return undefined
  const config = objectAt(json, "decoder")
  switch (config.type) {
    case "ByteLevel":
      return byteLevel
    case "WordPiece":
      return wordPiece(config)
    case "Metaspace":
      return metaspace(config)
    case "BPEDecoder": {
      const suffix = stringOr(config.suffix, "</w>")
      return (tokens) => tokens.map((token, index) => token.replaceAll(suffix, index === tokens.length - 1 ? "" : " "))
    }
    case "ByteFallback":
      return byteFallback
    case "Fuse":
      return (tokens) => [tokens.join("")]
    case "Strip":
      return strip(config)
    case "Replace": {
      const regex = patternRegex(config.pattern, "Replace decoder")
      const content = stringOr(config.content, "")
      return (tokens) => tokens.map((token) => token.replace(regex, () => content))
    }
    case "Sequence": {
      const steps = (Array.isArray(config.decoders) ? config.decoders : []).map(buildDecoder).filter((
        step
      ): step is Decoder => step !== undefined)
      return (tokens) => steps.reduce<Array<string>>((current, step) => step(current), [...tokens])
    }
    default:
      return unsupported("decoder", config.type)
  }
}
