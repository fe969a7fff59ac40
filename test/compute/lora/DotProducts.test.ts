/**
 * The executor's WebAssembly SIMD dot-product kernel: the bytes shipped are the assembly of the .wat
 * beside them, and its products equal the JavaScript loop's on every edge of the padding (rows, columns
 * and lengths that are not whole tiles, offsets into larger arrays, accumulation into Z).
 */
import { readFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import { outerProducts } from "../../../src/compute/lora/train/RowOperators.js"
import { simdAvailable, simdDotProducts, simdOuterProducts } from "../../../src/compute/lora/train/SimdDotProducts.js"
import { scalarDotProducts } from "../../../src/compute/lora/train/Tensor.js"
// @ts-expect-error: a plain JavaScript tool, without type declarations
import { assemble, modules, typescriptFor } from "../../../tools/assemble_wasm.mjs"

interface WasmSource {
  readonly source: string
  readonly target: string
  readonly name: string
}

const random = new SeededRandom(3)
const values = (length: number) => Float32Array.from({ length }, () => random.uniform() * 2 - 1)

describe("SIMD dot products", () => {
  it("ships the assembly of every .wat kernel", async () => {
    const sources = modules as ReadonlyArray<WasmSource>
    expect(sources.map((module) => module.source)).toContain("src/compute/lora/train/DotProducts.wat")
    for (const module of sources) {
      const bytes = await (assemble as (source: string) => Promise<Uint8Array>)(module.source)
      const text = (typescriptFor as (bytes: Uint8Array, module: WasmSource) => string)(bytes, module)
      expect(readFileSync(module.target, "utf8"), module.target).toBe(text)
    }
  })

  it("runs on this Node and equals the JavaScript loop, padding, offsets and accumulation included", () => {
    expect(simdAvailable()).toBe(true)
    for (const [m, q, len] of [[1, 1, 1], [2, 4, 4], [3, 5, 7], [17, 9, 33], [64, 48, 192], [5, 130, 3]] as const) {
      const x = values(3 + m * len)
      const y = values(5 + q * len)
      const start = values(2 + m * q)
      const simd = start.slice()
      const scalar = start.slice()
      expect(simdDotProducts(x, 3, y, 5, simd, 2, m, q, len)).toBe(true)
      scalarDotProducts(x, 3, y, 5, scalar, 2, m, q, len)
      expect(simd.slice(0, 2)).toEqual(start.slice(0, 2))
      for (let i = 0; i < scalar.length; i++) {
        expect(Math.abs(simd[i]! - scalar[i]!)).toBeLessThan(1e-5 * Math.sqrt(len) + 1e-6)
      }
      // A fresh, all-zero Z need not be copied in: the same products, and the floats around it untouched.
      const fresh = new Float32Array(4 + m * q).fill(0)
      fresh[0] = 7
      const expected = new Float32Array(m * q)
      scalarDotProducts(x, 3, y, 5, expected, 0, m, q, len)
      expect(simdDotProducts(x, 3, y, 5, fresh, 1, m, q, len, true)).toBe(true)
      expect(fresh[0]).toBe(7)
      for (let i = 0; i < m * q; i++) {
        expect(Math.abs(fresh[1 + i]! - expected[i]!)).toBeLessThan(1e-5 * Math.sqrt(len) + 1e-6)
      }
    }
  })

  it("sums outer products (LoRA factor gradients) as the JavaScript loop does, along either side", () => {
    for (const [m, k, n] of [[1, 1, 1], [5, 4, 6], [7, 13, 3], [33, 4, 192], [40, 192, 4], [9, 2, 2]] as const) {
      const a = values(2 + m * k)
      const g = values(3 + m * n)
      const start = values(1 + k * n)
      const simd = start.slice()
      const scalar = start.slice()
      expect(simdOuterProducts(a, 2, g, 3, simd, 1, m, k, n)).toBe(true)
      outerProducts(a, 2, g, 3, scalar, 1, m, k, n)
      expect(simd[0]).toBe(start[0])
      for (let i = 0; i < scalar.length; i++) {
        expect(Math.abs(simd[i]! - scalar[i]!), `[${m}, ${k}, ${n}] at ${i}`).toBeLessThan(1e-5 * Math.sqrt(m) + 1e-6)
      }
    }
  })
})
