import { describe, expect, it } from "@effect/vitest"
import { PreTrainedTokenizer } from "@huggingface/transformers"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { StreamDecoder } from "../../src/compute/tokenizer/StreamDecoder.js"
import { BYTE_TO_CHAR, utf8 } from "../../src/compute/tokenizer/Text.js"
import { Tokenizer } from "../../src/compute/tokenizer/Tokenizer.js"
import { tokenizerFromFile } from "../../src/compute/tokenizer/TokenizerFile.js"

const CORPUS = [
  "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away!",
  "Tokenizers split text into pieces: words, subwords and bytes. Merges join the most frequent pairs.",
  "In 2024 there were 1,234,567 downloads and 3.14159 percent growth, or so they say.",
  "Café, naïve, résumé and façade keep their accents; Straße and İstanbul do not lowercase simply.",
  "She said: \"don't stop\" and he replied 'I'm here', they'll see what we've done.",
  "def encode(text):\n    return [ord(c) for c in text]  # four spaces of indentation\n",
  "中文字符和日本語のテキスト、한국어 텍스트도 있습니다。",
  "Emoji 😀 and 👍🏽 and flags 🇫🇷 appear in chat messages all the time.",
  "The models learn from the text, and the text teaches the models how people write."
]

const SENTENCES = [
  "Hello world!",
  "The quick brown fox jumps over the lazy dog.",
  "  leading spaces, trailing spaces   and   runs\n\n\tof whitespace  ",
  "Ünïcödé café naïve — “quotes” ‘single’ « guillemets »",
  "Numbers 1234567 and 3.14159, 1e-9, 2,500 and ١٢٣ and ½",
  "emoji 😀👍🏽 and 🇫🇷 flags, 👨‍👩‍👧 family",
  "中文字符 日本語のテキスト 한국어",
  "don't I'm you're we've they'll he'd DON'T YOU'RE",
  "ÀÉÎÕÜ ǅ ﬁ ẞ İstanbul ΣΑΣ ὈΔΥΣΣΕΎΣ",
  "code: def f(x): return x**2 # comment\r\nnext line",
  "tabs\tand\u00a0no-break\u2003em space",
  "unbelievably-long-hyphenated-compound-words-without-any-spaces-at-all",
  "Supercalifragilisticexpialidocious antidisestablishmentarianism",
  "a",
  "!!!???...",
  "zero\u200bwidth and control\u0007char"
]

