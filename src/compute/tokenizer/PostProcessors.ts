/**
 * Post-processors from tokenizer.json: wrap encoded sequences in the model's special tokens ([CLS] ...
 * [SEP], <s> ... </s>, or any template) and assign token type ids.
 */
import { fail, objectAt, unsupported } from "./TokenizerError.js"

export interface Encoded {
  readonly ids: ReadonlyArray<number>
  readonly tokens: ReadonlyArray<string>
}

export interface Processed {
  readonly ids: Array<number>
  readonly tokens: Array<string>
  readonly typeIds: Array<number>
  /** 1 where the post-processor inserted a special token. */
  readonly specialMask: Array<number>
}

export type PostProcessor = (a: Encoded, b: Encoded | undefined, addSpecialTokens: boolean) => Processed

const empty = (): Processed => ({ ids: [], tokens: [], typeIds: [], specialMask: [] })

const appendSequence = (out: Processed, sequence: Encoded, typeId: number) => {
  for (const item of sequence.ids) out.ids.push(item)
  for (const item of sequence.tokens) out.tokens.push(item)
  for (let i = 0; i < sequence.ids.length; i++) {
    out.typeIds.push(typeId)
    out.specialMask.push(0)
  }
}

const appendSpecial = (out: Processed, ids: ReadonlyArray<number>, tokens: ReadonlyArray<string>, typeId: number) => {
  for (const item of ids) out.ids.push(item)
  for (const item of tokens) out.tokens.push(item)
  for (let i = 0; i < ids.length; i++) {
    out.typeIds.push(typeId)
    out.specialMask.push(1)
  }
}

/** No post-processing: A then B, type ids left at 0 as the library leaves them. */
export const plainProcessor: PostProcessor = (a, b) => {
  const out = empty()
  appendSequence(out, a, 0)
  if (b !== undefined) appendSequence(out, b, 0)
  return out
}

type TemplatePiece =
  | { readonly kind: "sequence"; readonly which: "A" | "B"; readonly typeId: number }
  | { readonly kind: "special"; readonly name: string; readonly typeId: number }

const parseTemplate = (json: unknown, where: string): Array<TemplatePiece> => {
  if (typeof json === "string") {
    // The string form: "[CLS] $A [SEP]", "$B:1 [SEP]:1".
    return json.split(/\s+/).filter((part) => part.length > 0).map((part): TemplatePiece => {
      const [name = "", type] = part.split(":")
      const typeId = type === undefined ? 0 : Number(type)
      if (name.startsWith("$")) return { kind: "sequence", which: name === "$B" ? "B" : "A", typeId }
      return { kind: "special", name, typeId }
    })
  }
  if (!Array.isArray(json)) return fail(`${where} must be a list`)
  return json.map((entry: unknown): TemplatePiece => {
    const record = objectAt(entry, where)
    if (record.Sequence !== undefined) {
      const sequence = objectAt(record.Sequence, where)
      return { kind: "sequence", which: sequence.id === "B" ? "B" : "A", typeId: Number(sequence.type_id ?? 0) }
    }
    if (record.SpecialToken !== undefined) {
      const special = objectAt(record.SpecialToken, where)
      return { kind: "special", name: String(special.id), typeId: Number(special.type_id ?? 0) }
    }
    return fail(`${where}: unknown template piece ${JSON.stringify(entry)}`)
  })
}

const templateProcessing = (config: Record<string, unknown>): PostProcessor => {
  const single = parseTemplate(config.single, "post_processor.single")
  const pair = parseTemplate(config.pair ?? config.single, "post_processor.pair")
  const specials = new Map<string, { ids: Array<number>; tokens: Array<string> }>()
  for (const [name, value] of Object.entries(objectAt(config.special_tokens ?? {}, "post_processor.special_tokens"))) {
    const record = objectAt(value, `post_processor.special_tokens.${name}`)
    const ids = Array.isArray(record.ids) ? record.ids.map(Number) : []
    const tokens = Array.isArray(record.tokens) ? record.tokens.map(String) : []
    specials.set(typeof record.id === "string" ? record.id : name, { ids, tokens })
  }
  for (const piece of [...single, ...pair]) {
    if (piece.kind === "special" && !specials.has(piece.name)) {
      fail(`post_processor template uses ${JSON.stringify(piece.name)}, missing from special_tokens`)
    }
  }
  return (a, b, addSpecialTokens) => {
    const out = empty()
    for (const piece of b === undefined ? single : pair) {
      if (piece.kind === "sequence") {
        const sequence = piece.which === "A" ? a : b
        if (sequence !== undefined) appendSequence(out, sequence, piece.typeId)
      } else if (addSpecialTokens) {
        const special = specials.get(piece.name)!
        appendSpecial(out, special.ids, special.tokens, piece.typeId)
      }
    }
    return out
  }
}

const tokenPair = (json: unknown, where: string): [string, number] => {
  if (Array.isArray(json) && typeof json[0] === "string" && typeof json[1] === "number") return [json[0], json[1]]
  return fail(`${where} must be [token, id]`)
}

/** BERT's [CLS] A [SEP] B [SEP] and RoBERTa's <s> A </s> </s> B </s>. */
const wrapping = (config: Record<string, unknown>, roberta: boolean): PostProcessor => {
  const [clsToken, clsId] = tokenPair(config.cls, "post_processor.cls")
  const [sepToken, sepId] = tokenPair(config.sep, "post_processor.sep")
  return (a, b, addSpecialTokens) => {
    if (!addSpecialTokens) return plainProcessor(a, b, false)
    const out = empty()
    appendSpecial(out, [clsId], [clsToken], 0)
    appendSequence(out, a, 0)
    appendSpecial(out, [sepId], [sepToken], 0)
    if (b !== undefined) {
      const typeId = roberta ? 0 : 1
      if (roberta) appendSpecial(out, [sepId], [sepToken], typeId)
      appendSequence(out, b, typeId)
      appendSpecial(out, [sepId], [sepToken], typeId)
    }
    return out
  }
}

export const buildPostProcessor = (json: unknown): PostProcessor => {
  if (json === null || json === undefined) return plainProcessor
  const config = objectAt(json, "post_processor")
  switch (config.type) {
    case "TemplateProcessing":
      return templateProcessing(config)
    case "BertProcessing":
      return wrapping(config, false)
    case "RobertaProcessing":
      return wrapping(config, true)
    case "ByteLevel":
      // Only moves offsets, which we do not report.
      return plainProcessor
    case "Sequence": {
      // ByteLevel steps only move offsets; what is left is at most one processor that adds tokens.
      const steps = (Array.isArray(config.processors) ? config.processors : []).map(buildPostProcessor).filter((step) =>
        step !== plainProcessor
      )
      if (steps.length > 1) return fail("post_processor: a Sequence with more than one token-adding processor")
      return steps[0] ?? plainProcessor
    }
    default:
      return unsupported("post_processor", config.type)
  }
}

/** How many special tokens the processor adds around a single sequence (or a pair). */
export const addedTokenCount = (processor: PostProcessor, pair: boolean) =>
  processor({ ids: [], tokens: [] }, pair ? { ids: [], tokens: [] } : undefined, true).ids.length
