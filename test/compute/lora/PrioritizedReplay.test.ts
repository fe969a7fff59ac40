/**
 * Prioritized replay against exact sampling frequencies: the sum tree's mass per leaf, 100,000 seeded
 * draws against p^α / Σ p^α (chi-square and the largest relative deviation), new priorities moving the
 * frequencies, the ring overwriting its oldest item, and the importance-sampling weights and β's
 * annealing by their formulas.
 */
import { describe, expect, it } from "@effect/vitest"
import { PrioritizedReplay, SumTree } from "../../../src/compute/lora/train/PrioritizedReplay.js"

/** Counts per slot over `draws` batches of one, against the expected probabilities. */
const frequencies = (replay: PrioritizedReplay<number>, draws: number) => {
  const counts = new Array<number>(replay.size).fill(0)
  for (let k = 0; k < draws / 100; k++) for (const slot of replay.sample(100).indices) counts[slot]!++
  return counts
}

const compare = (counts: ReadonlyArray<number>, probabilities: ReadonlyArray<number>) => {
  const draws = counts.reduce((sum, count) => sum + count, 0)
  let chiSquare = 0
  let worst = 0
  probabilities.forEach((p, i) => {
    const expected = p * draws
    chiSquare += (counts[i]! - expected) ** 2 / expected
    worst = Math.max(worst, Math.abs(counts[i]! - expected) / expected)
  })
  return { chiSquare, worst }
}

describe("prioritized replay", () => {
  it("the sum tree gives every leaf a share of the mass equal to its value, for any capacity", () => {
    for (const capacity of [1, 5, 7, 12]) {
      const tree = new SumTree(capacity)
      const values = Array.from({ length: capacity }, (_, i) => (i % 4 === 3 ? 0 : i + 1))
      values.forEach((value, i) => tree.set(i, value))
      expect(tree.total).toBe(values.reduce((a, b) => a + b, 0))
      const counts = new Array<number>(capacity).fill(0)
      const grid = 1000 * tree.total
      for (let k = 0; k < grid; k++) counts[tree.find(((k + 0.5) / grid) * tree.total)]!++
      expect(counts).toEqual(values.map((value) => value * 1000))
      expect(tree.minimum).toBe(Math.min(...values))
    }
  })

  it("draws in proportion to p^α (100,000 draws, seed 5), and follows new priorities", () => {
    const replay = new PrioritizedReplay<number>({ capacity: 10, alpha: 0.6, seed: 5 })
    for (let i = 0; i < 10; i++) replay.add(i)
    const priorities = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((p) => p / 4)
    replay.updatePriorities([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], priorities)
    const expected = (values: ReadonlyArray<number>) => {
      const powered = values.map((p) => (p + 1e-6) ** 0.6)
      const total = powered.reduce((a, b) => a + b, 0)
      return powered.map((p) => p / total)
    }
    const first = compare(frequencies(replay, 100_000), expected(priorities))
    // 9 degrees of freedom: 27.9 is the 0.999 quantile.
    expect(first.chiSquare).toBeLessThan(27.9)
    expect(first.worst).toBeLessThan(0.05)
    for (let i = 0; i < 10; i++) expect(replay.probability(i)).toBeCloseTo(expected(priorities)[i]!, 12)
    // Slot 0 becomes the most likely.
    replay.updatePriorities([0], [40])
    const changed = [40, ...priorities.slice(1)]
    const second = compare(frequencies(replay, 100_000), expected(changed))
    expect(second.chiSquare).toBeLessThan(27.9)
    expect(second.worst).toBeLessThan(0.05)
    expect(expected(changed)[0]).toBeGreaterThan(3 * expected(priorities)[0]!)
  })

  it("overwrites the oldest item when full, and gives new items the highest priority seen", () => {
    const replay = new PrioritizedReplay<string>({ capacity: 3, alpha: 1, seed: 1 })
    expect(["a", "b", "c", "d", "e"].map((item) => replay.add(item))).toEqual([0, 1, 2, 0, 1])
    expect(replay.size).toBe(3)
    expect([0, 1, 2].map((slot) => replay.item(slot))).toEqual(["d", "e", "c"])
    replay.updatePriorities([0, 1, 2], [1, 6, 3])
    const slot = replay.add("f")
    expect(slot).toBe(2)
    expect(replay.probability(2)).toBeCloseTo(6 / 13, 6)
    expect(new PrioritizedReplay({}).capacity).toBe(10_000)
  })

  it("weighs draws by (N·P(i))^-β / max w, with β annealed linearly to 1", () => {
    const replay = new PrioritizedReplay<number>({ capacity: 4, alpha: 1, beta: 0.4, betaSteps: 10, seed: 3 })
    for (let i = 0; i < 4; i++) replay.add(i)
    replay.updatePriorities([0, 1, 2, 3], [1, 2, 3, 4])
    const probabilities = [1, 2, 3, 4].map((p) => (p + 1e-6) / (10 + 4e-6))
    for (let draw = 0; draw < 15; draw++) {
      const beta = Math.min(1, 0.4 + 0.6 * (draw / 10))
      expect(replay.beta).toBeCloseTo(beta, 12)
      const batch = replay.sample(8)
      expect(batch.beta).toBeCloseTo(beta, 12)
      const maxWeight = (4 * probabilities[0]!) ** -beta
      batch.indices.forEach((slot, k) => {
        expect(batch.weights[k]).toBeCloseTo((4 * probabilities[slot]!) ** -beta / maxWeight, 6)
        expect(batch.items[k]).toBe(slot)
      })
    }
    expect(replay.beta).toBe(1)
  })
})
