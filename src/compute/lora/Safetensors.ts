/**
 * The safetensors format, read and written exactly as the reference library does: an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte range in the
 * data section (plus optional `__metadata__` strings), padded with spaces to 8 bytes, then the data.
 *
 * Float tensors only: F32 and F16 are read and written, BF16 is read; values come out as Float32Array.
 * As the reference reader does, a file is refused unless its tensors tile the data section exactly
 * (no overlap, no gap, nothing past the end), each range holding exactly dtype size × element count.
 */
import { Data } from "effect"
import { float16ToFloat32, float32ToFloat16 } from "../onnx/Tensors.js"

export type SafetensorsDtype = "F32" | "F16" | "BF16"

export interface SafetensorsTensor {
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  /** The values, row-major, converted to float32. */
  readonly data: Float32Array
}

export interface SafetensorsFile {
  /** In the order of their data offsets. */
  readonly tensors: ReadonlyMap<string, SafetensorsTensor>
  readonly metadata: Readonly<Record<string, string>>
}

/** What `writeSafetensors` stores: float32 values, kept as F32 or rounded to F16. */
export interface TensorToWrite {
  readonly dtype: "F32" | "F16"
  readonly shape: ReadonlyArray<number>
  readonly data: Float32Array
}

export class SafetensorsError extends Data.TaggedError("SafetensorsError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const widths: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 }

// The reference library refuses headers past 100 MB before parsing them.
const maxHeaderBytes = 100_000_000

const fail = (reason: string): never => {
  throw new SafetensorsError({ reason: `not a valid safetensors file: ${reason}` })
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const isSize = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const decode = (dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array => {
  // Copy into a fresh, aligned buffer: the values must not alias the file's bytes.
  const copy = bytes.slice()
  if (dtype === "F32") return new Float32Array(copy.buffer, 0, copy.length / 4)
  const halves = new Uint16Array(copy.buffer, 0, copy.length / 2)
  if (dtype === "F16") return float16ToFloat32(halves)
  const words = new Uint32Array(halves.length)
  for (let i = 0; i < halves.length; i++) words[i] = halves[i]! << 16
  return new Float32Array(words.buffer)
}

interface Entry {
  readonly name: string
  readonly dtype: SafetensorsDtype
  readonly shape: ReadonlyArray<number>
  readonly begin: number
  readonly end: number
}

const parseEntry = (name: string, value: unknown): Entry => {
  if (!isRecord(value)) return fail(`tensor "${name}" is not described by an object`)
  const { dtype, shape, data_offsets: offsets } = value
  if (typeof dtype !== "string") return fail(`tensor "${name}" has no dtype`)
  if (!(dtype in widths)) {
    return fail(`tensor "${name}" has dtype ${JSON.stringify(dtype)}; this reader takes F32, F16 and BF16`)
  }
  if (!Array.isArray(shape) || !shape.every(isSize)) {
    return fail(`tensor "${name}" has shape ${JSON.stringify(shape)}, not a list of sizes`)
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isSize)) {
    return fail(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, not [begin, end]`)
  }
  const [begin, end] = offsets as [number, number]
  if (end < begin) return fail(`tensor "${name}" ends (${end}) before it begins (${begin})`)
  const expected = (shape as Array<number>).reduce((count, dim) => count * dim, 1) * widths[dtype as SafetensorsDtype]
  if (end - begin !== expected) {
    return fail(
      `tensor "${name}" (${dtype} [${shape.join(", ")}]) needs ${expected} bytes, its data_offsets give ${end - begin}`
    )
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as Array<number>, begin, end }
}

/** Parses a whole safetensors file; throws SafetensorsError (one line) on anything malformed. */
export const readSafetensors = (bytes: Uint8Array): SafetensorsFile => {
  if (bytes.length < 8) return fail(`${bytes.length} bytes, shorter than the 8-byte header length`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const declared = view.getBigUint64(0, true)
  if (declared > BigInt(maxHeaderBytes)) return fail(`the header claims ${declared} bytes (at most ${maxHeaderBytes})`)
  const headerLength = Number(declared)
  if (8 + headerLength > bytes.length) {
    return fail(`the header claims ${headerLength} bytes but only ${bytes.length - 8} follow (truncated?)`)
  }
  let header: unknown
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength))
    if (!text.startsWith("{")) return fail("the header does not start with {")
    header = JSON.parse(text)
  } catch (cause) {
    if (cause instanceof SafetensorsError) throw cause
    return fail(`the header is not UTF-8 JSON (${cause instanceof Error ? cause.message : String(cause)})`)
  }
  if (!isRecord(header)) return fail("the header is not a JSON object")
  const metadata: Record<string, string> = Object.create(null)
  const entries: Array<Entry> = []
  for (const [name, value] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isRecord(value)) return fail("__metadata__ is not an object")
      for (const [key, text] of Object.entries(value)) {
        if (typeof text !== "string") return fail(`__metadata__.${key} is not a string`)
        metadata[key] = text
      }
    } else entries.push(parseEntry(name, value))
  }
  const dataStart = 8 + headerLength
  const dataLength = bytes.length - dataStart
  entries.sort((left, right) => left.begin - right.begin || left.end - right.end)
  let covered = 0
  let previous: Entry | undefined
  for (const entry of entries) {
    if (entry.begin < covered) {
      return fail(`tensors "${previous!.name}" and "${entry.name}" overlap (bytes ${entry.begin}..${covered})`)
    }
    if (entry.begin > covered) return fail(`bytes ${covered}..${entry.begin} of the data section belong to no tensor`)
    if (entry.end > dataLength) {
      return fail(`tensor "${entry.name}" ends at byte ${entry.end} of a ${dataLength}-byte data section (truncated?)`)
    }
    covered = entry.end
    previous = entry
  }
  if (covered !== dataLength) return fail(`the data section has ${dataLength} bytes but its tensors cover ${covered}`)
  const tensors = new Map<string, SafetensorsTensor>()
  for (const { name, dtype, shape, begin, end } of entries) {
    tensors.set(name, { dtype, shape, data: decode(dtype, bytes.subarray(dataStart + begin, dataStart + end)) })
  }
  return { tensors, metadata }
}

const encode = (tensor: TensorToWrite): Uint8Array => {
  const typed = tensor.dtype === "F32" ? tensor.data : float32ToFloat16(tensor.data)
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength)
}

/** A safetensors file holding `tensors` in the order given, with optional `__metadata__`. */
export const writeSafetensors = (
  tensors: Iterable<readonly [string, TensorToWrite]>,
  metadata: Readonly<Record<string, string>> = {}
): Uint8Array => {
  // No prototype: a tensor named "__proto__" or "toString" is just a name.
  const header: Record<string, unknown> = Object.create(null)
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata
  const chunks: Array<Uint8Array> = []
  let offset = 0
  for (const [name, tensor] of tensors) {
    if (name === "__metadata__") throw new SafetensorsError({ reason: "a tensor cannot be named __metadata__" })
    if (Object.hasOwn(header, name)) throw new SafetensorsError({ reason: `cannot write two tensors named "${name}"` })
    const count = tensor.shape.reduce((product, dim) => product * dim, 1)
    if (!tensor.shape.every(isSize) || count !== tensor.data.length) {
      throw new SafetensorsError({
        reason: `tensor "${name}": ${tensor.data.length} values for shape [${tensor.shape.join(", ")}]`
      })
    }
    const bytes = encode(tensor)
    header[name] = { dtype: tensor.dtype, shape: [...tensor.shape], data_offsets: [offset, offset + bytes.length] }
    chunks.push(bytes)
    offset += bytes.length
  }
  const json = new TextEncoder().encode(JSON.stringify(header))
  const headerLength = Math.ceil(json.length / 8) * 8
  const file = new Uint8Array(8 + headerLength + offset)
  new DataView(file.buffer).setBigUint64(0, BigInt(headerLength), true)
  file.set(json, 8)
  file.fill(0x20, 8 + json.length, 8 + headerLength)
  let at = 8 + headerLength
  for (const chunk of chunks) {
    file.set(chunk, at)
    at += chunk.length
  }
  return file
}
