/**
 * Renders one line of text to a grayscale image (black on white) for the OCR quality harness: opentype.js
 * parses the font and lays the glyphs out with kerning; the outlines are rasterized here.
 *
 * The fonts we render with come from the `dejavu-fonts-ttf` package (DejaVu Sans by default). Their licence
 * (node_modules/dejavu-fonts-ttf/LICENSE) is the Bitstream Vera licence plus public-domain DejaVu changes:
 * free to use, copy and redistribute; only modified fonts must be renamed. We never modify or ship them.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"

/** One drawing command of an opentype.js path, in pixel coordinates (y grows downwards). */
export type PathCommand =
  | { readonly type: "M" | "L"; readonly x: number; readonly y: number }
  | { readonly type: "Q"; readonly x1: number; readonly y1: number; readonly x: number; readonly y: number }
  | {
    readonly type: "C"
    readonly x1: number
    readonly y1: number
    readonly x2: number
    readonly y2: number
    readonly x: number
    readonly y: number
  }
  | { readonly type: "Z" }

/** A glyph outline positioned by opentype.js. */
export interface Glyph {
  readonly index: number
  /** In font units; absent for some empty glyphs. */
  readonly advanceWidth?: number
  getPath(x: number, y: number, fontSize: number): { readonly commands: ReadonlyArray<PathCommand> }
}

/** The part of opentype.js's `Font` this module relies on (opentype.js 2 ships no type declarations). */
export interface Font {
  readonly unitsPerEm: number
  readonly ascender: number
  readonly descender: number
  charToGlyph(character: string): Glyph
  /** Pair adjustment in font units from the GPOS 'DFLT' script's kerning, else the legacy 'kern' table. */
  getKerningValue(left: Glyph, right: Glyph): number
  readonly position: {
    /** The GPOS pair-adjustment lookups of a script's 'kern' feature (none without a GPOS table). */
    getKerningTables(script: string): ReadonlyArray<unknown> | undefined
    getKerningValue(tables: ReadonlyArray<unknown>, leftIndex: number, rightIndex: number): number
  }
}

interface OpenType {
  parse(buffer: ArrayBuffer): Font
}

// The package's `main` is a UMD build and its ESM build has no default export, so a plain `import`
// resolves differently under Node and bundlers; loading the CommonJS build explicitly is unambiguous.
let openType: OpenType | undefined
const loadOpenType = (): OpenType => (openType ??= createRequire(import.meta.url)("opentype.js") as OpenType)

/** A grayscale image, row-major [height, width], 0 = black, 255 = white. */
export interface GrayImage {
  readonly width: number
  readonly height: number
  readonly pixels: Uint8Array
}

export const parseFont = (bytes: Uint8Array): Font => {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
  return loadOpenType().parse(buffer)
}

export const loadFont = (path: string): Font => parseFont(readFileSync(path))

// ---------------------------------------------------------------------------------------------------
// Outline flattening

/** Closed polygons (x0, y0, x1, y1, ... per contour) approximating a path to within `tolerance` pixels. */
export const flattenPath = (commands: ReadonlyArray<PathCommand>, tolerance = 0.05): Array<Array<number>> => {
  const contours: Array<Array<number>> = []
  let contour: Array<number> = []
  let x = 0
  let y = 0
  const finish = () => {
    if (contour.length >= 6) contours.push(contour)
    contour = []
  }
  for (const command of commands) {
    switch (command.type) {
      case "M":
        finish()
        x = command.x
        y = command.y
        contour.push(x, y)
        break
      case "L":
        if (contour.length === 0) contour.push(x, y)
        x = command.x
        y = command.y
        contour.push(x, y)
        break
      case "Q": {
        if (contour.length === 0) contour.push(x, y)
        // Uniform steps: a quadratic's chord error over a parameter step h is |p0 - 2p1 + p2| h² / 4.
        const bend = Math.hypot(x - 2 * command.x1 + command.x, y - 2 * command.y1 + command.y)
        const steps = segmentCount(bend / 4, tolerance)
        for (let i = 1; i <= steps; i++) {
          const t = i / steps
          const u = 1 - t
          contour.push(
            u * u * x + 2 * u * t * command.x1 + t * t * command.x,
            u * u * y + 2 * u * t * command.y1 + t * t * command.y
          )
        }
        x = command.x
        y = command.y
        break
      }
      case "C": {
        if (contour.length === 0) contour.push(x, y)
        // A cubic's second derivative is bounded by 6·max second difference, so the error is ≤ 3M h² / 4.
        const bend = Math.max(
          Math.hypot(x - 2 * command.x1 + command.x2, y - 2 * command.y1 + command.y2),
          Math.hypot(command.x1 - 2 * command.x2 + command.x, command.y1 - 2 * command.y2 + command.y)
        )
        const steps = segmentCount((3 * bend) / 4, tolerance)
        for (let i = 1; i <= steps; i++) {
          const t = i / steps
          const u = 1 - t
          contour.push(
            u * u * u * x + 3 * u * u * t * command.x1 + 3 * u * t * t * command.x2 + t * t * t * command.x,
            u * u * u * y + 3 * u * u * t * command.y1 + 3 * u * t * t * command.y2 + t * t * t * command.y
          )
        }
        x = command.x
        y = command.y
        break
      }
      case "Z": {
        // The next command starts from the contour's first point.
        if (contour.length >= 2) {
          x = contour[0]!
          y = contour[1]!
        }
        finish()
        break
      }
    }
  }
  finish()
  return contours
}