/** Byte-level BPE merges learned from the corpus by the textbook algorithm (most frequent pair first). */
const learnByteLevelMerges = (texts: ReadonlyArray<string>, count: number) => {
  const words = new Map<string, number>()
  for (const text of texts) {
    for (const word of text.match(/ ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+/gu) ?? []) {
      const symbols = Array.from(utf8(word), (byte) => BYTE_TO_CHAR[byte]!).join("\u0000")
      words.set(symbols, (words.get(symbols) ?? 0) + 1)
    }
  }
  let split = [...words].map(([symbols, frequency]) => ({ symbols: symbols.split("\u0000"), frequency }))
  const merges: Array<[string, string]> = []
  for (let round = 0; round < count; round++) {
    const pairs = new Map<string, number>()
    for (const { symbols, frequency } of split) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`
        pairs.set(key, (pairs.get(key) ?? 0) + frequency)
      }
    }
    const best = [...pairs].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]
    if (best === undefined || best[1] < 2) break
    const [left, right] = best[0].split("\u0000") as [string, string]
    merges.push([left, right])
    split = split.map(({ symbols, frequency }) => {
      const merged: Array<string> = []
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) {
          merged.push(left + right)
          i++
        } else merged.push(symbols[i]!)
      }
      return { symbols: merged, frequency }
    })
  }
  return merges
}

const MERGES = learnByteLevelMerges(CORPUS, 300)

const byteLevelVocab = (specials: ReadonlyArray<string>) => {
  const vocab: Record<string, number> = {}
  let next = 0
  for (const char of BYTE_TO_CHAR) vocab[char] = next++
  for (const [left, right] of MERGES) if (vocab[left + right] === undefined) vocab[left + right] = next++
  for (const special of specials) vocab[special] = next++
  return vocab
}

const addedToken = (
  content: string,
  id: number,
  flags: Partial<Record<"lstrip" | "rstrip" | "normalized" | "special" | "single_word", boolean>> = {}
) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
  ...flags
})

/** GPT-2 style: ByteLevel everything, merges as "a b" strings, special tokens with lstrip / rstrip. */
const gpt2Style = () => {
  const vocab = byteLevelVocab(["<|endoftext|>", "<|user|>", "<|sep|>"])
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      addedToken("<|endoftext|>", vocab["<|endoftext|>"]!, { normalized: true }),
      addedToken("<|user|>", vocab["<|user|>"]!, { rstrip: true }),
      addedToken("<|sep|>", vocab["<|sep|>"]!, { lstrip: true })
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    post_processor: { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: MERGES.map(([a, b]) => `${a} ${b}`)
    }
  }
}

/** Llama-3 style: a Split regex with (?i:...) contractions, ByteLevel without regex, merges as pairs, ignore_merges, a BOS template. */
const llama3Style = () => {
  const vocab = byteLevelVocab(["<|begin_of_text|>", "<|end_of_text|>"])
  const bos = vocab["<|begin_of_text|>"]!
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [addedToken("<|begin_of_text|>", bos), addedToken("<|end_of_text|>", vocab["<|end_of_text|>"]!)],
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        {
          type: "Split",
          pattern: {
            Regex:
              "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
          },
          behavior: "Isolated",
          invert: false
        },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false }
      ]
    },
    post_processor: {
      type: "Sequence",
      processors: [
        { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
          pair: [{ SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, {
            SpecialToken: { id: "<|begin_of_text|>", type_id: 1 }
          }, { Sequence: { id: "B", type_id: 1 } }],
          special_tokens: {
            "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [bos], tokens: ["<|begin_of_text|>"] }
          }
        }
      ]
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: MERGES
    }
  }
}

/** SentencePiece-converted BPE (Llama-2 / TinyLlama style): ▁ for spaces, byte fallback, fused unknowns. */
const sentencePieceStyle = () => {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 }
  let next = 3
  for (let byte = 0; byte < 256; byte++) vocab[`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`] = next++
  const words = new Map<string, number>()
  for (const text of CORPUS) {
    for (const word of text.replace(/ /g, "\u2581").match(/\u2581?[^\u2581]+/gu) ?? []) {
      words.set(`\u2581${word.replace(/^\u2581/, "")}`, (words.get(word) ?? 0) + 1)
    }
  }
  const chars = new Set<string>()
  for (const text of CORPUS.slice(0, 6)) for (const char of text.replace(/ /g, "\u2581")) chars.add(char)
  chars.add("\u2581")
  for (const char of chars) if (vocab[char] === undefined) vocab[char] = next++
  const merges: Array<string> = []
  for (const word of [...words.keys()].slice(0, 80)) {
    const symbols = Array.from(word)
    let current = symbols[0]!
    for (const symbol of symbols.slice(1)) {
      if (vocab[current] === undefined || vocab[symbol] === undefined) break
      merges.push(`${current} ${symbol}`)
      current += symbol
      if (vocab[current] === undefined) vocab[current] = next++
    }
  }
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [addedToken("<unk>", 0), addedToken("<s>", 1), addedToken("</s>", 2)],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "Prepend", prepend: "\u2581" }, {
        type: "Replace",
        pattern: { String: " " },
        content: "\u2581"
      }]
    },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, {
        SpecialToken: { id: "<s>", type_id: 1 }
      }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } }
    },
    decoder: {
      type: "Sequence",
      decoders: [{ type: "Replace", pattern: { String: "\u2581" }, content: " " }, { type: "ByteFallback" }, {
        type: "Fuse"
      }, { type: "Strip", content: " ", start: 1, stop: 0 }]
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges
    }
  }
}

/** WordPiece pieces for the corpus: every character, alone and as "##" continuation, and frequent words and stems. */
const wordPieceVocab = (specials: ReadonlyArray<string>, lowercase: boolean) => {
  const tokens: Array<string> = [...specials]
  const seen = new Set(tokens)
  const add = (token: string) => {
    if (!seen.has(token)) {
      seen.add(token)
      tokens.push(token)
    }
  }
  const text = CORPUS.slice(0, 6).join(" ")
  const normalized = lowercase ? text.normalize("NFD").replace(/\p{Mn}/gu, "").toLowerCase() : text
  for (const char of normalized) {
    if (!/\s/u.test(char)) {
      add(char)
      add(`##${char}`)
    }
  }
  for (const word of normalized.match(/\p{L}+/gu) ?? []) {
    add(word)
    if (word.length > 5) {
      add(word.slice(0, 4))
      add(`##${word.slice(4)}`)
    }
  }
  return Object.fromEntries(tokens.map((token, id) => [token, id]))
}

