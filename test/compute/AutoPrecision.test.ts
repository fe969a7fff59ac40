import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import type { LayerSensitivity } from "../../src/compute/quantize/AutoPrecision.js"
import { assignPrecision, layerBytes } from "../../src/compute/quantize/AutoPrecision.js"

const layer = (name: string, parameters: number, d4: number, d8: number, d16 = d8 / 100): LayerSensitivity => ({
  layer: name,
  parameters,
  damage: { 4: d4, 8: d8, 16: d16 }
})

const layers = fc.array(
  fc.record({
    parameters: fc.integer({ min: 64, max: 100_000 }),
    d4: fc.double({ min: 0, max: 1, noNaN: true }),
    d8: fc.double({ min: 0, max: 1, noNaN: true })
  }),
  { minLength: 1, maxLength: 12 }
).map((specs) =>
  specs.map((spec, i) => layer(`layer${i}`, spec.parameters, Math.max(spec.d4, spec.d8), Math.min(spec.d4, spec.d8)))
)

const cheapest = (all: ReadonlyArray<LayerSensitivity>) => all.reduce((sum, l) => sum + layerBytes(l.parameters, 4), 0)
const widest = (all: ReadonlyArray<LayerSensitivity>) => all.reduce((sum, l) => sum + layerBytes(l.parameters, 32), 0)

describe("automatic precision", () => {
  it("gives the sensitive layer the bits when only one layer can have them", () => {
    const result = assignPrecision(
      [layer("robust", 10_000, 0.001, 0.0001), layer("fragile", 10_000, 0.5, 0.01)],
      layerBytes(10_000, 4) + layerBytes(10_000, 8)
    )
    expect(result.bits).toEqual({ robust: 4, fragile: 8 })
    expect(result.fits).toBe(true)
  })

  it("stays within any budget the smallest assignment fits, and more budget never adds damage", () => {
    fc.assert(
      fc.property(
        layers,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (all, a, b) => {
          const low = cheapest(all)
          const span = widest(all) - low
          const [small, large] = [low + Math.min(a, b) * span, low + Math.max(a, b) * span]
          const tight = assignPrecision(all, small)
          const loose = assignPrecision(all, large)
          expect(tight.bytes).toBeLessThanOrEqual(small)
          expect(loose.bytes).toBeLessThanOrEqual(large)
          expect(loose.damage).toBeLessThanOrEqual(tight.damage + 1e-12)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("keeps everything FP32 when the budget allows it, and reports a budget nothing fits", () => {
    const all = [layer("a", 1000, 0.2, 0.1), layer("b", 3000, 0.3, 0.05)]
    expect(assignPrecision(all, widest(all)).bits).toEqual({ a: 32, b: 32 })
    const impossible = assignPrecision(all, cheapest(all) - 1)
    expect(impossible.fits).toBe(false)
    expect(impossible.bits).toEqual({ a: 4, b: 4 })
  })
})
