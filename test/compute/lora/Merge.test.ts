/**
 * LoRA merging against an independent numpy reference (test/fixtures/lora-merge, written by
 * tools/lora_merge_reference.py): same inputs and seed give the same merged updates, truncations,
 * trim and drop counts and DARE draws. Properties of each method, and refusals in one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as path from "node:path"
import type { LoraModule, LoraWeights } from "../../../src/compute/lora/Adapter.js"
import { scaleOf, SeededRandom } from "../../../src/compute/lora/Adapter.js"
import type { MergeError, MergeInput, MergeMethod, MergeTarget } from "../../../src/compute/lora/Merge.js"
import { mergeAdapters, mergeDeltas } from "../../../src/compute/lora/Merge.js"

const fixtures = "test/fixtures/lora-merge"

interface FixtureModule {
  readonly inFeatures: number
  readonly outFeatures: number
  readonly A: ReadonlyArray<number>
  readonly B: ReadonlyArray<number>
}

interface Fixture {
  readonly name: string
  readonly method: MergeMethod
  readonly target: MergeTarget
  readonly adapters: ReadonlyArray<
    { id: string; baseModelDigest: string; rank: number; alpha: number; modules: Record<string, FixtureModule> }
  >
  readonly expected: {
    readonly rank: number
    readonly alpha: number
    readonly random: { generator: string; seed: number; draws: number } | null
    readonly modules: Record<
      string,
      {
        merged: Array<number>
        truncated: Array<number>
        singularValues: Array<number>
        refactorError: number
        trimmed?: number
        dropped?: number
      }
    >
  }
}

const cases: ReadonlyArray<Fixture> = fs
  .readdirSync(fixtures)
  .filter((file) => file.endsWith(".json") && file !== "prng.json")
  .sort()
  .map((file) => JSON.parse(fs.readFileSync(path.join(fixtures, file), "utf8")))

const inputsOf = (fixture: Fixture): Array<MergeInput> =>
  fixture.adapters.map(({ id, baseModelDigest, rank, alpha, modules }) => ({
    id,
    baseModelDigest,
    weights: {
      rank,
      alpha,
      modules: Object.fromEntries(
        Object.entries(modules).map((
          [name, m]
        ) => [name, { ...m, A: Float32Array.from(m.A), B: Float32Array.from(m.B) }])
      )
    }
  }))

/** scale · Aᵀ Bᵀ in float64. */
const dense = (module: LoraModule, rank: number, scale: number) => {
  const { inFeatures, outFeatures, A, B } = module
  const delta = new Float64Array(inFeatures * outFeatures)
  for (let i = 0; i < inFeatures; i++) {
    for (let o = 0; o < outFeatures; o++) {
      let sum = 0
      for (let r = 0; r < rank; r++) sum += A[r * inFeatures + i]! * B[o * rank + r]!
      delta[i * outFeatures + o] = scale * sum
    }
  }
  return delta
}

const largestDifference = (ours: ArrayLike<number>, theirs: ArrayLike<number>) => {
  expect(ours.length).toBe(theirs.length)
  let worst = 0
  for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - theirs[i]!))
  return worst
}

const relativeDifference = (ours: Float64Array, theirs: Float64Array) => {
  let difference = 0
  let norm = 0
  for (let i = 0; i < ours.length; i++) {
    difference += (ours[i]! - theirs[i]!) ** 2
    norm += theirs[i]! ** 2
  }
  return Math.sqrt(difference / Math.max(norm, 1e-300))
}

const rightOf = <A>(result: Either.Either<A, MergeError>): A => {
  if (Either.isLeft(result)) throw new Error(`expected a merge, got: ${result.left.reason}`)
  return result.right
}

