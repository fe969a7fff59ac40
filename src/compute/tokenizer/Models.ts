/**
 * Tokenizer models: BPE (merges by rank, with byte fallback and unknown-token fusing), WordPiece
 * (greedy longest match) and WordLevel (whole-word lookup). Each turns one pre-tokenized word into ids.
 */
import { LruCache } from "../../domain/LruCache.js"
import { utf8 } from "./Text.js"
import { booleanOr, fail, numberOr, objectAt, unsupported } from "./TokenizerError.js"

export interface Model {
  readonly vocab: ReadonlyMap<string, number>
  readonly unkToken: string | undefined
  readonly tokenize: (word: string) => ReadonlyArray<number>
}

const readVocab = (json: unknown): Map<string, number> => {
  const vocab = new Map<string, number>()
  if (Array.isArray(json)) {
    // Unigram-style [[token, score], ...] lists are not a vocab we accept here.
    return fail("model.vocab must be an object of token -> id")
  }
  for (const [token, id] of Object.entries(objectAt(json ?? {}, "model.vocab"))) {
    if (typeof id !== "number") fail(`model.vocab[${JSON.stringify(token)}] is not a number`)
    vocab.set(token, id as number)
  }
  return vocab
}

const unkIdOf = (vocab: ReadonlyMap<string, number>, unkToken: string | undefined) => {
  if (unkToken === undefined) return undefined
  const id = vocab.get(unkToken)
  return id ?? fail(`unk_token ${JSON.stringify(unkToken)} is not in the vocab`)
}

/** Merges a word's symbols by rank, lowest first and leftmost on ties, as the library's priority queue does. */
const mergeSymbols = (
  ids: Array<number>,
  ranks: ReadonlyMap<number, number>,
  results: ReadonlyMap<number, number>,
  width: number
) => {
  const count = ids.length
  if (count < 2) return ids
  const next = new Int32Array(count)
  const previous = new Int32Array(count)
  const alive = new Uint8Array(count).fill(1)
  for (let i = 0; i < count; i++) {
    next[i] = i + 1 < count ? i + 1 : -1
    previous[i] = i - 1
  }
  // A binary heap of candidate merges ordered by (rank, position).
  const heapRank: Array<number> = []
  const heapPos: Array<number> = []
  const less = (a: number, b: number) =>
    heapRank[a]! < heapRank[b]! || (heapRank[a] === heapRank[b] && heapPos[a]! < heapPos[b]!)
  const swap = (a: number, b: number) => {
    const rank = heapRank[a]!, pos = heapPos[a]!
    heapRank[a] = heapRank[b]!
    heapPos[a] = heapPos[b]!
    heapRank[b] = rank
    heapPos[b] = pos
  }
  const push = (rank: number, pos: number) => {
    heapRank.push(rank)
    heapPos.push(pos)
    let i = heapRank.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!less(i, parent)) break
      swap(i, parent)
      i = parent
    }
  }
  const pop = () => {
    const rank = heapRank[0]!, pos = heapPos[0]!
    const lastRank = heapRank.pop()!, lastPos = heapPos.pop()!
    if (heapRank.length > 0) {
      heapRank[0] = lastRank
      heapPos[0] = lastPos
      let i = 0
      while (true) {
        const left = 2 * i + 1, right = left + 1
        let smallest = i
        if (left < heapRank.length && less(left, smallest)) smallest = left
        if (right < heapRank.length && less(right, smallest)) smallest = right
        if (smallest === i) break
        swap(i, smallest)
        i = smallest
      }
    }
    return [rank, pos] as const
  }
  const consider = (pos: number) => {
    const right = next[pos]!
    if (right < 0) return
    const rank = ranks.get(ids[pos]! * width + ids[right]!)
    if (rank !== undefined) push(rank, pos)
  }
  for (let i = 0; i + 1 < count; i++) consider(i)
  while (heapRank.length > 0) {
    const [rank, pos] = pop()
    if (alive[pos] === 0) continue
    const right = next[pos]!
    if (right < 0) continue
    const key = ids[pos]! * width + ids[right]!
    if (ranks.get(key) !== rank) continue
    ids[pos] = results.get(key)!
    alive[right] = 0
    next[pos] = next[right]!
    if (next[right]! >= 0) previous[next[right]!] = pos
    if (previous[pos]! >= 0) consider(previous[pos]!)
    consider(pos)
  }
  const merged: Array<number> = []
  for (let i = 0; i >= 0; i = next[i]!) merged.push(ids[i]!)
  return merged
}

