/**
 * The seed's adapter messages on the wire: field numbers and types byte for byte, round trips,
 * signatures over the message without its signature, and bad input refused in one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { ed25519 } from "../../src/domain/Ed25519.js"
import * as Wire from "../../src/net/AdapterWire.js"

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")
const seed = new Uint8Array(32).fill(7)

const announce: Wire.AdapterAnnounce = {
  adapterId: "a",
  name: "n",
  baseModel: "b",
  rank: 4,
  domain: "d",
  qualityScore: 0.5,
  checksum: Uint8Array.of(0xaa),
  signature: Uint8Array.of(0xbb),
  peerId: "p",
  timestamp: 300,
  version: "1",
  manifest: Uint8Array.of(0x7b)
}

describe("AdapterWire", () => {
  it("writes AdapterAnnounce with the seed's field numbers and types", () => {
    expect(hex(Wire.encodeAnnounce(announce))).toBe(
      [
        "0a0161", // 1 adapter_id: string
        "12016e", // 2 name: string
        "1a0162", // 3 base_model: string
        "2004", // 4 rank: uint32 (varint)
        "2a0164", // 5 domain: string
        "350000003f", // 6 quality_score: float (fixed32, 0.5)
        "3a01aa", // 7 checksum: bytes
        "4201bb", // 8 signature: bytes
        "4a0170", // 9 peer_id: string
        "50ac02", // 10 timestamp: uint64 (varint 300)
        "5a0131", // 11 version: our extension
        "62017b" // 12 manifest: our extension
      ].join("")
    )
  })

  it("writes AdapterRequest, AdapterChunk and AdapterReport with the seed's field numbers", () => {
    expect(hex(Wire.encodeRequest({ adapterId: "a", requesterId: "r", timestamp: 1, chunkIndex: 2, version: "1" })))
      .toBe("0a0161" + "120172" + "1801" + "2002" + "2a0131")
    expect(
      hex(Wire.encodeChunk({
        adapterId: "a",
        chunkIndex: 3,
        totalChunks: 5,
        data: Uint8Array.of(1, 2),
        chunkHash: Uint8Array.of(9),
        version: "1"
      }))
    ).toBe("0a0161" + "1003" + "1805" + "22020102" + "2a0109" + "320131")
    expect(
      hex(Wire.encodeReport({
        adapterId: "a",
        reporterId: "k",
        qualityScore: 1,
        feedback: "f",
        timestamp: 2,
        signature: Uint8Array.of(0xcc)
      }))
    ).toBe("0a0161" + "12016b" + "1d0000803f" + "220166" + "2802" + "3201cc")
  })

  it("leaves proto3 defaults out and reads them back as defaults", () => {
    const empty = Wire.encodeRequest({ adapterId: "x", requesterId: "", timestamp: 0, chunkIndex: 0, version: "" })
    expect(hex(empty)).toBe("0a0178")
    expect(Wire.decodeRequest(empty)).toEqual(
      Either.right({ adapterId: "x", requesterId: "", timestamp: 0, chunkIndex: 0, version: "" })
    )
  })

  it("round-trips every message and skips fields it does not know", () => {
    expect(Wire.decodeAnnounce(Wire.encodeAnnounce(announce))).toEqual(Either.right(announce))
    const withUnknown = new Uint8Array([...Wire.encodeAnnounce(announce), 0xa0, 0x06, 0x01]) // field 100 varint
    expect(Wire.decodeAnnounce(withUnknown)).toEqual(Either.right(announce))
    const chunk = Wire.chunkOf("a", "1.0.0", new Uint8Array(Wire.CHUNK_SIZE + 10).fill(3), 1)
    expect(chunk.data.length).toBe(10)
    expect(Wire.decodeChunk(Wire.encodeChunk(chunk))).toEqual(Either.right({ ...chunk, data: chunk.data.slice() }))
  })

  it("refuses bad input in one line", () => {
    const truncated = Wire.decodeChunk(Uint8Array.of(0x22, 0x05, 0x01))
    expect(truncated).toEqual(Either.left("AdapterChunk: truncated protobuf at byte 2: 5 bytes needed, 1 left"))
    const wrongType = Wire.decodeReport(Uint8Array.of(0x18, 0x01)) // field 3 (float) sent as a varint
    expect(wrongType).toEqual(Either.left("AdapterReport: field 3 (qualityScore) has wire type 0, expected 5"))
    const garbage = Wire.decodeAnnounce(Uint8Array.of(0xff, 0xff, 0xff))
    expect(Either.isLeft(garbage) && !garbage.left.includes("\n")).toBe(true)
  })

  it("signs a report over the message without its signature, by the key reporter_id names", () => {
    const report = Wire.signReport(seed, {
      adapterId: "a",
      reporterId: ed25519.publicKeyOf(seed),
      qualityScore: 0.25,
      feedback: "good",
      timestamp: 5,
      signature: new Uint8Array(0)
    })
    expect(Wire.reportSigned(report)).toBe(true)
    const decoded = Either.getOrThrow(Wire.decodeReport(Wire.encodeReport(report)))
    expect(Wire.reportSigned(decoded)).toBe(true)
    expect(Wire.reportSigned({ ...decoded, qualityScore: 0.75 })).toBe(false)
    expect(Wire.reportSigned({ ...decoded, reporterId: ed25519.publicKeyOf(new Uint8Array(32).fill(8)) })).toBe(false)
  })

  it("checks a chunk against its hash and its place", () => {
    const bytes = new Uint8Array(Wire.CHUNK_SIZE * 2).map((_, i) => i % 251)
    const chunk = Wire.chunkOf("a", "1", bytes, 0)
    const asked = { adapterId: "a", version: "1", chunkIndex: 0 }
    expect(Wire.chunkProblem(asked, 2, chunk)).toBeUndefined()
    const flipped = chunk.data.slice()
    flipped[9] = flipped[9]! ^ 1
    expect(Wire.chunkProblem(asked, 2, { ...chunk, data: flipped })).toMatch(/^chunk 0 hashes to .* not its chunk_hash/)
    expect(Wire.chunkProblem({ ...asked, chunkIndex: 1 }, 2, chunk)).toBe("answered chunk 0 for chunk 1")
    expect(Wire.chunkProblem(asked, 2, { ...chunk, totalChunks: 0 })).toBe("does not hold the adapter")
  })
})