describe("merges match the numpy reference", () => {
  it("the fixtures cover every method and sign election", () => {
    const methods = cases.map((
      { method }
    ) => (method.method === "ties" ? `ties-${method.signElection}` : method.method))
    expect(new Set(methods)).toEqual(new Set(["ties-majority", "ties-weighted", "dare", "task_arithmetic"]))
  })

  it("the seeded generator draws what the reference's draws", () => {
    const { firstDraws } = JSON.parse(fs.readFileSync(path.join(fixtures, "prng.json"), "utf8")) as {
      firstDraws: Record<string, Array<number>>
    }
    for (const [seed, draws] of Object.entries(firstDraws)) {
      const random = new SeededRandom(Number(seed))
      expect(draws.map(() => random.nextUint32())).toEqual(draws)
      expect(random.draws).toBe(draws.length)
    }
  })

  for (const fixture of cases) {
    it(`${fixture.name}: merged and re-factored updates within 1e-6, same counts and draws`, () => {
      const inputs = inputsOf(fixture)
      const deltas = rightOf(mergeDeltas(inputs, fixture.method))
      const { weights, report } = rightOf(mergeAdapters(inputs, fixture.method, fixture.target))
      const { expected } = fixture
      expect(Object.keys(deltas.modules)).toEqual(Object.keys(expected.modules))
      expect([weights.rank, weights.alpha]).toEqual([expected.rank, expected.alpha])
      expect(report.random ?? null).toEqual(expected.random)
      expect(report.adapters).toEqual(fixture.adapters.map(({ id }) => id))
      for (const [name, reference] of Object.entries(expected.modules)) {
        expect(largestDifference(deltas.modules[name]!.delta, reference.merged)).toBeLessThan(1e-6)
        expect(largestDifference(dense(weights.modules[name]!, weights.rank, scaleOf(weights)), reference.truncated))
          .toBeLessThan(1e-6)
        const moduleReport = report.modules[name]!
        expect(largestDifference(moduleReport.singularValues, reference.singularValues)).toBeLessThan(1e-6)
        expect(Math.abs(moduleReport.refactorError - reference.refactorError)).toBeLessThan(1e-6)
        expect(moduleReport.trimmed).toBe(reference.trimmed)
        expect(moduleReport.dropped).toBe(reference.dropped)
      }
    })
  }
})

const digest = `sha256-${"ab".repeat(32)}`

const randomAdapter = (
  id: string,
  seed: number,
  rank: number,
  shapes: ReadonlyArray<readonly [string, number, number]>,
  alpha = 2 * rank
): MergeInput => {
  const random = new SeededRandom(seed)
  const values = (count: number) => Float32Array.from({ length: count }, () => random.uniform() * 2 - 1)
  const modules = Object.fromEntries(
    shapes.map((
      [name, inFeatures, outFeatures]
    ) => [name, { inFeatures, outFeatures, A: values(rank * inFeatures), B: values(outFeatures * rank) }])
  )
  return { id, baseModelDigest: digest, weights: { rank, alpha, modules } }
}

const shapesArbitrary = fc.uniqueArray(
  fc.tuple(fc.constantFrom("q", "k", "v", "o"), fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10 })),
  {
    minLength: 1,
    maxLength: 3,
    selector: ([name]) => name
  }
)

/** ‖ΔW_merged - ΔW_adapter‖_F / ‖ΔW_adapter‖_F, worst over modules. */
const worstRelative = (merged: LoraWeights, adapter: LoraWeights) =>
  Math.max(
    ...Object.entries(adapter.modules).map(([name, module]) =>
      relativeDifference(
        dense(merged.modules[name]!, merged.rank, scaleOf(merged)),
        dense(module, adapter.rank, scaleOf(adapter))
      )
    )
  )

