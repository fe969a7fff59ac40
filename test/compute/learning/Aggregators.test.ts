/**
 * The aggregation rules on synthetic updates: exact values for FedAvg, the median, the trimmed mean,
 * Krum and Multi-Krum; planted outliers excluded by the robust rules with the reasons recorded; and
 * one-line refusals of bad input.
 */
import { describe, expect, it } from "@effect/vitest"
import type { AggregationRule } from "../../../src/compute/learning/Aggregators.js"
import { aggregate, krumScores } from "../../../src/compute/learning/Aggregators.js"
import type { LearningError, PeerUpdate } from "../../../src/compute/learning/Updates.js"
import { packUpdate } from "../../../src/compute/learning/Updates.js"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"

const update = (peer: string, values: ReadonlyArray<number>, samples = 1): PeerUpdate =>
  packUpdate(peer, samples, [{ name: "w", shape: [values.length], values: Float32Array.from(values) }])

/** Six honest updates near a common direction and two planted attackers far from it. */
const planted = (dimension = 300) => {
  const random = new SeededRandom(42)
  const center = Array.from({ length: dimension }, () => random.uniform() * 2 - 1)
  const honest = Array.from(
    { length: 6 },
    (_, k) => update(`honest-${k}`, center.map((value) => value + 0.1 * (random.uniform() * 2 - 1)), 10 + k)
  )
  const attackers = [
    update("scaled", center.map((value) => value * 10), 12),
    update("flipped", center.map((value) => -value * 3), 12)
  ]
  return { honest, attackers, all: [...honest, ...attackers], center }
}

const failure = (work: () => unknown): LearningError => {
  try {
    work()
  } catch (error) {
    return error as LearningError
  }
  throw new Error("expected a LearningError")
}

