/**
 * A Hugging Face `tokenizer.json` read into a tokenizer that encodes and decodes exactly as the Rust
 * `tokenizers` library does: added tokens, normalizer, pre-tokenizer, model, post-processor, decoder.
 */
import { Either, Schema } from "effect"
import { jsonDecoder, jsonDecoderSync, JsonObject, jsonValueDecoder } from "../../domain/JsonText.js"
import { AddedTokenJson, AddedVocabulary, parseAddedTokens } from "./AddedTokens.js"
import { buildDecoder, type Decoder } from "./Decoders.js"
import { buildModel, type Model } from "./Models.js"
import { buildNormalizer } from "./Normalizers.js"
import { addedTokenCount, buildPostProcessor, type Encoded, type PostProcessor } from "./PostProcessors.js"
import { buildPreTokenizer, type PreTokenizer } from "./PreTokenizers.js"
import { fail } from "./TokenizerError.js"

export { TokenizerError } from "./TokenizerError.js"

export interface Encoding {
  readonly ids: Int32Array
  readonly tokens: ReadonlyArray<string>
  /** 1 for real tokens, 0 for padding. */
  readonly attentionMask: Int32Array
  /** Segment ids (0 for the first sequence, 1 for a pair's second), as BERT's token_type_ids. */
  readonly typeIds: Int32Array
  /** 1 where the post-processor inserted a special token. */
  readonly specialTokensMask: Int32Array
}

export interface EncodeOptions {
  /** Wrap in the model's special tokens ([CLS] ... [SEP]); default true. */
  readonly addSpecialTokens?: boolean | undefined
  /** A second sequence, as for sentence-pair models. */
  readonly pair?: string | undefined
  /** Maximum length including special tokens; default the tokenizer.json truncation, `false` for none. */
  readonly truncation?: number | false | undefined
}

export interface EncodeBatchOptions extends Omit<EncodeOptions, "pair"> {
  /** Pad to the longest encoding in the batch or to a fixed length; default the tokenizer.json padding. */
  readonly padding?: "longest" | number | false | undefined
}

export interface DecodeOptions {
  readonly skipSpecialTokens?: boolean | undefined
  /**
   * transformers' clean-up of spaces before punctuation and contractions (" ." -> ".", " n't" -> "n't"),
   * applied after the decoder. Default: tokenizer_config.json's clean_up_tokenization_spaces, else off
   * (the tokenizers library alone never applies it).
   */
  readonly cleanUpTokenizationSpaces?: boolean | undefined
}

/** Names a tokenizer_config.json gives to special tokens, and what config.json says about their ids. */
export interface TokenizerConfig {
  readonly [key: string]: unknown
}

export interface SpecialTokenIds {
  readonly pad: number | undefined
  readonly eos: number | undefined
  readonly bos: number | undefined
  readonly unk: number | undefined
  readonly cls: number | undefined
  readonly sep: number | undefined
  readonly mask: number | undefined
}

interface Truncation {
  readonly maxLength: number
  readonly left: boolean
}

interface Padding {
  readonly length: "longest" | number
  readonly left: boolean
  readonly padId: number | undefined
  readonly padTypeId: number
  readonly padToken: string | undefined
  readonly multipleOf: number | undefined
}

const tokenName = (value: unknown): string | undefined => {
  if (typeof value === "string") return value
  if (typeof value === "object" && value !== null && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content
  }
  return undefined
}

const firstId = (value: unknown): number | undefined =>
  typeof value === "number" ? value : Array.isArray(value) && typeof value[0] === "number" ? value[0] : undefined

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const Side = Schema.optional(Schema.Literal("Left", "Right"))
const anObject = { message: () => "is not an object" }

/** tokenizer.json's `truncation`, as the library writes it (strategy and stride are not used here). */
const TruncationJson = Schema.Struct({ max_length: Count, direction: Side }).annotations(anObject)