describe("merge properties", () => {
  it("task arithmetic of one adapter at weight 1 returns that adapter", () => {
    fc.assert(
      fc.property(fc.nat(), fc.integer({ min: 1, max: 4 }), shapesArbitrary, (seed, rank, shapes) => {
        const adapter = randomAdapter("only", seed, rank, shapes)
        const { weights } = rightOf(mergeAdapters([adapter], { method: "task_arithmetic", weights: [1] }))
        expect(weights.rank).toBe(rank)
        expect(worstRelative(weights, adapter.weights)).toBeLessThan(1e-5)
      }),
      { numRuns: 60 }
    )
  })

  it("TIES without trimming merges identical adapters into that adapter", () => {
    fc.assert(
      fc.property(
        fc.nat(),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        shapesArbitrary,
        fc.constantFrom("majority" as const, "weighted" as const),
        (seed, rank, copies, shapes, signElection) => {
          const adapter = randomAdapter("same", seed, rank, shapes)
          const method: MergeMethod = { method: "ties", trimFraction: 0, signElection, scalingCoef: 1 }
          const adapters = Array.from({ length: copies }, (_, i) => ({ ...adapter, id: `copy-${i}` }))
          const { weights, report } = rightOf(mergeAdapters(adapters, method))
          expect(worstRelative(weights, adapter.weights)).toBeLessThan(1e-5)
          expect(Object.values(report.modules).every(({ trimmed }) => trimmed === 0)).toBe(true)
        }
      ),
      { numRuns: 60 }
    )
  })

  it("DARE at drop rate 0 is task arithmetic, and one seed always drops the same entries", () => {
    const shapes = [["q", 6, 9] as const, ["v", 9, 6] as const]
    const adapters = [randomAdapter("a", 1, 2, shapes), randomAdapter("b", 2, 3, shapes)]
    const weights = [0.75, -0.5]
    const plain = rightOf(mergeDeltas(adapters, { method: "task_arithmetic", weights }))
    const undropped = rightOf(mergeDeltas(adapters, { method: "dare", dropRate: 0, rescale: true, seed: 3, weights }))
    for (const name of ["q", "v"]) {
      expect(largestDifference(undropped.modules[name]!.delta, plain.modules[name]!.delta)).toBe(0)
    }
    const dare: MergeMethod = { method: "dare", dropRate: 0.5, rescale: true, seed: 11 }
    const first = rightOf(mergeDeltas(adapters, dare))
    const again = rightOf(mergeDeltas(adapters, dare))
    const otherSeed = rightOf(mergeDeltas(adapters, { ...dare, seed: 12 }))
    expect(first.random).toEqual({ generator: "xoshiro128**", seed: 11, draws: 2 * (54 + 54) })
    expect(again.modules.q!.delta).toEqual(first.modules.q!.delta)
    expect(otherSeed.modules.q!.delta).not.toEqual(first.modules.q!.delta)
    const dropped = first.modules.q!.dropped! + first.modules.v!.dropped!
    expect(dropped).toBeGreaterThan(70)
    expect(dropped).toBeLessThan(146)
  })

  it("TIES keeps the value of the elected sign and averages agreeing adapters", () => {
    const single = (id: string, a: Array<number>, b: Array<number>): MergeInput => ({
      id,
      baseModelDigest: digest,
      weights: {
        rank: 1,
        alpha: 1,
        modules: {
          m: { inFeatures: a.length, outFeatures: b.length, A: Float32Array.from(a), B: Float32Array.from(b) }
        }
      }
    })
    // Entry updates (A · B with one output): x = [3, 1, -2, 2], y = [-1, 1, -2, -1], z = [-1, 2, 4, 0].
    const adapters = [
      single("x", [3, 1, -2, 2], [1]),
      single("y", [-1, 1, -2, -1], [1]),
      single("z", [-1, 2, 4, 0], [1])
    ]
    const merge = (signElection: "majority" | "weighted") =>
      Array.from(
        rightOf(mergeDeltas(adapters, { method: "ties", trimFraction: 0, signElection, scalingCoef: 2 })).modules.m!
          .delta
      )
    // Entry 0: two of three vote -, but + carries more magnitude (3 against 2). Entry 2: two votes
    // for -, and a sum of 0, which elects +. Entry 3: a tied count (z is 0), decided by the sum.
    expect(merge("majority")).toEqual([2 * -1, 2 * (4 / 3), 2 * -2, 2 * 2])
    expect(merge("weighted")).toEqual([2 * 3, 2 * (4 / 3), 2 * 4, 2 * 2])
  })
})

describe("merges are refused with one line", () => {
  const shapes = [["q", 4, 4] as const]
  const refusal = (
    adapters: ReadonlyArray<MergeInput>,
    method: MergeMethod = { method: "task_arithmetic", weights: adapters.map(() => 1) },
    target?: MergeTarget
  ) => {
    const result = mergeAdapters(adapters, method, target)
    if (Either.isRight(result)) throw new Error("expected a refusal")
    expect(result.left.message).not.toContain("\n")
    return result.left
  }

  it("adapters made for different base models", () => {
    const other = { ...randomAdapter("other", 2, 2, shapes), baseModelDigest: `sha256-${"cd".repeat(32)}` }
    const error = refusal([randomAdapter("mine", 1, 2, shapes), other])
    expect(error.kind).toBe("BaseModelMismatch")
    expect(error.message).toContain("adapter other was made for base model sha256-cdcd")
  })

  it("modules whose shapes disagree", () => {
    const error = refusal([randomAdapter("mine", 1, 2, shapes), randomAdapter("wide", 2, 2, [["q", 4, 8]])])
    expect(error.kind).toBe("ShapeMismatch")
    expect(error.message).toBe("module q is [4, 4] in adapter mine but [4, 8] in adapter wide")
  })

  it("options out of range, and no adapters at all", () => {
    const adapters = [randomAdapter("mine", 1, 2, shapes)]
    expect(refusal(adapters, { method: "ties", trimFraction: 1.5, signElection: "majority", scalingCoef: 1 }).message)
      .toContain("trimFraction")
    expect(refusal(adapters, { method: "dare", dropRate: 1, rescale: true, seed: 0 }).message).toContain("dropRate")
    expect(refusal(adapters, { method: "task_arithmetic", weights: [1, 1] }).message).toContain(
      "one finite weight per adapter"
    )
    expect(refusal(adapters, undefined, { rank: 0 }).message).toContain("rank")
    expect(refusal([]).message).toBe("nothing to merge: no adapters given")
  })
})
