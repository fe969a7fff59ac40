/**
 * The safetensors format, read and written exactly as the reference library does: an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte range in the
 * data section (plus optional `__metadata__` strings), padded with spaces to 8 bytes, then the data.
 *
 * Float tensors only: F32 and F16 are read and written, BF16 is read; values come out as Float32Array.
 * As the reference reader does, a file is refused unless its tensors tile the data section exactly
 * (no overlap, no gap, nothing past the end), each range holding exactly dtype size × element count.
 */
import { Data, Either, ParseResult, Schema } from "effect"
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

const isSize = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0

const show = (value: unknown) => JSON.stringify(value) ?? String(value)

const Size = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

// Each field names what it found in its own words, so an error reads `tensor "a" has shape [-2], ...`.
const named = <A, I>(schema: Schema.Schema<A, I>, missing: string, found: (actual: unknown) => string) =>
  Schema.propertySignature(
    schema.annotations({ message: (issue) => ({ message: found(issue.actual), override: true }) })
  ).annotations({ missingMessage: () => missing })

/** One tensor's entry in the header: only what the reader uses; other members are ignored, as the reference does. */
const TensorInfo = Schema.Struct({
  dtype: named(
    Schema.Literal("F32", "F16", "BF16"),
    "has no dtype",
    (actual) => `has dtype ${show(actual)}; this reader takes F32, F16 and BF16`
  ),
  shape: named(Schema.Array(Size), "has no shape", (actual) => `has shape ${show(actual)}, not a list of sizes`),
  data_offsets: named(
    Schema.Tuple(Size, Size),
    "has no data_offsets",
    (actual) => `has data_offsets ${show(actual)}, not [begin, end]`
  )
}).annotations({ message: () => "is not described by an object" })

/** `__metadata__`: string values only, as the reference library requires. */
const Metadata = Schema.Record({
  key: Schema.String,
  value: Schema.String.annotations({ message: () => "is not a string" })
}).annotations({ message: () => "is not an object" })

// The header is decoded member by member rather than as one Record: a Record builds its output by
// assignment, and a tensor named "__proto__" would become that object's prototype instead of a tensor.
const decodeHeader = Schema.decodeUnknownEither(Schema.parseJson(Schema.Object))
const decodeTensorInfo = Schema.decodeUnknownEither(TensorInfo)
const decodeMetadata = Schema.decodeUnknownEither(Metadata)

/** The first thing wrong, with the path below the member (`.version` for `__metadata__.version`). */
const firstIssue = (error: ParseResult.ParseError) => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issue === undefined) return { below: "", message: error.message }
  return { below: issue.path.map((key) => `.${String(key)}`).join(""), message: issue.message.replace(/\s+/g, " ") }
}

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
  const decoded = decodeTensorInfo(value)
  if (Either.isLeft(decoded)) return fail(`tensor "${name}" ${firstIssue(decoded.left).message}`)
  const { dtype, shape, data_offsets: [begin, end] } = decoded.right
  if (end < begin) return fail(`tensor "${name}" ends (${end}) before it begins (${begin})`)
  const expected = shape.reduce((count, dim) => count * dim, 1) * widths[dtype]
  if (end - begin !== expected) {
    return fail(
      `tensor "${name}" (${dtype} [${shape.join(", ")}]) needs ${expected} bytes, its data_offsets give ${end - begin}`
    )
  }
  return { name, dtype, shape, begin, end }
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
  let text: string
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength))
  } catch (cause) {
    return fail(`the header is not UTF-8 JSON (${cause instanceof Error ? cause.message : String(cause)})`)
  }
  if (!text.startsWith("{")) return fail("the header does not start with {")
  const header = decodeHeader(text)
  if (Either.isLeft(header)) return fail(`the header is not UTF-8 JSON (${firstIssue(header.left).message})`)
  const metadata: Record<string, string> = Object.create(null)
  const entries: Array<Entry> = []
  for (const [name, value] of Object.entries(header.right)) {
    if (name === "__metadata__") {
      const decoded = decodeMetadata(value)
      if (Either.isLeft(decoded)) {
        const { below, message } = firstIssue(decoded.left)
        return fail(`__metadata__${below} ${message}`)
      }
      Object.assign(metadata, decoded.right)
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
