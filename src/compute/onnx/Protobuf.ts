/**
 * The protobuf wire format, as much of it as ONNX needs: a reader over one Uint8Array that hands out
 * byte fields as subarrays (tensor data is never copied), and a two-pass writer into one buffer.
 */
import { Data } from "effect"

export const WireType = { Varint: 0, Fixed64: 1, LengthDelimited: 2, Fixed32: 5 } as const

/** Bytes that are not valid protobuf: `truncated` when a field runs past the end of the buffer. */
export class ProtobufError extends Data.TaggedError("ProtobufError")<{
  readonly kind: "truncated" | "malformed"
  readonly offset: number
  readonly detail: string
}> {
  override get message() {
    return `${this.kind} protobuf at byte ${this.offset}: ${this.detail}`
  }
}

const TWO_32 = 4294967296
const utf8 = new TextDecoder("utf-8")
const utf8Encoder = new TextEncoder()
// Typed-array views reinterpret bytes in host order; protobuf is little-endian, and so are the hosts we run on.
const scratch = new DataView(new ArrayBuffer(8))

/**
 * A cursor over a message. `limit` is the end of the message being read: length-delimited fields
 * may not cross it, and `enter`/`leave` move it in and out of nested messages without allocating.
 */
export class ProtoReader {
  pos: number
  limit: number
  private lo = 0
  private hi = 0
  // Where the field whose tag `tag()` read last begins.
  private fieldStart = 0

  constructor(readonly bytes: Uint8Array, start = 0, end = bytes.length) {
    this.pos = start
    this.limit = end
  }

  private fail(kind: "truncated" | "malformed", detail: string, offset = this.pos): never {
    throw new ProtobufError({ kind, offset, detail })
  }

  private need(count: number): void {
    if (this.pos + count > this.limit) {
      this.fail(
        this.limit === this.bytes.length ? "truncated" : "malformed",
        `${count} bytes needed, ${this.limit - this.pos} left`
      )
    }
  }