const bpe = (config: Record<string, unknown>): Model => {
  const vocab = readVocab(config.vocab)
  const unkToken = typeof config.unk_token === "string" ? config.unk_token : undefined
  const unkId = unkIdOf(vocab, unkToken)
  const prefix = typeof config.continuing_subword_prefix === "string" ? config.continuing_subword_prefix : ""
  const suffix = typeof config.end_of_word_suffix === "string" ? config.end_of_word_suffix : ""
  const fuseUnk = booleanOr(config.fuse_unk, false)
  const byteFallback = booleanOr(config.byte_fallback, false)
  const ignoreMerges = booleanOr(config.ignore_merges, false)
  let width = 1
  for (const id of vocab.values()) width = Math.max(width, id + 1)
  // Merge ranks keyed by the pair of ids (left * width + right): one Map lookup per candidate pair.
  const ranks = new Map<number, number>()
  const results = new Map<number, number>()
  const merges = Array.isArray(config.merges) ? config.merges : []
  merges.forEach((merge: unknown, rank) => {
    let pair: [string, string] | undefined
    if (typeof merge === "string") {
      const space = merge.indexOf(" ", 1)
      if (space > 0) pair = [merge.slice(0, space), merge.slice(space + 1)]
    } else if (
      Array.isArray(merge) && merge.length === 2 && typeof merge[0] === "string" && typeof merge[1] === "string"
    ) {
      pair = [merge[0], merge[1]]
    }
    if (pair === undefined) return fail(`model.merges[${rank}] is not a pair`)
    const left = vocab.get(pair[0])
    const right = vocab.get(pair[1])
    const result = vocab.get(pair[0] + pair[1].slice(prefix.length && pair[1].startsWith(prefix) ? prefix.length : 0))
    if (left === undefined || right === undefined || result === undefined) {
      return fail(`model.merges[${rank}] uses a token missing from the vocab`)
    }
    const key = left * width + right
    if (!ranks.has(key)) {
      ranks.set(key, rank)
      results.set(key, result)
    }
  })
  const cache = new LruCache<string, ReadonlyArray<number>>(10_000)

  const symbolsOf = (word: string) => {
    const ids: Array<number> = []
    const chars = Array.from(word)
    let pendingUnk = false
    const flushUnk = () => {
      if (pendingUnk && unkId !== undefined) ids.push(unkId)
      pendingUnk = false
    }
    chars.forEach((char, index) => {
      let symbol = char
      if (index > 0) symbol = prefix + symbol
      if (index === chars.length - 1) symbol += suffix
      const id = vocab.get(symbol)
      if (id !== undefined) {
        flushUnk()
        ids.push(id)
        return
      }
      if (byteFallback) {
        const bytes = Array.from(
          utf8(symbol),
          (byte) => vocab.get(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`)
        )
        if (bytes.every((byteId) => byteId !== undefined)) {
          flushUnk()
          for (const item of (bytes as Array<number>)) ids.push(item)
          return
        }
      }
      if (unkId === undefined) return
      if (!(pendingUnk && fuseUnk)) flushUnk()
      pendingUnk = true
    })
    flushUnk()
    return ids
  }

  return {
    vocab,
    unkToken,
    tokenize: (word) => {
      if (word.length === 0) return []
      if (ignoreMerges) {
        const whole = vocab.get(word)
        if (whole !== undefined) return [whole]
      }
      const cached = cache.get(word)
      if (cached !== undefined) return cached
      const ids = mergeSymbols(symbolsOf(word), ranks, results, width)
      cache.set(word, ids)
      return ids
    }
  }
}

const wordPiece = (config: Record<string, unknown>): Model => {
  const vocab = readVocab(config.vocab)
  const unkToken = typeof config.unk_token === "string" ? config.unk_token : "[UNK]"
  const unkId = unkIdOf(vocab, unkToken)!
  const prefix = typeof config.continuing_subword_prefix === "string" ? config.continuing_subword_prefix : "##"
  const maxChars = numberOr(config.max_input_chars_per_word, 100)
  const cache = new LruCache<string, ReadonlyArray<number>>(10_000)
  /** Longest vocab match from the left, again and again; undefined when some remainder matches nothing. */
  const greedyPieces = (word: string): Array<number> | undefined => {
    let count = 0
    for (const _ of word) if (++count > maxChars) return undefined
    const ids: Array<number> = []
    let start = 0
    while (start < word.length) {
      let end = word.length
      let found: number | undefined
      while (start < end && found === undefined) {
        const piece = word.slice(start, end)
        found = vocab.get(start > 0 ? prefix + piece : piece)
        // Step back one code point (two UTF-16 units for a surrogate pair).
        if (found === undefined) end -= end - 2 >= start && /[\uDC00-\uDFFF]/.test(word[end - 1]!) ? 2 : 1
      }
      if (found === undefined) return undefined
      ids.push(found)
      start = end
    }
    return ids
  }
  return {
    vocab,
    unkToken,
    tokenize: (word) => {
      const cached = cache.get(word)
      if (cached !== undefined) return cached
      const ids = greedyPieces(word) ?? [unkId]
      cache.set(word, ids)
      return ids
    }
  }
}

const wordLevel = (config: Record<string, unknown>): Model => {
  const vocab = readVocab(config.vocab)
  const unkToken = typeof config.unk_token === "string" ? config.unk_token : undefined
  const unkId = unkIdOf(vocab, unkToken)
  return {
    vocab,
    unkToken,
    tokenize: (word) => {
      const id = vocab.get(word) ?? unkId
      return id === undefined
        ? fail(`WordLevel: ${JSON.stringify(word)} is not in the vocab and there is no unk_token`)
        : [id]
    }
  }
}

export const buildModel = (json: unknown): Model => {
  const config = objectAt(json, "model")
  const type = config.type ??
    ("merges" in config ? "BPE" : "continuing_subword_prefix" in config ? "WordPiece" : undefined)
  switch (type) {
    case "BPE":
      return bpe(config)
    case "WordPiece":
      return wordPiece(config)
    case "WordLevel":
      return wordLevel(config)
    default:
      return unsupported("model", type)
  }
}
