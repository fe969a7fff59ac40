/**
 * The quality bar's direction rule: a figure named as reported is bounded the way it gets better
 * (larger for cosine and task metrics, smaller for errors, perplexity and size), `min…` / `max…` say it outright.
 */
import { describe, expect, it } from "vitest"
import { boundOf, qualityBarMisses } from "../../src/compute/optimize/QualityBar.js"

const report = {
  cosine: 0.995,
  maxError: 0.2,
  top1: 0.9,
  sizeRatio: 0.26,
  latencyRatio: 1.4,
  perplexity: 71.2,
  baselinePerplexity: 71.1,
  perplexityDelta: 0.1,
  characterAccuracy: 0.93,
  baselineCharacterAccuracy: 0.94,
  characterAccuracyDelta: -0.01
}

describe("quality bar", () => {
  it("bounds each reported figure in the direction it gets better", () => {
    expect(boundOf("cosine", report)).toEqual({ figure: "cosine", kind: "min" })
    expect(boundOf("top1", report)).toEqual({ figure: "top1", kind: "min" })
    expect(boundOf("characterAccuracy", report)).toEqual({ figure: "characterAccuracy", kind: "min" })
    expect(boundOf("characterAccuracyDelta", report)).toEqual({ figure: "characterAccuracyDelta", kind: "min" })
    expect(boundOf("maxError", report)).toEqual({ figure: "maxError", kind: "max" })
    expect(boundOf("perplexity", report)).toEqual({ figure: "perplexity", kind: "max" })
    expect(boundOf("baselinePerplexity", report)).toEqual({ figure: "baselinePerplexity", kind: "max" })
    expect(boundOf("perplexityDelta", report)).toEqual({ figure: "perplexityDelta", kind: "max" })
    expect(boundOf("sizeRatio", report)).toEqual({ figure: "sizeRatio", kind: "max" })
  })

  it("min<Figure> and max<Figure> name the direction outright; unknown figures are not measured", () => {
    expect(boundOf("maxPerplexityDelta", report)).toEqual({ figure: "perplexityDelta", kind: "max" })
    expect(boundOf("minCosine", report)).toEqual({ figure: "cosine", kind: "min" })
    expect(boundOf("maxCharacterAccuracyDelta", report)).toEqual({ figure: "characterAccuracyDelta", kind: "max" })
    expect(boundOf("wordErrorRate", report)).toBeUndefined()
    expect(qualityBarMisses(report, { maxWordErrorRate: 0.1 })).toEqual(["maxWordErrorRate: not measured"])
  })

  it("lists each miss with the value and the limit it crossed", () => {
    expect(
      qualityBarMisses(report, { cosine: 0.99, maxError: 0.5, perplexityDelta: 0.5, characterAccuracyDelta: -0.02 })
    ).toEqual([])
    expect(
      qualityBarMisses(report, { cosine: 0.999, maxError: 0.1, maxPerplexityDelta: 0.05, characterAccuracyDelta: 0 })
    ).toEqual([
      "cosine 0.9950 < 0.999",
      "maxError 0.2000 > 0.1",
      "perplexityDelta 0.1000 > 0.05",
      "characterAccuracyDelta -0.0100 < 0"
    ])
    expect(qualityBarMisses({ ...report, cosine: Number.NaN }, { cosine: 0.9 })).toEqual(["cosine NaN < 0.9"])
  })
})
