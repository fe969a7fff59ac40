import { describe, expect, it } from "@effect/vitest"
import { cosineSimilarity, maxAbsoluteError, negativeLogLikelihood, perplexity, top1Agreement } from "../../src/compute/validate/Metrics.js"

describe("validation metrics", () => {
  it("cosine, max error and top-1 agreement", () => {
    expect(cosineSimilarity([1, 0], [1, 0])).toBe(1)
    expect(cosineSimilarity([1, 0], [0, 1])).toBe(0)
    expect(cosineSimilarity([1, 2, 3], [-1, -2, -3])).toBeCloseTo(-1, 12)
    expect(maxAbsoluteError([1, 2, 3], [1, 2.5, 2])).toBe(1)
    expect(maxAbsoluteError([1], [Number.NaN])).toBe(Infinity)
    // Two rows of three classes: the first agrees (index 2), the second does not.
    expect(top1Agreement([0, 1, 5, 3, 2, 1], [0, 2, 4, 1, 2, 1], 3)).toBe(0.5)
  })

  it("perplexity of uniform logits is the vocabulary size; a confident right guess is near 1", () => {
    const vocab = 8
    const uniform = new Float32Array(3 * vocab)
    expect(perplexity(negativeLogLikelihood(uniform, vocab, [1, 2, 3]))).toBeCloseTo(8, 10)
    const confident = new Float32Array(2 * vocab)
    confident[5] = 30
    confident[vocab + 1] = 30
    expect(perplexity(negativeLogLikelihood(confident, vocab, [5, 1]))).toBeCloseTo(1, 6)
    expect(negativeLogLikelihood(confident, vocab, [5, -1]).count).toBe(1)
  })
})
