/**
 * Character accuracy of recognized text against its reference: 1 - edit distance / reference length,
 * per line and pooled over a set of lines. Characters are Unicode code points.
 */

/** Levenshtein distance (insertions, deletions and substitutions each cost 1) between code point sequences. */
export const levenshtein = (left: string, right: string): number => {
  const a = Array.from(left)
  const b = Array.from(right)
  if (a.length === 0) return b.length
  if (b.length === 0) return a.length
  // Two rows of the dynamic programme: distances from a prefix of `a` to every prefix of `b`.
  let previous = new Uint32Array(b.length + 1)
  let current = new Uint32Array(b.length + 1)
  for (let j = 0; j <= b.length; j++) previous[j] = j
  for (let i = 1; i <= a.length; i++) {
    current[0] = i
    const character = a[i - 1]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (character === b[j - 1] ? 0 : 1)
      current[j] = Math.min(substitution, previous[j]! + 1, current[j - 1]! + 1)
    }
    ;[previous, current] = [current, previous]
  }
  return previous[b.length]!
}

const length = (text: string) => Array.from(text).length

/** 1 - levenshtein(predicted, reference) / max(1, reference length), never below 0. */
export const characterAccuracy = (predicted: string, reference: string): number =>
  Math.max(0, 1 - levenshtein(predicted, reference) / Math.max(1, length(reference)))

export interface PooledAccuracy {
  /** 1 - edits / referenceCharacters, never below 0 (1 when there is no reference text). */
  readonly accuracy: number
  readonly edits: number
  readonly referenceCharacters: number
  readonly lines: number
}

/** Accuracy over many lines, weighting each line by its length: total edits / total reference characters. */
export const pooledCharacterAccuracy = (
  pairs: Iterable<{ readonly predicted: string; readonly reference: string }>
): PooledAccuracy => {
  let edits = 0
  let referenceCharacters = 0
  let lines = 0
  for (const { predicted, reference } of pairs) {
    edits += levenshtein(predicted, reference)
    referenceCharacters += length(reference)
    lines++
  }
  const accuracy = referenceCharacters === 0 ? (edits === 0 ? 1 : 0) : Math.max(0, 1 - edits / referenceCharacters)
  return { accuracy, edits, referenceCharacters, lines }
}
