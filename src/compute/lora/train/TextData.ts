/**
 * Training samples from text: fixed-length token windows for a causal LM (documents joined by the
 * end-of-text token, as GPT-2 was trained), and truncated labelled sequences for a classifier.
 */
import type { Tokenizer } from "../../tokenizer/Tokenizer.js"
import type { CausalLmSample, ClassificationSample } from "./Objectives.js"

/**
 * Non-overlapping windows of `length` tokens over the documents, in order; the tail shorter than a
 * window is dropped. `separator` (the model's end-of-text id) goes between documents.
 */
export const languageModelWindows = (
  tokenizer: Tokenizer,
  documents: ReadonlyArray<string>,
  length: number,
  options: { readonly separator?: number | undefined; readonly maxWindows?: number | undefined } = {}
): Array<CausalLmSample> => {
  if (!Number.isInteger(length) || length < 2) throw new RangeError(`a window is 2 or more tokens (not ${length})`)
  const windows: Array<CausalLmSample> = []
  let pending: Array<number> = []
  for (const document of documents) {
    const ids = Array.from(tokenizer.encode(document, { addSpecialTokens: false, truncation: false }).ids, Number)
    for (const item of ids) pending.push(item)
    if (options.separator !== undefined) pending.push(options.separator)
    while (pending.length >= length) {
      windows.push({ ids: pending.slice(0, length) })
      pending = pending.slice(length)
      if (options.maxWindows !== undefined && windows.length >= options.maxWindows) return windows
    }
  }
  return windows
}

/** Each text's tokens (with the tokenizer's special tokens), truncated to `maxLength`, with its label. */
export const classificationSamples = (
  tokenizer: Tokenizer,
  items: ReadonlyArray<{ readonly text: string; readonly label: number }>,
  maxLength: number
): Array<ClassificationSample> =>
  items.map(({ text, label }) => ({
    ids: Array.from(tokenizer.encode(text, { truncation: maxLength }).ids, Number),
    label
  }))