  /** Reads a varint of up to 10 bytes into `lo`/`hi` (the two 32-bit halves). */
  private varintParts(): void {
    const bytes = this.bytes
    const limit = this.limit
    let pos = this.pos
    let lo = 0
    let b = 0
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= limit) this.fail(limit === bytes.length ? "truncated" : "malformed", "varint runs past the end", pos)
      b = bytes[pos++]!
      lo |= (b & 0x7f) << shift
      if (b < 0x80) {
        this.pos = pos
        this.lo = lo >>> 0
        this.hi = 0
        return
      }
    }
    if (pos >= limit) this.fail(limit === bytes.length ? "truncated" : "malformed", "varint runs past the end", pos)
    b = bytes[pos++]!
    lo |= (b & 0x7f) << 28
    let hi = (b & 0x7f) >> 4
    if (b >= 0x80) {
      for (let shift = 3;; shift += 7) {
        if (shift > 31) this.fail("malformed", "varint longer than 10 bytes", pos)
        if (pos >= limit) this.fail(limit === bytes.length ? "truncated" : "malformed", "varint runs past the end", pos)
        b = bytes[pos++]!
        hi |= (b & 0x7f) << shift
        if (b < 0x80) break
      }
    }
    this.pos = pos
    this.lo = lo >>> 0
    this.hi = hi >>> 0
  }

  /** The next field's tag (field number × 8 + wire type), remembering where the field begins. */
  tag(): number {
    this.fieldStart = this.pos
    return this.uint32()
  }

  /**
   * The field whose tag `tag()` just read, whole (tag and value) as a view, the reader past it: how a
   * decoder keeps a field it does not model byte for byte. Reading the tag again costs only such fields.
   */
  rawField(): Uint8Array {
    const start = this.fieldStart
    this.pos = start
    this.skip(this.uint32() & 7)
    return this.bytes.subarray(start, this.pos)
  }

  /** An unsigned varint below 2^32 (tags, lengths, enums). */
  uint32(): number {
    const b = this.bytes[this.pos]
    if (b !== undefined && b < 0x80 && this.pos < this.limit) {
      this.pos++
      return b
    }
    const start = this.pos
    this.varintParts()
    if (this.hi !== 0) this.fail("malformed", "varint exceeds 32 bits", start)
    return this.lo
  }

  /** An int32 field (negative values are sign-extended to 10 bytes on the wire). */
  int32(): number {
    this.varintParts()
    return this.lo | 0
  }

  /** An int64 field as a number; fails when the value is not a safe integer. */
  int64Number(): number {
    const start = this.pos
    this.varintParts()
    const value = (this.hi | 0) * TWO_32 + this.lo
    if (!Number.isSafeInteger(value)) this.fail("malformed", "int64 value beyond 2^53", start)
    return value
  }

  int64(): bigint {
    this.varintParts()
    return BigInt.asIntN(64, (BigInt(this.hi) << 32n) | BigInt(this.lo))
  }

  uint64(): bigint {
    this.varintParts()
    return (BigInt(this.hi) << 32n) | BigInt(this.lo)
  }

  float(): number {
    this.need(4)
    const b = this.bytes
    const p = this.pos
    scratch.setUint32(0, (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0, true)
    this.pos = p + 4
    return scratch.getFloat32(0, true)
  }

  double(): number {
    this.need(8)
    for (let i = 0; i < 8; i++) scratch.setUint8(i, this.bytes[this.pos + i]!)
    this.pos += 8
    return scratch.getFloat64(0, true)
  }

  /** The length prefix of a length-delimited field, checked against the current limit. */
  length(): number {
    const length = this.uint32()
    this.need(length)
    return length
  }

  /** A bytes field as a view into the buffer (no copy). */
  bytesField(): Uint8Array {
    const length = this.length()
    const start = this.pos
    this.pos += length
    return this.bytes.subarray(start, start + length)
  }

  string(): string {
    const length = this.length()
    const bytes = this.bytes
    const start = this.pos
    const end = start + length
    this.pos = end
    if (length < 64) {
      // Names are short ASCII almost always; building them directly beats a TextDecoder call.
      let text = ""
      for (let i = start; i < end; i++) {
        const c = bytes[i]!
        if (c >= 0x80) return utf8.decode(bytes.subarray(start, end))
        text += String.fromCharCode(c)
      }
      return text
    }
    return utf8.decode(bytes.subarray(start, end))
  }

  /** Enters a nested message: returns the enclosing limit, to hand back to `leave`. */
  enter(): number {
    const length = this.length()
    const outer = this.limit
    this.limit = this.pos + length
    return outer
  }

  leave(outer: number): void {
    if (this.pos !== this.limit) this.fail("malformed", "nested message overruns its length")
    this.limit = outer
  }

  /** Skips the value of a field whose tag was just read. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.Varint:
        this.varintParts()
        return
      case WireType.Fixed64:
        this.need(8)
        this.pos += 8
        return
      case WireType.LengthDelimited: {
        const length = this.length()
        this.pos += length
        return
      }
      case WireType.Fixed32:
        this.need(4)
        this.pos += 4
        return
      default:
        this.fail("malformed", `wire type ${wireType} is not supported`, this.pos - 1)
    }
  }

  /** Payload bounds of a packed repeated field (caller reads elements until `pos` reaches the end). */
  packedEnd(): number {
    const length = this.length()
    return this.pos + length
  }

  /** A packed run of fixed-width elements, copied out aligned (4 or 8 bytes each). */
  packedFixed(width: 4 | 8): Uint8Array {
    const view = this.bytesField()
    if (view.length % width !== 0) {
      this.fail("malformed", `packed field of ${view.length} bytes is not a multiple of ${width}`)
    }
    return view.slice()
  }
}

/** The field number of a raw field (tag plus value) kept as unknown. */
export const fieldNumberOf = (field: Uint8Array): number => new ProtoReader(field).uint32() >>> 3

// ---- writing ----

export const varintSize = (value: number): number => {
  if (value < 0) return 10
  if (value < 0x80) return 1
  if (value < 0x4000) return 2
  if (value < 0x200000) return 3
  if (value < 0x10000000) return 4
  let size = 5
  for (let v = Math.floor(value / 0x800000000); v > 0; v = Math.floor(v / 128)) size++
  return size
}