/** tokenizer.json's `padding`: `strategy` is "BatchLongest" or `{ "Fixed": length }`. */
const PaddingJson = Schema.Struct({
  strategy: Schema.optional(
    Schema.Union(Schema.Literal("BatchLongest"), Schema.Struct({ Fixed: Count })).annotations({
      message: () => ({ message: "is neither \"BatchLongest\" nor { \"Fixed\": length }", override: true })
    })
  ),
  direction: Side,
  pad_id: Schema.optional(Count),
  pad_type_id: Schema.optional(Count),
  pad_token: Schema.optional(Schema.String),
  pad_to_multiple_of: Schema.optional(Schema.NullOr(Count))
}).annotations(anObject)

/** A pipeline component (normalizer, model, ...): an object whose `type` its builder reads; null for none. */
const Component = JsonObject.annotations(anObject)
const OptionalComponent = Schema.optional(Schema.NullOr(Component))

/** The members of tokenizer.json this reader uses; each component's own members are read by its builder. */
const TokenizerJson = Schema.Struct({
  model: Component,
  normalizer: OptionalComponent,
  pre_tokenizer: OptionalComponent,
  post_processor: OptionalComponent,
  decoder: OptionalComponent,
  truncation: Schema.optional(Schema.NullOr(TruncationJson)),
  padding: Schema.optional(Schema.NullOr(PaddingJson)),
  added_tokens: Schema.optional(Schema.NullOr(Schema.Array(AddedTokenJson)))
}).annotations(anObject)

const decodeTokenizerText = jsonDecoder(TokenizerJson)
const decodeTokenizerValue = jsonValueDecoder(TokenizerJson)
/** tokenizer_config.json or config.json text, decoded (TokenizerFile.ts reads them beside tokenizer.json). */
export const decodeConfigText = jsonDecoderSync(JsonObject.annotations(anObject))

const readTruncation = (json: typeof TruncationJson.Type | null | undefined): Truncation | undefined =>
  json === null || json === undefined ? undefined : { maxLength: json.max_length, left: json.direction === "Left" }

const readPadding = (json: typeof PaddingJson.Type | null | undefined): Padding | undefined => {
  if (json === null || json === undefined) return undefined
  const strategy = json.strategy
  return {
    length: typeof strategy === "object" ? strategy.Fixed : "longest",
    left: json.direction === "Left",
    padId: json.pad_id,
    padTypeId: json.pad_type_id ?? 0,
    padToken: json.pad_token,
    multipleOf: json.pad_to_multiple_of ?? undefined
  }
}

