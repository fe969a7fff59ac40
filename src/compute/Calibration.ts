/**
 * Calibration data for quantization: the seed's JSONL (`{"text": ...}` per line) for text models, or
 * tensors in NumPy's `.npy` format (what PyTorch and ONNX tooling write) for any model input.
 */
import { Data, Either, ParseResult, Schema } from "effect"

export class CalibrationError
  extends Data.TaggedError("CalibrationError")<{ readonly source: string; readonly reason: string }>
{
  override get message() {
    return `${this.source}: ${this.reason}`
  }
}

const decodeCalibrationLine = Schema.decodeUnknownEither(Schema.parseJson(Schema.Struct({ text: Schema.String })))

/** The texts of a JSONL file; a bad line is an error naming its number. Blank lines are skipped. */
export const parseCalibrationJsonl = (text: string, source = "calibration data"): Array<string> => {
  const texts: Array<string> = []
  const lines = text.split(/\r?\n/)
  for (const [index, line] of lines.entries()) {
    if (line.trim() === "") continue
    const decoded = decodeCalibrationLine(line)
    if (Either.isLeft(decoded)) {
      // A line that parses as JSON but has no text string is a shape problem; anything else is not JSON.
      const reason = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]?.path.length === 0 && !isJson(line)
        ? "not JSON"
        : "expected {\"text\": \"...\"}"
      throw new CalibrationError({ source: `${source}:${index + 1}`, reason })
    }
    texts.push(decoded.right.text)
  }
  if (texts.length === 0) throw new CalibrationError({ source, reason: "no samples" })
  return texts
}

const isJson = (line: string): boolean => Either.isRight(decodeJsonValue(line))
const decodeJsonValue = Schema.decodeUnknownEither(Schema.parseJson())

export type NpyData = Float32Array | Float64Array | Int32Array | BigInt64Array | Int8Array | Uint8Array

export interface NpyTensor {
  readonly dtype: "float32" | "float64" | "int32" | "int64" | "int8" | "uint8"
  readonly shape: ReadonlyArray<number>
  readonly data: NpyData
}

const DTYPES: Record<string, NpyTensor["dtype"]> = {
  "<f4": "float32",
  "<f8": "float64",
  "<i4": "int32",
  "<i8": "int64",
  "|i1": "int8",
  "|u1": "uint8"
}

/** Reads a little-endian, C-ordered `.npy` array (format versions 1 to 3). */
export const parseNpy = (bytes: Uint8Array, source = "tensor file"): NpyTensor => {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]
  if (bytes.length < 10 || magic.some((byte, i) => bytes[i] !== byte)) {
    throw new CalibrationError({ source, reason: "not a .npy file" })
  }
  const major = bytes[6]!
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true)
  const headerStart = major === 1 ? 10 : 12
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(headerStart, headerStart + headerLength)
  )
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1]
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1]
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1]
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new CalibrationError({ source, reason: "malformed .npy header" })
  }
  const dtype = DTYPES[descr]
  if (dtype === undefined) {
    throw new CalibrationError({
      source,
      reason: `unsupported dtype ${descr} (float32, float64, int32, int64, int8, uint8)`
    })
  }
  if (fortran === "True") {
    throw new CalibrationError({
      source,
      reason: "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)"
    })
  }
  const shape = shapeText.split(",").map((part) => part.trim()).filter((part) => part !== "").map(Number)
  const count = shape.reduce((product, dim) => product * dim, 1)
  const offset = headerStart + headerLength
  const width = { float32: 4, float64: 8, int32: 4, int64: 8, int8: 1, uint8: 1 }[dtype]
  if (bytes.length - offset < count * width) {
    throw new CalibrationError({ source, reason: `truncated: ${count} values need ${count * width} bytes` })
  }
  const body = bytes.slice(offset, offset + count * width).buffer
  const data: NpyData = {
    float32: () => new Float32Array(body),
    float64: () => new Float64Array(body),
    int32: () => new Int32Array(body),
    int64: () => new BigInt64Array(body),
    int8: () => new Int8Array(body),
    uint8: () => new Uint8Array(body)
  }[dtype]()
  return { dtype, shape, data }
}

/** Writes a `.npy` (version 1) for tensors our tools save, e.g. captured activations. */
export const writeNpy = (tensor: NpyTensor): Uint8Array => {
  const descr = Object.entries(DTYPES).find(([, name]) => name === tensor.dtype)![0]
  const shape = tensor.shape.length === 1 ? `(${tensor.shape[0]},)` : `(${tensor.shape.join(", ")})`
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`
  const total = 10 + header.length + 1
  header += " ".repeat((64 - (total % 64)) % 64) + "\n"
  const body = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)
  const out = new Uint8Array(10 + header.length + body.length)
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0])
  new DataView(out.buffer).setUint16(8, header.length, true)
  out.set(new TextEncoder().encode(header), 10)
  out.set(body, 10 + header.length)
  return out
}