const bigintVarintSize = (value: bigint): number => {
  let v = BigInt.asUintN(64, value)
  let size = 1
  while (v >= 0x80n) {
    v >>= 7n
    size++
  }
  return size
}

export const utf8Length = (text: string): number => {
  let size = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) size += 1
    else if (c < 0x800) size += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        size += 4
        i++
      } else size += 3
    } else size += 3
  }
  return size
}

const tag = (field: number, wireType: number): number => field * 8 + wireType

/**
 * Where an encoder emits fields. One encoder function per message drives both passes: `ProtoSizer`
 * measures every nested message once (sizes recorded in visiting order) and `ProtoWriter` replays them.
 */
export interface ProtoSink {
  /** A non-negative integer or a negative int64, as a varint. */
  varint(field: number, value: number): void
  int64(field: number, value: bigint): void
  float(field: number, value: number): void
  double(field: number, value: number): void
  bytes(field: number, value: Uint8Array): void
  string(field: number, value: string): void
  message<T>(field: number, value: T, encode: (value: T, sink: ProtoSink) => void): void
  packedInt32(field: number, values: Int32Array): void
  packedInt64(field: number, values: BigInt64Array | BigUint64Array): void
  /** Packed fixed-width elements: float, double, fixed32/64 arrays. */
  packedFixed(field: number, values: Float32Array | Float64Array): void
  /** Fields already encoded (tag and value), such as unknown fields kept from the input. */
  raw(fields: Uint8Array): void
}

export class ProtoSizer implements ProtoSink {
  size = 0
  readonly sizes: Array<number> = []

  varint(field: number, value: number): void {
    this.size += varintSize(tag(field, 0)) + varintSize(value)
  }
  int64(field: number, value: bigint): void {
    this.size += varintSize(tag(field, 0)) + bigintVarintSize(value)
  }
  float(field: number): void {
    this.size += varintSize(tag(field, 5)) + 4
  }
  double(field: number): void {
    this.size += varintSize(tag(field, 1)) + 8
  }
  bytes(field: number, value: Uint8Array): void {
    this.size += varintSize(tag(field, 2)) + varintSize(value.length) + value.length
  }
  string(field: number, value: string): void {
    const length = utf8Length(value)
    this.size += varintSize(tag(field, 2)) + varintSize(length) + length
  }
  message<T>(field: number, value: T, encode: (value: T, sink: ProtoSink) => void): void {
    const slot = this.sizes.length
    this.sizes.push(0)
    const outer = this.size
    this.size = 0
    encode(value, this)
    const inner = this.size
    this.sizes[slot] = inner
    this.size = outer + varintSize(tag(field, 2)) + varintSize(inner) + inner
  }
  private packed(field: number, inner: number): void {
    this.sizes.push(inner)
    this.size += varintSize(tag(field, 2)) + varintSize(inner) + inner
  }
  packedInt32(field: number, values: Int32Array): void {
    let inner = 0
    for (let i = 0; i < values.length; i++) inner += varintSize(values[i]!)
    this.packed(field, inner)
  }
  packedInt64(field: number, values: BigInt64Array | BigUint64Array): void {
    let inner = 0
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!
      inner += v >= 0n && v < 0x10000000n ? varintSize(Number(v)) : bigintVarintSize(v)
    }
    this.packed(field, inner)
  }
  packedFixed(field: number, values: Float32Array | Float64Array): void {
    this.packed(field, values.byteLength)
  }
  raw(fields: Uint8Array): void {
    this.size += fields.length
  }
}

export class ProtoWriter implements ProtoSink {
  pos = 0
  private cursor = 0
  readonly output: Uint8Array
  private readonly view: DataView

  constructor(size: number, private readonly sizes: ReadonlyArray<number>) {
    this.output = new Uint8Array(size)
    this.view = new DataView(this.output.buffer)
  }

  private writeVarint(value: number): void {
    const bytes = this.output
    if (value >= 0 && value < TWO_32) {
      let v = value >>> 0
      while (v >= 0x80) {
        bytes[this.pos++] = (v & 0x7f) | 0x80
        v >>>= 7
      }
      bytes[this.pos++] = v
      return
    }
    if (value >= 0) {
      this.writeParts(value >>> 0, Math.floor(value / TWO_32) >>> 0)
      return
    }
    this.writeBigVarint(BigInt(value))
  }