const CONVENTIONAL_NAMES: Record<keyof SpecialTokenIds, ReadonlyArray<string>> = {
  pad: ["[PAD]", "<pad>", "<|pad|>", "<|padding|>"],
  eos: ["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "<|eos|>"],
  bos: ["<s>", "<|begin_of_text|>", "<bos>", "<|bos|>", "<|endoftext|>"],
  unk: ["[UNK]", "<unk>", "<|unk|>"],
  cls: ["[CLS]", "<s>", "<cls>"],
  sep: ["[SEP]", "</s>", "<sep>"],
  mask: ["[MASK]", "<mask>"]
}

export class Tokenizer {
  /** The tokenizer_config.json this tokenizer was given (chat_template and special token names live there). */
  readonly config: TokenizerConfig
  readonly specialIds: SpecialTokenIds
  private readonly added: AddedVocabulary
  private readonly model: Model
  private readonly preTokenizer: PreTokenizer | undefined
  private readonly postProcessor: PostProcessor
  private readonly decoder: Decoder | undefined
  private readonly truncation: Truncation | undefined
  private readonly padding: Padding | undefined
  private readonly idToTokenMap = new Map<number, string>()
  private readonly specialIdSet = new Set<number>()

  private constructor(json: typeof TokenizerJson.Type, config: TokenizerConfig, modelConfig: TokenizerConfig) {
    this.config = config
    const normalizer = buildNormalizer(json.normalizer)
    this.model = buildModel(json.model)
    this.preTokenizer = buildPreTokenizer(json.pre_tokenizer)
    this.postProcessor = buildPostProcessor(json.post_processor)
    this.decoder = buildDecoder(json.decoder)
    this.truncation = readTruncation(json.truncation)
    this.padding = readPadding(json.padding)
    this.added = new AddedVocabulary(parseAddedTokens(json.added_tokens), normalizer)
    for (const [token, id] of this.model.vocab) this.idToTokenMap.set(id, token)
    for (const token of this.added.tokens) {
      this.idToTokenMap.set(token.id, token.content)
      if (token.special) this.specialIdSet.add(token.id)
    }
    this.specialIds = this.resolveSpecialIds(config, modelConfig)
  }

  /**
   * Reads tokenizer.json, as text or already parsed (and optionally tokenizer_config.json and the
   * model's config.json); throws TokenizerError.
   */
  static fromJson(json: unknown, config: TokenizerConfig = {}, modelConfig: TokenizerConfig = {}): Tokenizer {
    const decoded = typeof json === "string"
      ? decodeTokenizerText(json, "tokenizer.json")
      : decodeTokenizerValue(json, "tokenizer.json")
    if (Either.isLeft(decoded)) return fail(decoded.left.problem)
    return new Tokenizer(decoded.right, config, modelConfig)
  }

  /** The maximum length tokenizer.json truncates to, if it sets one. */
  get maxLength(): number | undefined {
    return this.truncation?.maxLength
  }

  /** Distinct ids over the model's vocabulary and the added tokens. */
  get vocabSize(): number {
    return this.idToTokenMap.size
  }

  tokenToId(token: string): number | undefined {
    return this.added.byContent.get(token)?.id ?? this.model.vocab.get(token)
  }

  idToToken(id: number): string | undefined {
    return this.idToTokenMap.get(id)
  }

  isSpecial(id: number): boolean {
    return this.specialIdSet.has(id)
  }

  /** The model's tokens for `text`, before special tokens are added. */
  private encodeText(text: string): Encoded {
    const ids: Array<number> = []
    for (const segment of this.added.segment(text)) {
      if (segment.kind === "token") {
        ids.push(segment.id)
        continue
      }
      const words = this.preTokenizer === undefined ? [segment] : this.preTokenizer([segment])
      for (const word of words) for (const id of this.model.tokenize(word.text)) ids.push(id)
    }
    return { ids, tokens: ids.map((id) => this.idToTokenMap.get(id) ?? "") }
  }

  encode(text: string, options: EncodeOptions = {}): Encoding {
    const addSpecialTokens = options.addSpecialTokens ?? true
    let a = this.encodeText(text)
    let b = options.pair === undefined ? undefined : this.encodeText(options.pair)
    const truncation = options.truncation === false
      ? undefined
      : options.truncation !== undefined
      ? { maxLength: options.truncation, left: this.truncation?.left ?? false }
      : this.truncation
    if (truncation !== undefined) {
      const budget = Math.max(
        0,
        truncation.maxLength - (addSpecialTokens ? addedTokenCount(this.postProcessor, b !== undefined) : 0)
      )
      ;[a, b] = truncatePair(a, b, budget, truncation.left)
    }
    const processed = this.postProcessor(a, b, addSpecialTokens)
    return {
      ids: Int32Array.from(processed.ids),
      tokens: processed.tokens,
      attentionMask: new Int32Array(processed.ids.length).fill(1),
      typeIds: Int32Array.from(processed.typeIds),
      specialTokensMask: Int32Array.from(processed.specialMask)
    }
  }

  /** Encodes every text, then pads them to a common length (padding default: longest in the batch). */
  encodeBatch(texts: ReadonlyArray<string>, options: EncodeBatchOptions = {}): Array<Encoding> {
    const encodings = texts.map((text) => this.encode(text, options))
    const padding = options.padding === false
      ? undefined
      : options.padding !== undefined
      ? { ...this.paddingDefaults(), length: options.padding }
      : this.padding ?? this.paddingDefaults()
    if (padding === undefined) return encodings
    let length = padding.length === "longest"
      ? Math.max(0, ...encodings.map((encoding) => encoding.ids.length))
      : padding.length
    if (padding.multipleOf !== undefined && padding.multipleOf > 0) {
      length = Math.ceil(length / padding.multipleOf) * padding.multipleOf
    }
    if (encodings.every((encoding) => encoding.ids.length >= length)) return encodings
    // Without a pad token the library pads with id 0; the attention mask hides it either way.
    const padId = padding.padId ?? (padding.padToken !== undefined ? this.tokenToId(padding.padToken) : undefined) ??
      this.specialIds.pad ?? 0
    const padToken = this.idToToken(padId) ?? ""
    return encodings.map((encoding) => padEncoding(encoding, length, padId, padToken, padding.padTypeId, padding.left))
  }

  private paddingDefaults(): Padding {
    return this.padding ??
      { length: "longest", left: false, padId: undefined, padTypeId: 0, padToken: undefined, multipleOf: undefined }
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const tokens: Array<string> = []
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!
      if (options.skipSpecialTokens === true && this.specialIdSet.has(id)) continue
      const token = this.idToTokenMap.get(id)
      if (token !== undefined) tokens.push(token)
    }
    const text = this.decoder === undefined ? tokens.join(" ") : this.decoder(tokens).join("")
    const cleanUp = options.cleanUpTokenizationSpaces ?? this.config.clean_up_tokenization_spaces === true
    return cleanUp ? cleanUpTokenizationSpaces(text) : text
  }

  private resolveSpecialIds(config: TokenizerConfig, modelConfig: TokenizerConfig): SpecialTokenIds {
    const byName = (key: string) => {
      const name = tokenName(config[`${key}_token`])
      return name === undefined ? undefined : this.tokenToId(name)
    }
    const conventional = (kind: keyof SpecialTokenIds) => {
      for (const name of CONVENTIONAL_NAMES[kind]) {
        const token = this.added.byContent.get(name)
        if (token !== undefined && token.special) return token.id
      }
      return undefined
    }
    const resolve = (kind: keyof SpecialTokenIds) =>
      firstId(modelConfig[`${kind}_token_id`]) ?? byName(kind) ??
        (kind === "unk" && this.model.unkToken !== undefined ? this.tokenToId(this.model.unkToken) : undefined) ??
        conventional(kind)
    const pad = this.padding?.padId ?? resolve("pad")
    return {
      pad,
      eos: resolve("eos"),
      bos: resolve("bos"),
      unk: resolve("unk"),
      cls: resolve("cls"),
      sep: resolve("sep"),
      mask: resolve("mask")
    }
  }
}

