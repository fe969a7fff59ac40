import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { GENESIS_HASH } from "../../src/events/Envelope.js"
import { decodeFeedResponse, encodeJson, FeedResponse, isFeedResponse } from "../../src/net/FeedWire.js"

const hex = (digit: string, length: number) => digit.repeat(length)

const record = (position: number) => ({
  position,
  streamId: `ledger:acct-${position}`,
  streamVersion: 1,
  eventType: "Credited",
  payloadText: "{\"amount\":\"1\"}",
  recordedAt: "2026-12-06T00:00:00.000Z",
  nodeId: "node-a",
  commandId: null,
  causationId: `cmd-${position}`,
  authorizationText: null,
  prevHash: position === 1 ? GENESIS_HASH : hex("a", 64),
  hash: hex("b", 64)
})

const head = { position: 2, hash: hex("b", 64), publicKey: hex("c", 64), signature: hex("d", 128) }
const page = { head, records: [record(1), record(2)], heads: [head] }

/** Every way one field of a page can be wrong, each as the whole page with that one change. */
const broken: ReadonlyArray<readonly [string, unknown]> = [
  ["no head field", { records: page.records, heads: page.heads }],
  ["a head that is a string", { ...page, head: "x" }],
  ["records not an array", { ...page, records: {} }],
  ...Object.keys(record(1)).flatMap((field): Array<readonly [string, unknown]> => [
    [`a record without ${field}`, {
      ...page,
      records: [Object.fromEntries(Object.entries(record(1)).filter(([k]) => k !== field))]
    }],
    [`a record whose ${field} is a number`, { ...page, records: [{ ...record(1), [field]: 1.5 }] }],
    [`a record whose ${field} is an object`, { ...page, records: [{ ...record(1), [field]: {} }] }]
  ]),
  ["a negative position", { ...page, records: [{ ...record(1), position: -1 }] }],
  ["an upper-case hash", { ...page, records: [{ ...record(1), hash: hex("B", 64) }] }],
  ["a short prevHash", { ...page, records: [{ ...record(1), prevHash: hex("a", 63) }] }],
  ["a short signature", { ...page, heads: [{ ...head, signature: hex("d", 127) }] }],
  ["a head without its key", { ...page, heads: [{ position: 2, hash: head.hash, signature: head.signature }] }],
  ["a head at a fractional position", { ...page, head: { ...head, position: 2.5 } }]
]

describe("feed pages on the wire", () => {
  it("the written-out check accepts what the Schema accepts, and refuses what it refuses", () => {
    const is = Schema.is(FeedResponse)
    expect(is(page)).toBe(true)
    expect(isFeedResponse(page)).toBe(true)
    expect(isFeedResponse({ head: null, records: [], heads: [] })).toBe(true)
    for (const [what, value] of broken) {
      expect({ what, accepted: isFeedResponse(value) }).toEqual({ what, accepted: is(value) })
    }
    // The list is not vacuous: the Schema refuses every one of them.
    expect(broken.filter(([, value]) => is(value))).toEqual([])
  })

  it("decodes a page, and a bad one with the Schema's one-line reason", () => {
    expect(decodeFeedResponse(encodeJson(page))).toEqual(Either.right(page))
    const bad = decodeFeedResponse(encodeJson({ ...page, records: [{ ...record(1), hash: "nope" }] }))
    expect(Either.isLeft(bad) && bad.left).toMatch(/64 lowercase hex digits/)
    expect(decodeFeedResponse(new Uint8Array([0xff, 0xfe]))).toEqual(Either.left("not UTF-8"))
  })
})
