/**
 * Re-factoring dense updates into LoRA factors: exact at full rank and whenever the update's rank is
 * at most the target, and at lower ranks the truncation error Eckart–Young predicts from the singular
 * values; the Jacobi eigen-decomposition it rests on reconstructs its matrix.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import { refactorDelta, relativeError, symmetricEigen } from "../../../src/compute/lora/LowRank.js"

const randomMatrix = (seed: number, rows: number, cols: number) => {
  const random = new SeededRandom(seed)
  return Float64Array.from({ length: rows * cols }, () => random.uniform() * 2 - 1)
}

/** X Y with X [rows, rank] and Y [rank, cols] random: a matrix of rank `rank` (almost surely). */
const lowRankMatrix = (seed: number, rows: number, cols: number, rank: number) => {
  const left = randomMatrix(seed, rows, rank)
  const right = randomMatrix(seed + 1, rank, cols)
  const product = new Float64Array(rows * cols)
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      for (let r = 0; r < rank; r++) product[i * cols + j]! += left[i * rank + r]! * right[r * cols + j]!
    }
  }
  return product
}

const sizes = fc.integer({ min: 1, max: 12 })

describe("LowRank", () => {
  it("the eigen-decomposition of a symmetric matrix reconstructs it with orthonormal vectors", () => {
    const n = 9
    const base = randomMatrix(5, n, n)
    const symmetric = Float64Array.from({ length: n * n }, (_, k) => base[k]! + base[(k % n) * n + Math.floor(k / n)]!)
    const { values, vectors } = symmetricEigen(symmetric, n)
    for (let k = 1; k < n; k++) expect(values[k]!).toBeLessThanOrEqual(values[k - 1]!)
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let rebuilt = 0
        let gram = 0
        for (let k = 0; k < n; k++) {
          rebuilt += vectors[i * n + k]! * values[k]! * vectors[j * n + k]!
          gram += vectors[k * n + i]! * vectors[k * n + j]!
        }
        expect(rebuilt).toBeCloseTo(symmetric[i * n + j]!, 12)
        expect(gram).toBeCloseTo(i === j ? 1 : 0, 12)
      }
    }
  })

  it("re-factoring to full rank is exact", () => {
    fc.assert(
      fc.property(
        fc.nat(),
        sizes,
        sizes,
        fc.double({ min: 0.25, max: 4, noNaN: true }),
        (seed, inFeatures, outFeatures, scale) => {
          const delta = randomMatrix(seed, inFeatures, outFeatures)
          const rank = Math.min(inFeatures, outFeatures)
          const { module, relativeError: error } = refactorDelta(delta, inFeatures, outFeatures, rank, scale)
          expect(module.A.length).toBe(rank * inFeatures)
          expect(module.B.length).toBe(outFeatures * rank)
          expect(error).toBeLessThan(1e-6)
          expect(relativeError(delta, module, rank, scale)).toBe(error)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("an update of rank r is recovered exactly at any target rank from r up, past min(in, out) too", () => {
    fc.assert(
      fc.property(
        fc.nat(),
        sizes,
        sizes,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 6 }),
        (seed, inFeatures, outFeatures, rank, extra) => {
          const delta = lowRankMatrix(seed, inFeatures, outFeatures, rank)
          const refactored = refactorDelta(delta, inFeatures, outFeatures, rank + extra, 1)
          expect(refactored.relativeError).toBeLessThan(1e-6)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("a lower target rank loses exactly the energy of the dropped singular values (Eckart–Young)", () => {
    const [inFeatures, outFeatures] = [14, 9]
    const delta = randomMatrix(17, inFeatures, outFeatures)
    const full = refactorDelta(delta, inFeatures, outFeatures, outFeatures, 1).singularValues
    const energy = full.reduce((sum, sigma) => sum + sigma * sigma, 0)
    for (const rank of [1, 3, 6]) {
      const truncated = refactorDelta(delta, inFeatures, outFeatures, rank, 2)
      expect(Array.from(truncated.singularValues)).toEqual(Array.from(full.slice(0, rank)))
      const dropped = full.slice(rank).reduce((sum, sigma) => sum + sigma * sigma, 0)
      expect(truncated.relativeError).toBeCloseTo(Math.sqrt(dropped / energy), 6)
    }
  })

  it("a zero update re-factors to zero factors", () => {
    const { module, relativeError: error, singularValues } = refactorDelta(new Float64Array(12), 3, 4, 2, 1)
    expect(module.A.every((value) => value === 0) && module.B.every((value) => value === 0)).toBe(true)
    expect(error).toBe(0)
    expect(Array.from(singularValues)).toEqual([0, 0])
  })
})