/** BERT uncased: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] A [SEP] template. */
const bertStyle = () => {
  const vocab = wordPieceVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], true)
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((token, id) => addedToken(token, id)),
    normalizer: {
      type: "BertNormalizer",
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true
    },
    pre_tokenizer: { type: "BertPreTokenizer" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, {
        SpecialToken: { id: "[SEP]", type_id: 0 }
      }],
      pair: [
        { SpecialToken: { id: "[CLS]", type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "[SEP]", type_id: 0 } },
        { Sequence: { id: "B", type_id: 1 } },
        { SpecialToken: { id: "[SEP]", type_id: 1 } }
      ],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [2], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [3], tokens: ["[SEP]"] }
      }
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab
    }
  }
}

/** Cased WordPiece with a sequence of normalizers and pre-tokenizers, and BertProcessing. */
const casedWordPieceStyle = () => {
  const vocab = wordPieceVocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]"], false)
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].map((token, id) => addedToken(token, id)),
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "NFKC" }, { type: "Strip", strip_left: true, strip_right: true }, {
        type: "Replace",
        pattern: { Regex: "\\s+" },
        content: " "
      }]
    },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "WhitespaceSplit" }, { type: "Punctuation", behavior: "Contiguous" }, {
        type: "Digits",
        individual_digits: true
      }]
    },
    post_processor: { type: "BertProcessing", sep: ["[SEP]", 3], cls: ["[CLS]", 2] },
    decoder: { type: "WordPiece", prefix: "##", cleanup: false },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 12,
      vocab
    }
  }
}