const CLEAN_UPS: ReadonlyArray<readonly [string, string]> = [
  [" .", "."],
  [" ?", "?"],
  [" !", "!"],
  [" ,", ","],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"]
]

const cleanUpTokenizationSpaces = (text: string) =>
  CLEAN_UPS.reduce((current, [from, to]) => current.replaceAll(from, to), text)

const truncateOne = (sequence: Encoded, keep: number, left: boolean): Encoded => {
  if (sequence.ids.length <= keep) return sequence
  const from = left ? sequence.ids.length - keep : 0
  return { ids: sequence.ids.slice(from, from + keep), tokens: sequence.tokens.slice(from, from + keep) }
}

/** The library's "longest first" strategy: trim the longer sequence until both fit the budget. */
const truncatePair = (
  a: Encoded,
  b: Encoded | undefined,
  budget: number,
  left: boolean
): [Encoded, Encoded | undefined] => {
  if (b === undefined) return [truncateOne(a, budget, left), undefined]
  let keepA = a.ids.length
  let keepB = b.ids.length
  while (keepA + keepB > budget) {
    if (keepA >= keepB) keepA--
    else keepB--
  }
  return [truncateOne(a, keepA, left), truncateOne(b, keepB, left)]
}

const padEncoding = (
  encoding: Encoding,
  length: number,
  padId: number,
  padToken: string,
  padTypeId: number,
  left: boolean
): Encoding => {
  const extra = length - encoding.ids.length
  if (extra <= 0) return encoding
  const pad = <A extends Int32Array>(values: A, fill: number) => {
    const out = new Int32Array(length).fill(fill)
    out.set(values, left ? extra : 0)
    return out
  }
  const padTokens = new Array<string>(extra).fill(padToken)
  return {
    ids: pad(encoding.ids, padId),
    tokens: left ? [...padTokens, ...encoding.tokens] : [...encoding.tokens, ...padTokens],
    attentionMask: pad(encoding.attentionMask, 0),
    typeIds: pad(encoding.typeIds, padTypeId),
    specialTokensMask: pad(encoding.specialTokensMask, 1)
  }
}
