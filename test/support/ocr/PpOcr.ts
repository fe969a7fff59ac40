/**
 * Pre- and post-processing of PaddleOCR's PP-OCRv4 text recognition model: a line image becomes the
 * model's [1, 3, 48, W] input, and its per-frame class scores [1, T, C] are read back with CTC decoding.
 */
import { readFileSync } from "node:fs"
import type { GrayImage } from "./Raster.js"

/** The recognition model's input height; its width is dynamic and the output has one frame per 8 columns. */
export const recognitionHeight = 48
export const recognitionWidthStep = 8

/**
 * The line resized to height 48 keeping its aspect ratio (bilinear), padded on the right to a multiple
 * of 8, replicated to 3 channels and normalized to [-1, 1] by (x/255 - 0.5)/0.5, as NCHW float32.
 * As in PaddleOCR, the padding is 0 after normalization.
 */
export const recognitionInput = (image: GrayImage): { data: Float32Array; dims: Array<number> } => {
  const height = recognitionHeight
  const resizedWidth = Math.max(1, Math.ceil((image.width * height) / image.height))
  const width = Math.ceil(resizedWidth / recognitionWidthStep) * recognitionWidthStep
  const resized = resizeBilinear(image, resizedWidth, height)
  const plane = width * height
  const data = new Float32Array(3 * plane)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < resizedWidth; x++) {
      const value = resized[y * resizedWidth + x]! / 127.5 - 1
      const offset = y * width + x
      data[offset] = value
      data[plane + offset] = value
      data[2 * plane + offset] = value
    }
  }
  return { data, dims: [1, 3, height, width] }
}

/** Bilinear resampling with pixel centres aligned (OpenCV's INTER_LINEAR convention), as float gray levels. */
export const resizeBilinear = (image: GrayImage, width: number, height: number): Float32Array => {
  const output = new Float32Array(width * height)
  const scaleX = image.width / width
  const scaleY = image.height / height
  for (let y = 0; y < height; y++) {
    const sourceY = Math.min(image.height - 1, Math.max(0, (y + 0.5) * scaleY - 0.5))
    const y0 = Math.floor(sourceY)
    const y1 = Math.min(image.height - 1, y0 + 1)
    const fy = sourceY - y0
    for (let x = 0; x < width; x++) {
      const sourceX = Math.min(image.width - 1, Math.max(0, (x + 0.5) * scaleX - 0.5))
      const x0 = Math.floor(sourceX)
      const x1 = Math.min(image.width - 1, x0 + 1)
      const fx = sourceX - x0
      const top = image.pixels[y0 * image.width + x0]! * (1 - fx) + image.pixels[y0 * image.width + x1]! * fx
      const bottom = image.pixels[y1 * image.width + x0]! * (1 - fx) + image.pixels[y1 * image.width + x1]! * fx
      output[y * width + x] = top * (1 - fy) + bottom * fy
    }
  }
  return output
}

/** Dictionary lines, in class order 1..n (class 0 is the CTC blank). */
export const parseDictionary = (text: string): Array<string> => {
  const lines = text.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line))
  if (lines.at(-1) === "") lines.pop()
  return lines
}

export const loadDictionary = (path: string): Array<string> => parseDictionary(readFileSync(path, "utf8"))

/**
 * The character of each class: blank, the dictionary, and, when the model has one class more than
 * that, a space (PaddleOCR's `use_space_char`, on for PP-OCRv4: 6623 dictionary lines, 6625 classes).
 */
export const classCharacters = (dictionary: ReadonlyArray<string>, classes: number): Array<string> => {
  if (classes === dictionary.length + 1) return ["", ...dictionary]
  if (classes === dictionary.length + 2) return ["", ...dictionary, " "]
  throw new Error(
    `The model has ${classes} classes; a dictionary of ${dictionary.length} lines needs ${dictionary.length + 1} or ${
      dictionary.length + 2
    }`
  )
}

export interface Recognition {
  readonly text: string
  /** Mean winning score of the emitted characters (0 for an empty line), as PaddleOCR reports it. */
  readonly confidence: number
}

/**
 * Greedy CTC decoding of scores [T, C] (batch 1): the best class per frame, repeats collapsed, blanks
 * dropped. PP-OCRv4's export ends in a softmax, so the scores are probabilities and the confidence is
 * in [0, 1]; argmax decoding is the same on raw logits.
 */
export const ctcDecode = (
  scores: Float32Array,
  frames: number,
  classes: number,
  dictionary: ReadonlyArray<string>
): Recognition => {
  if (scores.length < frames * classes) throw new Error(`Expected ${frames}×${classes} scores, got ${scores.length}`)
  const characters = classCharacters(dictionary, classes)
  let text = ""
  let total = 0
  let emitted = 0
  let previous = 0
  for (let t = 0; t < frames; t++) {
    const base = t * classes
    let best = 0
    for (let c = 1; c < classes; c++) if (scores[base + c]! > scores[base + best]!) best = c
    if (best !== 0 && best !== previous) {
      text += characters[best]!
      total += scores[base + best]!
      emitted++
    }
    previous = best
  }
  return { text, confidence: emitted === 0 ? 0 : total / emitted }
}