/** Learns merges over words given as symbol lists (most frequent pair first), for the non-byte-level BPEs. */
const learnMerges = (
  words: ReadonlyArray<ReadonlyArray<string>>,
  count: number,
  join: (a: string, b: string) => string = (a, b) => a + b
) => {
  let split = words.map((word) => [...word])
  const merges: Array<[string, string]> = []
  for (let round = 0; round < count; round++) {
    const pairs = new Map<string, number>()
    for (const symbols of split) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`
        pairs.set(key, (pairs.get(key) ?? 0) + 1)
      }
    }
    const best = [...pairs].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0]
    if (best === undefined || best[1] < 2) break
    const [left, right] = best[0].split("\u0000") as [string, string]
    merges.push([left, right])
    split = split.map((symbols) => {
      const merged: Array<string> = []
      for (let i = 0; i < symbols.length; i++) {
        if (symbols[i] === left && symbols[i + 1] === right) {
          merged.push(join(left, right))
          i++
        } else merged.push(symbols[i]!)
      }
      return merged
    })
  }
  return merges
}

const vocabFrom = (
  specials: ReadonlyArray<string>,
  symbols: Iterable<string>,
  merges: ReadonlyArray<readonly [string, string]>,
  join: (a: string, b: string) => string = (a, b) => a + b
) => {
  const vocab: Record<string, number> = {}
  let next = 0
  for (const token of [...specials, ...symbols, ...merges.map(([a, b]) => join(a, b))]) {
    if (vocab[token] === undefined) vocab[token] = next++
  }
  return vocab
}

/** SentencePiece-style BPE with the Metaspace pre-tokenizer (prepend "first", split) and decoder, unknowns as <unk>. */
const metaspaceStyle = () => {
  const words = CORPUS.slice(0, 5).flatMap((text) => text.split(" ").map((word) => Array.from(`\u2581${word}`)))
  const merges = learnMerges(words, 150)
  const vocab = vocabFrom(["<unk>", "<s>", "</s>"], new Set(words.flat()), merges)
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [addedToken("<unk>", 0), addedToken("<s>", 1), addedToken("</s>", 2)],
    normalizer: { type: "NFKC" },
    pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: true },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }, {
        Sequence: { id: "B", type_id: 0 }
      }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      special_tokens: { "</s>": { id: "</s>", ids: [2], tokens: ["</s>"] } }
    },
    decoder: { type: "Metaspace", replacement: "\u2581", prepend_scheme: "first", split: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges
    }
  }
}

/** CLIP-like BPE: lowercase, whitespace split, an end-of-word suffix, the BPEDecoder. */
const endOfWordStyle = () => {
  const words = CORPUS.slice(0, 5).flatMap((text) =>
    text.toLowerCase().split(/\s+/).filter((word) => word.length > 0).map((word) => {
      const chars = Array.from(word)
      return [...chars.slice(0, -1), `${chars.at(-1)}</w>`]
    })
  )
  const merges = learnMerges(words, 150)
  const vocab = vocabFrom(["<|startoftext|>", "<|endoftext|>", "<unk>"], new Set(words.flat()), merges)
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [addedToken("<|startoftext|>", 0), addedToken("<|endoftext|>", 1)],
    normalizer: {
      type: "Sequence",
      normalizers: [{ type: "NFC" }, { type: "Replace", pattern: { Regex: "\\s+" }, content: " " }, {
        type: "Lowercase"
      }]
    },
    pre_tokenizer: { type: "WhitespaceSplit" },
    post_processor: {
      type: "RobertaProcessing",
      sep: ["<|endoftext|>", 1],
      cls: ["<|startoftext|>", 0],
      trim_offsets: false,
      add_prefix_space: false
    },
    decoder: { type: "BPEDecoder", suffix: "</w>" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: "",
      end_of_word_suffix: "</w>",
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`)
    }
  }
}

/** WordLevel with accent stripping and the Whitespace pre-tokenizer. */
const wordLevelStyle = () => {
  const words = new Set(
    CORPUS.join(" ").normalize("NFD").replace(/\p{M}/gu, "").toLowerCase().match(
      /[\p{L}\p{N}_]+|[^\p{L}\p{N}_\s]+/gu
    ) ?? []
  )
  const vocab = vocabFrom(["[UNK]", "[CLS]", "[SEP]"], words, [])
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [addedToken("[UNK]", 0), addedToken("[CLS]", 1), addedToken("[SEP]", 2)],
    normalizer: { type: "Sequence", normalizers: [{ type: "NFD" }, { type: "StripAccents" }, { type: "Lowercase" }] },
    pre_tokenizer: { type: "Whitespace" },
    post_processor: { type: "BertProcessing", sep: ["[SEP]", 2], cls: ["[CLS]", 1] },
    decoder: null,
    model: { type: "WordLevel", unk_token: "[UNK]", vocab }
  }
}

const TOKENIZER_CONFIG = { clean_up_tokenization_spaces: false }

