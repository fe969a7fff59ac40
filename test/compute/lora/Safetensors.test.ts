/**
 * The safetensors codec: reads what the safetensors library wrote (F32, F16, BF16, metadata, empty
 * tensors), writes files in the exact layout, and refuses malformed files with one line each.
 */
import * as fs from "node:fs"
import { describe, expect, it } from "vitest"
import { readSafetensors, SafetensorsError, writeSafetensors } from "../../../src/compute/lora/Safetensors.js"

const fixture = new Uint8Array(fs.readFileSync("test/fixtures/peft/dtypes.safetensors"))

/** A file from a header object and data bytes, the header padded as writers do. */
const fileOf = (header: unknown, data: Uint8Array, headerLength?: number) => {
  const json = new TextEncoder().encode(JSON.stringify(header))
  const length = headerLength ?? Math.ceil(json.length / 8) * 8
  const bytes = new Uint8Array(8 + Math.max(length, json.length) + data.length).fill(0x20, 8)
  new DataView(bytes.buffer).setBigUint64(0, BigInt(length), true)
  bytes.set(json, 8)
  bytes.set(data, 8 + Math.max(length, json.length))
  return bytes
}

const floats = (...values: Array<number>) => new Uint8Array(Float32Array.from(values).buffer)

const refusal = (bytes: Uint8Array): string => {
  try {
    readSafetensors(bytes)
  } catch (error) {
    expect(error).toBeInstanceOf(SafetensorsError)
    const message = (error as SafetensorsError).message
    expect(message).not.toContain("\n")
    return message
  }
  throw new Error("the file was accepted")
}