  private writeParts(lo: number, hi: number): void {
    const bytes = this.output
    while (hi > 0 || lo >= 0x80) {
      bytes[this.pos++] = (lo & 0x7f) | 0x80
      lo = ((lo >>> 7) | (hi << 25)) >>> 0
      hi >>>= 7
    }
    bytes[this.pos++] = lo
  }

  private writeBigVarint(value: bigint): void {
    const v = BigInt.asUintN(64, value)
    this.writeParts(Number(v & 0xffffffffn), Number(v >> 32n))
  }

  private writeTag(field: number, wireType: number): void {
    this.writeVarint(tag(field, wireType))
  }

  varint(field: number, value: number): void {
    this.writeTag(field, 0)
    this.writeVarint(value)
  }
  int64(field: number, value: bigint): void {
    this.writeTag(field, 0)
    this.writeBigVarint(value)
  }
  float(field: number, value: number): void {
    this.writeTag(field, 5)
    this.view.setFloat32(this.pos, value, true)
    this.pos += 4
  }
  double(field: number, value: number): void {
    this.writeTag(field, 1)
    this.view.setFloat64(this.pos, value, true)
    this.pos += 8
  }
  bytes(field: number, value: Uint8Array): void {
    this.writeTag(field, 2)
    this.writeVarint(value.length)
    this.output.set(value, this.pos)
    this.pos += value.length
  }
  string(field: number, value: string): void {
    this.writeTag(field, 2)
    const bytes = this.output
    if (value.length < 0x80) {
      const lengthAt = this.pos++
      let ascii = true
      for (let i = 0; i < value.length; i++) {
        const c = value.charCodeAt(i)
        if (c >= 0x80) {
          ascii = false
          break
        }
        bytes[this.pos++] = c
      }
      if (ascii) {
        bytes[lengthAt] = value.length
        return
      }
      this.pos = lengthAt
    }
    this.writeVarint(utf8Length(value))
    this.pos += utf8Encoder.encodeInto(value, bytes.subarray(this.pos)).written
  }
  message<T>(field: number, value: T, encode: (value: T, sink: ProtoSink) => void): void {
    this.writeTag(field, 2)
    this.writeVarint(this.sizes[this.cursor++]!)
    encode(value, this)
  }
  private packedHeader(field: number): void {
    this.writeTag(field, 2)
    this.writeVarint(this.sizes[this.cursor++]!)
  }
  packedInt32(field: number, values: Int32Array): void {
    this.packedHeader(field)
    for (let i = 0; i < values.length; i++) this.writeVarint(values[i]!)
  }
  packedInt64(field: number, values: BigInt64Array | BigUint64Array): void {
    this.packedHeader(field)
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!
      if (v >= 0n && v < 0x10000000n) this.writeVarint(Number(v))
      else this.writeBigVarint(v)
    }
  }
  packedFixed(field: number, values: Float32Array | Float64Array): void {
    this.packedHeader(field)
    this.output.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), this.pos)
    this.pos += values.byteLength
  }
  raw(fields: Uint8Array): void {
    this.output.set(fields, this.pos)
    this.pos += fields.length
  }
}

/** Sizes a message under `encode` without writing it: `size` in total, nested sizes for the writer. */
export const measure = <T>(value: T, encode: (value: T, sink: ProtoSink) => void): ProtoSizer => {
  const sizer = new ProtoSizer()
  encode(value, sizer)
  return sizer
}

/** Encodes a top-level message into one buffer of exactly its size (reusing `sizer` if it already measured it). */
export const encodeMessage = <T>(
  value: T,
  encode: (value: T, sink: ProtoSink) => void,
  sizer: ProtoSizer = measure(value, encode)
): Uint8Array => {
  const writer = new ProtoWriter(sizer.size, sizer.sizes)
  encode(value, writer)
  if (writer.pos !== sizer.size) throw new Error(`protobuf writer wrote ${writer.pos} bytes, sized ${sizer.size}`)
  return writer.output
}