const compareWithTransformers = (name: string, json: object, sentences: ReadonlyArray<string>, config: object = {}) => {
  it(`${name}: ids and decoded text match transformers.js`, () => {
    const reference = new PreTrainedTokenizer(json, { ...TOKENIZER_CONFIG, ...config })
    const ours = Tokenizer.fromJson(json, TOKENIZER_CONFIG)
    for (const sentence of sentences) {
      for (const addSpecialTokens of [true, false]) {
        const expected = reference.encode(sentence, { add_special_tokens: addSpecialTokens })
        const actual = Array.from(ours.encode(sentence, { addSpecialTokens }).ids)
        const tokens = (ids: ReadonlyArray<number>) => ids.map((id) => ours.idToToken(id)).join(" ")
        expect(
          actual,
          `${JSON.stringify(sentence)} (special tokens ${addSpecialTokens}): ${tokens(actual)} vs ${tokens(expected)}`
        ).toEqual(expected)
        if (expected.length === 0) continue
        for (const skipSpecialTokens of [false, true]) {
          expect(ours.decode(actual, { skipSpecialTokens }), `decode ${JSON.stringify(sentence)}`).toBe(
            reference.decode(expected, { skip_special_tokens: skipSpecialTokens })
          )
        }
      }
    }
  })
}

describe("Tokenizer against transformers.js on synthetic tokenizer.json files", () => {
  const withSpecials = [
    ...SENTENCES,
    "<|user|>   hello there <|sep|>  general<|endoftext|>after",
    "x<|endoftext|><|endoftext|>y <|user|>"
  ]
  compareWithTransformers("byte-level BPE (GPT-2)", gpt2Style(), withSpecials)
  compareWithTransformers("byte-level BPE (Llama 3)", llama3Style(), [
    ...SENTENCES,
    "<|begin_of_text|>Hi<|end_of_text|> there"
  ])
  compareWithTransformers("SentencePiece BPE with byte fallback", sentencePieceStyle(), [
    ...SENTENCES,
    "<s>Hi</s> there <unk>"
  ])
  compareWithTransformers("Metaspace BPE", metaspaceStyle(), [
    ...SENTENCES,
    "<s>Hi</s> there",
    "</s> starts with a special token"
  ])
  compareWithTransformers("BPE with an end-of-word suffix", endOfWordStyle(), [
    ...SENTENCES,
    "<|startoftext|>the fox<|endoftext|>"
  ])
  // transformers.js has no WordLevel model; its fallback reads the unknown token from tokenizer_config.
  compareWithTransformers("WordLevel", wordLevelStyle(), [
    ...SENTENCES.map((sentence) => sentence.replace(", 👨‍👩‍👧 family", "")),
    "[CLS] the dog [SEP]"
  ], { unk_token: "[UNK]" })

  it("treats the zero-width joiner as a word character in the Whitespace pre-tokenizer, as Rust's regex crate does", () => {
    // transformers.js' \w is ASCII-only; emoji joined by U+200D come apart around the joiners here.
    expect(Tokenizer.fromJson(wordLevelStyle()).encode("the 👨‍👩‍👧", { addSpecialTokens: false }).ids.length).toBe(6)
  })
  compareWithTransformers("WordPiece (BERT uncased)", bertStyle(), [
    ...SENTENCES,
    "[CLS] the [MASK] sat [SEP] on [PAD]"
  ])
  // transformers.js tests digits with JavaScript's ASCII-only \d; the library uses char::is_numeric (see below).
  compareWithTransformers(
    "WordPiece (cased, sequences)",
    casedWordPieceStyle(),
    SENTENCES.map((sentence) => sentence.replace(" and ١٢٣ and ½", ""))
  )

  it("isolates each punctuation character, as the library's Punctuation pre-tokenizer does", () => {
    // transformers.js groups runs of punctuation whatever the behaviour; the library splits per character.
    const json = casedWordPieceStyle()
    const isolated = Tokenizer.fromJson({
      ...json,
      pre_tokenizer: {
        type: "Sequence",
        pretokenizers: [{ type: "WhitespaceSplit" }, { type: "Punctuation", behavior: "Isolated" }]
      }
    })
    expect(isolated.encode("f(x):", { addSpecialTokens: false }).tokens).toEqual(["f", "(", "x", ")", ":"])
    expect(Tokenizer.fromJson(json).encode("f(x):", { addSpecialTokens: false }).tokens).toEqual([
      "f",
      "(",
      "x",
      ")",
      "##:"
    ])
  })

  it("splits every Unicode digit as the library's Digits pre-tokenizer does (½ is 1⁄2 after NFKC)", () => {
    const cased = Tokenizer.fromJson(casedWordPieceStyle())
    expect(cased.encode("1٢½", { addSpecialTokens: false }).tokens).toEqual(["1", "[UNK]", "1", "[UNK]", "2"])
  })
})