const segmentCount = (errorAtUnitStep: number, tolerance: number) =>
  Math.min(64, Math.max(1, Math.ceil(Math.sqrt(errorAtUnitStep / tolerance))))

// ---------------------------------------------------------------------------------------------------
// Scanline fill

/**
 * Coverage in [0, 1] of each pixel of a [height, width] grid by the polygons, filled with the non-zero
 * winding rule. Each pixel row is sampled on `subScanlines` horizontal lines; along a line, coverage of
 * the filled spans is exact, so edges are anti-aliased in both directions.
 */
export const fillPolygons = (
  contours: ReadonlyArray<ReadonlyArray<number>>,
  width: number,
  height: number,
  subScanlines = 16
): Float32Array => {
  const coverage = new Float32Array(width * height)
  // Edges bucketed by the pixel rows they span: [x0, y0, x1, y1, direction] flattened.
  const rows: Array<Array<number>> = Array.from({ length: height }, () => [])
  for (const points of contours) {
    const count = points.length / 2
    for (let i = 0; i < count; i++) {
      const j = (i + 1) % count
      const x0 = points[2 * i]!
      const y0 = points[2 * i + 1]!
      const x1 = points[2 * j]!
      const y1 = points[2 * j + 1]!
      if (y0 === y1) continue
      const top = Math.max(0, Math.floor(Math.min(y0, y1)))
      const bottom = Math.min(height - 1, Math.ceil(Math.max(y0, y1)) - 1)
      for (let row = top; row <= bottom; row++) rows[row]!.push(x0, y0, x1, y1, y1 > y0 ? 1 : -1)
    }
  }
  const crossings: Array<{ x: number; direction: number }> = []
  const weight = 1 / subScanlines
  for (let row = 0; row < height; row++) {
    const edges = rows[row]!
    if (edges.length === 0) continue
    const base = row * width
    for (let sub = 0; sub < subScanlines; sub++) {
      const y = row + (sub + 0.5) * weight
      crossings.length = 0
      for (let e = 0; e < edges.length; e += 5) {
        const y0 = edges[e + 1]!
        const y1 = edges[e + 3]!
        // Half-open in y so a vertex shared by two edges is counted once.
        if (y < Math.min(y0, y1) || y >= Math.max(y0, y1)) continue
        const x0 = edges[e]!
        const x1 = edges[e + 2]!
        crossings.push({ x: x0 + ((y - y0) * (x1 - x0)) / (y1 - y0), direction: edges[e + 4]! })
      }
      crossings.sort((a, b) => a.x - b.x)
      let winding = 0
      let spanStart = 0
      for (const crossing of crossings) {
        const before = winding
        winding += crossing.direction
        if (before === 0 && winding !== 0) spanStart = crossing.x
        else if (before !== 0 && winding === 0) addSpan(coverage, base, width, spanStart, crossing.x, weight)
      }
    }
  }
  for (let i = 0; i < coverage.length; i++) coverage[i] = Math.min(1, coverage[i]!)
  return coverage
}