describe("Safetensors", () => {
  it("reads F32, F16 and BF16 tensors and metadata written by the safetensors library", () => {
    const file = readSafetensors(fixture)
    expect({ ...file.metadata }).toEqual({ format: "pt", note: "made by tools/make_peft_fixture.py" })
    const f32 = file.tensors.get("f32")!
    expect(f32.dtype).toBe("F32")
    expect(f32.shape).toEqual([2, 3])
    expect([...f32.data]).toEqual([0.5, -1.25, 3, 65504, -0, Math.fround(1 / 3)])
    expect(Object.is(f32.data[4], -0)).toBe(true)
    // Half precision rounds 1/3 to 0.333251953125; bfloat16 keeps 8 bits of mantissa and rounds 65504 up to 65536.
    expect([...file.tensors.get("f16")!.data]).toEqual([0.5, -1.25, 3, 65504, -0, 0.333251953125])
    expect([...file.tensors.get("bf16")!.data]).toEqual([0.5, -1.25, 3, 65536, -0, 0.333984375])
    expect(file.tensors.get("empty")).toMatchObject({ dtype: "F32", shape: [0, 4] })
    expect(file.tensors.get("empty")!.data.length).toBe(0)
  })

  it("writes the exact layout: little-endian header length, space-padded JSON to 8 bytes, data in order", () => {
    const a = Float32Array.from([1, -2, 0.1])
    const b = Float32Array.from([0.1, 70000])
    const bytes = writeSafetensors([["a", { dtype: "F32", shape: [3], data: a }], ["b", {
      dtype: "F16",
      shape: [1, 2],
      data: b
    }]], { format: "pt" })
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true))
    expect(headerLength % 8).toBe(0)
    const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))
    expect(JSON.parse(headerText)).toEqual({
      __metadata__: { format: "pt" },
      a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
      b: { dtype: "F16", shape: [1, 2], data_offsets: [12, 16] }
    })
    expect(headerText.slice(headerText.lastIndexOf("}") + 1)).toMatch(/^ {0,7}$/)
    expect(bytes.length).toBe(8 + headerLength + 16)
    const back = readSafetensors(bytes)
    expect(back.tensors.get("a")!.data).toEqual(a)
    // F16 rounds 0.1 to 0.0999755859375 and overflows 70000 to infinity, as numpy and torch do.
    expect([...back.tensors.get("b")!.data]).toEqual([0.0999755859375, Infinity])
    expect([...back.tensors.keys()]).toEqual(["a", "b"])
  })

  it("keeps tensor names that are also Object.prototype's properties", () => {
    const data = Float32Array.from([1])
    const bytes = writeSafetensors([["__proto__", { dtype: "F32", shape: [1], data }], ["toString", {
      dtype: "F32",
      shape: [1],
      data
    }]])
    expect([...readSafetensors(bytes).tensors.keys()].sort()).toEqual(["__proto__", "toString"])
  })

  it("refuses truncated and garbage files with one line", () => {
    expect(refusal(new Uint8Array(4))).toContain("shorter than the 8-byte header length")
    const good = writeSafetensors([["a", { dtype: "F32", shape: [4], data: new Float32Array(4) }]])
    expect(refusal(good.subarray(0, 20))).toMatch(/header claims \d+ bytes but only 12 follow/)
    expect(refusal(good.subarray(0, good.length - 3))).toMatch(/tensor "a" ends at byte 16 of a 13-byte data section/)
    expect(refusal(new TextEncoder().encode("PK\u0003\u0004 this is a zip file, not safetensors"))).toContain(
      "header claims"
    )
    expect(refusal(fileOf("[1, 2]", new Uint8Array(0)))).toContain("does not start with {")
    const garbage = new Uint8Array(16)
    garbage[0] = 8
    garbage.fill(0xff, 8)
    expect(refusal(garbage)).toContain("not UTF-8 JSON")
    expect(refusal(fileOf({ __metadata__: { version: 2 } }, new Uint8Array(0)))).toContain(
      "__metadata__.version is not a string"
    )
  })

  it("refuses overlapping, out-of-range, missized and gapped offsets", () => {
    const data = floats(1, 2, 3, 4)
    const overlap = fileOf({
      a: { dtype: "F32", shape: [3], data_offsets: [0, 12] },
      b: { dtype: "F32", shape: [2], data_offsets: [8, 16] }
    }, data)
    expect(refusal(overlap)).toBe("not a valid safetensors file: tensors \"a\" and \"b\" overlap (bytes 8..12)")
    const outside = fileOf({ a: { dtype: "F32", shape: [5], data_offsets: [0, 20] } }, data)
    expect(refusal(outside)).toContain("tensor \"a\" ends at byte 20 of a 16-byte data section")
    const missized = fileOf({ a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, data)
    expect(refusal(missized)).toContain("tensor \"a\" (F32 [2, 3]) needs 24 bytes, its data_offsets give 16")
    const gap = fileOf({
      a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
      b: { dtype: "F32", shape: [1], data_offsets: [8, 12] }
    }, data.subarray(0, 12))
    expect(refusal(gap)).toContain("bytes 4..8 of the data section belong to no tensor")
    const reversed = fileOf({ a: { dtype: "F32", shape: [0], data_offsets: [8, 4] } }, data)
    expect(refusal(reversed)).toContain("tensor \"a\" ends (4) before it begins (8)")
    const trailing = fileOf({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, data)
    expect(refusal(trailing)).toContain("the data section has 16 bytes but its tensors cover 4")
  })

  it("refuses a header that is not JSON, or whose entries are not what the format describes, naming the member", () => {
    const data = floats(1, 2)
    const headerText = (text: string) => {
      const bytes = new Uint8Array(8 + text.length)
      new DataView(bytes.buffer).setBigUint64(0, BigInt(text.length), true)
      bytes.set(new TextEncoder().encode(text), 8)
      return bytes
    }
    expect(refusal(headerText("{ \"a\": oops }"))).toMatch(
      /^not a valid safetensors file: the header is not UTF-8 JSON \(Unexpected token .*\)$/
    )
    expect(refusal(fileOf({ a: [0, 8] }, data))).toBe(
      "not a valid safetensors file: tensor \"a\" is not described by an object"
    )
    expect(refusal(fileOf({ a: { dtype: "F32", shape: [2] } }, data))).toBe(
      "not a valid safetensors file: tensor \"a\" has no data_offsets"
    )
    expect(refusal(fileOf({ a: { dtype: "F32", shape: [2], data_offsets: [0, 8, 16] } }, data))).toBe(
      "not a valid safetensors file: tensor \"a\" has data_offsets [0,8,16], not [begin, end]"
    )
    expect(refusal(fileOf({ a: { dtype: "F32", shape: [2], data_offsets: [0, 7.5] } }, data))).toBe(
      "not a valid safetensors file: tensor \"a\" has data_offsets [0,7.5], not [begin, end]"
    )
    expect(refusal(fileOf({ __metadata__: ["pt"], a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, data)))
      .toBe("not a valid safetensors file: __metadata__ is not an object")
  })

  it("refuses unknown and unsupported dtypes by name", () => {
    const data = floats(1, 2)
    expect(refusal(fileOf({ a: { dtype: "Q9", shape: [2], data_offsets: [0, 8] } }, data))).toContain(
      "tensor \"a\" has dtype \"Q9\"; this reader takes F32, F16 and BF16"
    )
    expect(refusal(fileOf({ ids: { dtype: "I64", shape: [1], data_offsets: [0, 8] } }, data))).toContain(
      "tensor \"ids\" has dtype \"I64\""
    )
    expect(refusal(fileOf({ a: { shape: [2], data_offsets: [0, 8] } }, data))).toContain("tensor \"a\" has no dtype")
    expect(refusal(fileOf({ a: { dtype: "F32", shape: [-2], data_offsets: [0, 8] } }, data))).toContain(
      "not a list of sizes"
    )
  })
})