const REFERENCE = path.resolve("models/reference")
for (const model of ["tiny-lm", "tiny-encoder"]) {
  const file = path.join(REFERENCE, model, "tokenizer.json")
  describe.runIf(fs.existsSync(file))(`the ${model} reference tokenizer`, () => {
    it("matches transformers.js", () => {
      const json = JSON.parse(fs.readFileSync(file, "utf8"))
      const configFile = path.join(REFERENCE, model, "tokenizer_config.json")
      const config = fs.existsSync(configFile) ? JSON.parse(fs.readFileSync(configFile, "utf8")) : {}
      const reference = new PreTrainedTokenizer(json, config)
      const ours = Tokenizer.fromJson(json, config)
      const corpus = [...SENTENCES, ...CORPUS, "special <|endoftext|> inside [CLS] text [SEP]"]
      for (const sentence of corpus) {
        const expected = reference.encode(sentence)
        const actual = Array.from(ours.encode(sentence).ids)
        expect(actual, JSON.stringify(sentence)).toEqual(expected)
        expect(ours.decode(actual, { skipSpecialTokens: true })).toBe(
          reference.decode(expected, { skip_special_tokens: true })
        )
      }
    })

    it.effect("loads from its file with the special token ids of its config", () =>
      Effect.gen(function*() {
        const tokenizer = yield* tokenizerFromFile(file)
        if (model === "tiny-lm") expect(tokenizer.specialIds.eos).toBe(tokenizer.tokenToId("<|endoftext|>"))
        else {
          expect(tokenizer.specialIds.cls).toBe(tokenizer.tokenToId("[CLS]"))
          expect(tokenizer.specialIds.pad).toBe(tokenizer.tokenToId("[PAD]"))
        }
      }))
  })
}