describe("aggregators", () => {
  it("FedAvg weighs each update by its samples", () => {
    const result = aggregate([update("a", [1, 2], 1), update("b", [3, 4], 1), update("c", [5, 6], 2)], {
      kind: "fedavg"
    })
    expect([...result.vector]).toEqual([3.5, 4.5])
    expect(result.samples).toBe(4)
    expect(result.verdicts.map((verdict) => verdict.reason)).toEqual([
      "weight 25% (1 samples)",
      "weight 25% (1 samples)",
      "weight 50% (2 samples)"
    ])
  })

  it("the median and the trimmed mean take exact order statistics per coordinate", () => {
    const updates = [
      update("a", [1, 40]),
      update("b", [2, 10]),
      update("c", [3, 30]),
      update("d", [4, 20]),
      update("e", [100, -100]),
      update("f", [-50, 7]),
      update("g", [6, 8]),
      update("h", [5, 9])
    ]
    // Sorted: [-50, 1, 2, 3, 4, 5, 6, 100] and [-100, 7, 8, 9, 10, 20, 30, 40].
    expect([...aggregate(updates, { kind: "median" }).vector]).toEqual([3.5, 9.5])
    expect([...aggregate(updates, { kind: "trimmed-mean", trim: 0.25 }).vector]).toEqual([3.5, 11.75])
    expect([...aggregate(updates, { kind: "trimmed-mean", trim: 0.125 }).vector]).toEqual([
      (1 + 2 + 3 + 4 + 5 + 6) / 6,
      (7 + 8 + 9 + 10 + 20 + 30) / 6
    ])
  })

  it("the robust rules match a reference and exclude the planted attackers, saying why", () => {
    const { all, center } = planted()
    const sorted = (coordinate: number) => all.map((u) => u.vector[coordinate]!).sort((a, b) => a - b)
    const median = aggregate(all, { kind: "median" })
    const trimmed = aggregate(all, { kind: "trimmed-mean", trim: 0.25 })
    for (let i = 0; i < center.length; i++) {
      const values = sorted(i)
      expect(median.vector[i]).toBeCloseTo((values[3]! + values[4]!) / 2, 6)
      expect(trimmed.vector[i]).toBeCloseTo((values[2]! + values[3]! + values[4]! + values[5]!) / 4, 6)
    }
    for (const result of [median, trimmed]) {
      expect(result.verdicts.filter((verdict) => !verdict.kept).map((verdict) => verdict.peer)).toEqual([
        "scaled",
        "flipped"
      ])
    }
    expect(median.verdicts[6]!.reason).toMatch(
      /^the median at [0-2]\.\d% of coordinates \(fair share 13%\): an outlier$/
    )
    expect(trimmed.verdicts[7]!.reason).toMatch(/^trimmed at 9\d% of coordinates \(expected 50%, β=0.25\): an outlier$/)
    expect(trimmed.verdicts[0]!.reason).toMatch(/^trimmed at \d+% of coordinates \(expected 50%, β=0.25\)$/)
    // The plain mean is dragged far away; the robust ones stay by the honest center.
    const distance = (vector: Float32Array) =>
      Math.sqrt(center.reduce((sum, value, i) => sum + (vector[i]! - value) ** 2, 0))
    const mean = aggregate(all, { kind: "fedavg" })
    expect(distance(mean.vector)).toBeGreaterThan(10 * distance(median.vector))
    expect(distance(mean.vector)).toBeGreaterThan(10 * distance(trimmed.vector))
  })

  it("Krum picks the update with the closest n - f - 2 neighbours; Multi-Krum averages the m best", () => {
    const updates = [0, 1, 2, 3, 4, 5, 100, 200].map((value, k) => update(`p${k}`, [value]))
    // n = 8, f = 2: each score sums the 4 smallest squared distances to the others.
    const scores = krumScores(updates, 2)
    expect(scores.slice(0, 6)).toEqual([30, 15, 10, 10, 15, 30])
    expect(scores[6]).toBe(95 ** 2 + 96 ** 2 + 97 ** 2 + 98 ** 2)
    const krum = aggregate(updates, { kind: "krum", attackers: 2 })
    expect([...krum.vector]).toEqual([2])
    expect(krum.verdicts[2]!).toEqual({ peer: "p2", kept: true, reason: "Krum score 10.00, among the 1 lowest (f=2)" })
    expect(krum.verdicts[7]!.kept).toBe(false)
    expect(krum.verdicts[7]!.reason).toMatch(/^Krum score 1\.\d+e\+5 above the 1 chosen \(at most 10\.00, f=2\)$/)
    const multi = aggregate(updates, { kind: "multi-krum", attackers: 2, selected: 4 })
    expect([...multi.vector]).toEqual([2.5])
    expect(multi.verdicts.map((verdict) => verdict.kept)).toEqual([false, true, true, true, true, false, false, false])
    const { all } = planted()
    const planted4 = aggregate(all, { kind: "multi-krum", attackers: 2, selected: 4 })
    expect(planted4.verdicts.slice(6).every((verdict) => !verdict.kept)).toBe(true)
  })

  it("the reputation-weighted mean multiplies samples by reputation and leaves out reputation 0", () => {
    const result = aggregate([update("a", [0], 10), update("b", [10], 10), update("c", [1000], 40)], {
      kind: "reputation",
      reputation: new Map([["a", 1], ["b", 0.25], ["c", 0]])
    })
    expect(result.vector[0]).toBeCloseTo(2, 6)
    expect(result.verdicts[2]).toEqual({ peer: "c", kept: false, reason: "weight 0 (40 samples × reputation 0)" })
    expect(result.samples).toBe(20)
  })

  it("refuses bad input in one line", () => {
    const rules: ReadonlyArray<AggregationRule> = [{ kind: "fedavg" }, { kind: "median" }]
    for (const rule of rules) expect(failure(() => aggregate([], rule)).message).toBe("no updates to aggregate")
    const mismatch = failure(() => aggregate([update("a", [1, 2]), update("b", [1])], { kind: "fedavg" }))
    expect(mismatch.kind).toBe("Mismatch")
    expect(mismatch.message).toBe("update of b has tensors w[1], not w[2]")
    const tooMany = failure(() =>
      aggregate([1, 2, 3, 4, 5, 6].map((v) => update(`p${v}`, [v])), { kind: "krum", attackers: 2 })
    )
    expect(tooMany.message).toBe("Krum with f=2 needs more than 6 updates, not 6")
    const nan = failure(() => aggregate([update("a", [1, Number.NaN])], { kind: "fedavg" }))
    expect(nan.kind).toBe("NonFinite")
    expect(nan.message).toBe("update of a has NaN in w at 1")
    expect(failure(() => aggregate([update("a", [1])], { kind: "trimmed-mean", trim: 0.5 })).message).toBe(
      "trim must be in [0, 0.5), not 0.5"
    )
    expect(failure(() => aggregate([update("a", [1]), update("a", [2])], { kind: "fedavg" })).message).toBe(
      "two updates come from one peer"
    )
  })
})
