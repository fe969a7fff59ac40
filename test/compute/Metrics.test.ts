import { describe, expect, it } from "@effect/vitest"
import {
  cosineSimilarity,
  klDivergence,
  maxAbsoluteError,
  negativeLogLikelihood,
  nextTokenNegativeLogLikelihood,
  perplexity,
  top1Agreement
} from "../../src/compute/validate/Metrics.js"

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

  it("next-token NLL: logits at t score input_ids[t + 1], per batch row, skipping masked next tokens", () => {
    const vocab = 4
    // Two rows of three positions; every position confidently predicts token 2.
    const logits = new Float32Array(2 * 3 * vocab)
    for (let position = 0; position < 6; position++) logits[position * vocab + 2] = 30
    const ids = [7, 2, 2, 7, 2, 2]
    const all = nextTokenNegativeLogLikelihood(logits, [2, 3, vocab], ids)
    // Two scored positions per row (the last position has no next token), all right.
    expect(all.count).toBe(4)
    expect(perplexity(all)).toBeCloseTo(1, 6)
    // Padding: the second row's last token is masked out, so only one of its positions counts.
    expect(nextTokenNegativeLogLikelihood(logits, [2, 3, vocab], ids, [1, 1, 1, 1, 1, 0]).count).toBe(3)
    // A wrong next token costs about 30 nats.
    expect(nextTokenNegativeLogLikelihood(logits, [1, 3, vocab], [0, 1, 2]).total).toBeCloseTo(30, 3)
  })

  it("KL divergence of next-token distributions: zero for the same logits, the closed form for two tokens", () => {
    const same = Float32Array.from([1, 2, 3, 0.5, -1, 4])
    expect(klDivergence(same, same, 3)).toEqual({ total: 0, count: 2 })
    // P = (0.5, 0.5), Q = softmax(ln 3, 0) = (0.75, 0.25): KL = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25).
    const { total, count } = klDivergence([0, 0], [Math.log(3), 0], 2)
    expect(count).toBe(1)
    expect(total).toBeCloseTo(0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(2), 6)
  })
})