describe("Tokenizer", () => {
  const bert = Tokenizer.fromJson(bertStyle())

  it("exposes the vocabulary and the special tokens", () => {
    expect(bert.tokenToId("[CLS]")).toBe(2)
    expect(bert.idToToken(3)).toBe("[SEP]")
    expect(bert.vocabSize).toBe(Object.keys(bertStyle().model.vocab).length)
    expect(bert.specialIds).toMatchObject({ pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 })
    const encoding = bert.encode("the fox", { pair: "the dog" })
    expect(encoding.tokens).toEqual(["[CLS]", "the", "fox", "[SEP]", "the", "dog", "[SEP]"])
    expect(Array.from(encoding.typeIds)).toEqual([0, 0, 0, 0, 1, 1, 1])
    expect(Array.from(encoding.specialTokensMask)).toEqual([1, 0, 0, 1, 0, 0, 1])
  })

  it("pads a batch to the longest or a fixed length and truncates with room for special tokens", () => {
    const batch = bert.encodeBatch(["the fox", "the quick brown fox jumps"])
    expect(batch.map((encoding) => encoding.ids.length)).toEqual([7, 7])
    expect(Array.from(batch[0]!.attentionMask)).toEqual([1, 1, 1, 1, 0, 0, 0])
    expect(Array.from(batch[0]!.ids).slice(4)).toEqual([0, 0, 0])
    expect(bert.encodeBatch(["the fox"], { padding: 6 })[0]!.ids.length).toBe(6)
    const truncated = bert.encodeBatch(["the quick brown fox jumps", "the"], { truncation: 4 })
    expect(truncated[0]!.tokens).toEqual(["[CLS]", "the", "quick", "[SEP]"])
    expect(truncated[1]!.tokens).toEqual(["[CLS]", "the", "[SEP]", "[PAD]"])
  })

  it("names the component it does not support", () => {
    const json = { ...bertStyle(), pre_tokenizer: { type: "UnicodeScripts" } }
    expect(() => Tokenizer.fromJson(json)).toThrow("tokenizer.json: unsupported pre_tokenizer type \"UnicodeScripts\"")
    expect(() => Tokenizer.fromJson({ ...bertStyle(), model: { type: "Unigram", vocab: [] } })).toThrow(
      "unsupported model type \"Unigram\""
    )
  })

  it.effect("fails with one line naming the file and the member at fault for a file that is not a tokenizer", () =>
    Effect.gen(function*() {
      const folder = fs.mkdtempSync(path.join(os.tmpdir(), "tokenizer-"))
      const file = path.join(folder, "tokenizer.json")
      const refusal = (tokenizerJson: string, configJson?: string) =>
        Effect.gen(function*() {
          fs.writeFileSync(file, tokenizerJson)
          if (configJson === undefined) fs.rmSync(path.join(folder, "config.json"), { force: true })
          else fs.writeFileSync(path.join(folder, "config.json"), configJson)
          const error = yield* Effect.flip(tokenizerFromFile(file))
          expect(error._tag).toBe("TokenizerError")
          expect(error.message).not.toContain("\n")
          return error.message
        })
      const bert = bertStyle()
      expect(yield* refusal("{ not json")).toMatch(new RegExp(`^${file}: Expected property name .*JSON at position 2`))
      expect(yield* refusal("[1, 2]")).toBe(`${file}: is not an object`)
      const { model: _, ...noModel } = bert
      expect(yield* refusal(JSON.stringify(noModel))).toBe(`${file}: model: is missing`)
      expect(yield* refusal(JSON.stringify({ ...bert, decoder: "WordPiece" }))).toBe(
        `${file}: decoder: is not an object`
      )
      const noContent = { ...bert, added_tokens: [...bert.added_tokens, { id: 9, special: true }] }
      expect(yield* refusal(JSON.stringify(noContent))).toBe(`${file}: added_tokens.5.content: is missing`)
      const badPadding = { ...bert, padding: { strategy: "Longest", direction: "Right", pad_id: 0 } }
      expect(yield* refusal(JSON.stringify(badPadding))).toBe(
        `${file}: padding.strategy: is neither "BatchLongest" nor { "Fixed": length }`
      )
      expect(yield* refusal(JSON.stringify({ ...bert, truncation: { max_length: -1 } }))).toMatch(
        new RegExp(`^${file}: truncation.max_length: Expected a non-negative number, actual -1`)
      )
      const configFile = path.join(folder, "config.json")
      expect(yield* refusal(JSON.stringify(bert), "[\"not\", \"an object\"]")).toBe(`${configFile}: is not an object`)
      expect(yield* refusal(JSON.stringify({ ...bert, pre_tokenizer: { type: "UnicodeScripts" } }))).toBe(
        `${file}: unsupported pre_tokenizer type "UnicodeScripts"`
      )
      // The same file with fixed padding is a tokenizer that pads to that length.
      fs.writeFileSync(file, JSON.stringify({ ...bert, padding: { strategy: { Fixed: 6 }, pad_id: 0 } }))
      const padded = yield* tokenizerFromFile(file)
      expect(padded.encodeBatch(["the fox"])[0]!.ids.length).toBe(6)
      fs.rmSync(folder, { recursive: true })
    }))

  it("decodes a stream of ids without splitting multi-byte characters", () => {
    const gpt2 = Tokenizer.fromJson(gpt2Style())
    const text = " naïve 😀 中文 ok"
    const ids = gpt2.encode(text).ids
    const stream = new StreamDecoder(gpt2)
    const pieces = Array.from(ids, (id) => stream.push(id))
    pieces.push(stream.flush())
    expect(pieces.join("")).toBe(gpt2.decode(ids))
    expect(pieces.every((piece) => !piece.includes("\uFFFD"))).toBe(true)
  })
})