const addSpan = (coverage: Float32Array, base: number, width: number, from: number, to: number, weight: number) => {
  const left = Math.max(0, from)
  const right = Math.min(width, to)
  if (right <= left) return
  const first = Math.floor(left)
  const last = Math.floor(right)
  if (first === last) {
    coverage[base + first] = coverage[base + first]! + (right - left) * weight
    return
  }
  coverage[base + first] = coverage[base + first]! + (first + 1 - left) * weight
  for (let i = first + 1; i < last; i++) coverage[base + i] = coverage[base + i]! + weight
  if (last < width) coverage[base + last] = coverage[base + last]! + (right - last) * weight
}

/** Ink coverage as black-on-white gray levels. */
export const coverageToGray = (coverage: Float32Array, width: number, height: number): GrayImage => {
  const pixels = new Uint8Array(width * height)
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.round(255 * (1 - coverage[i]!))
  return { width, height, pixels }
}

export const rasterizePath = (
  commands: ReadonlyArray<PathCommand>,
  width: number,
  height: number,
  subScanlines = 16
): GrayImage => coverageToGray(fillPolygons(flattenPath(commands), width, height, subScanlines), width, height)

// ---------------------------------------------------------------------------------------------------
// Text lines

export interface RenderOptions {
  /** Image height in pixels. */
  readonly height: number
  /**
   * White margin left and right of the ink, in pixels (default: a twelfth of the height). PP-OCRv4 reads
   * wider margins as a leading or trailing space: 4 px at height 48 keeps it off, 8 px does not.
   */
  readonly padding?: number
  /** Em size in pixels (default: 0.7 of the height, so ascenders and descenders fit with a margin). */
  readonly fontSize?: number
  /** Vertical sub-samples per pixel row (default 16). */
  readonly subScanlines?: number
}

/** Renders `text` on one line, vertically centred on the font's ascender–descender range. */
export const renderLine = (font: Font, text: string, options: RenderOptions): GrayImage => {
  const height = options.height
  const fontSize = options.fontSize ?? Math.round(0.7 * height)
  const padding = options.padding ?? Math.round(height / 12)
  const scale = fontSize / font.unitsPerEm
  const ascent = font.ascender * scale
  const descent = -font.descender * scale
  const baseline = (height - ascent - descent) / 2 + ascent

  // One glyph per code point, laid out by advance width plus pair kerning. opentype.js 2.0's own
  // shaping (`stringToGlyphs`, `getPath`) throws on DejaVu's 'ccmp' lookups (chained context
  // substitution format 2), and Latin text needs no substitution to be read. Kerning is looked up under
  // the 'latn' script: DejaVu keeps its Latin pairs there, and the 'DFLT' tables that
  // `font.getKerningValue` consults give 0 for pairs such as "AV".
  const latinKerning = font.position.getKerningTables("latn")
  const kerning = (left: Glyph, right: Glyph) =>
    latinKerning !== undefined && latinKerning.length > 0
      ? font.position.getKerningValue(latinKerning, left.index, right.index)
      : font.getKerningValue(left, right)
  const contours: Array<Array<number>> = []
  let pen = 0
  let previous: Glyph | undefined
  for (const character of text) {
    const glyph = font.charToGlyph(character)
    if (previous !== undefined) pen += kerning(previous, glyph) * scale
    for (const item of flattenPath(glyph.getPath(pen, baseline, fontSize).commands)) contours.push(item)
    pen += (glyph.advanceWidth ?? 0) * scale
    previous = glyph
  }
  // Ink may reach left of the pen origin or past the last advance (overhangs, 'j'): keep all of it.
  let inkLeft = 0
  let inkRight = pen
  for (const points of contours) {
    for (let i = 0; i < points.length; i += 2) {
      inkLeft = Math.min(inkLeft, points[i]!)
      inkRight = Math.max(inkRight, points[i]!)
    }
  }
  const shift = padding - Math.floor(inkLeft)
  const width = Math.max(1, Math.ceil(inkRight) + shift + padding)
  for (const points of contours) for (let i = 0; i < points.length; i += 2) points[i] = points[i]! + shift
  return coverageToGray(fillPolygons(contours, width, height, options.subScanlines), width, height)
}
