/**
 * A follower's copy of another node's feed: whole signed batches that continue it are stored byte for
 * byte and verify with the node's own audit; anything else is refused and writes nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { keyPairFromSeed, NodeKey } from "../../src/content/NodeKey.js"
import { verifyChain } from "../../src/events/Audit.js"
import { headMessage } from "../../src/events/Envelope.js"
import type { StoredRecord } from "../../src/events/Envelope.js"
import { Journal } from "../../src/events/Journal.js"
import type { SignedHead } from "../../src/events/Journal.js"
import { openReplica, ReplicaRefused } from "../../src/events/Replica.js"
import { feedKernel, sqliteKernel } from "../../src/layers/Kernel.js"
import { tempDir } from "../support/TempDir.js"

/** A source node's journal with `batches` appends of two events each, as a follower would fetch it. */
const sourceFeed = (dataDir: string, batches: number, from = 0) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const key = yield* NodeKey
    for (let i = 0; i < batches; i++) {
      yield* journal.append(`account-${i}`, "none", [
        { eventType: "Opened", payload: { i } },
        { eventType: "Credited", payload: { amount: String(from + i * 10) } }
      ])
    }
    const records = yield* journal.readRecords(1, 10_000)
    const heads = yield* journal.signedHeads(1, 10_000)
    return { records, heads, publicKey: key.publicKey }
  }).pipe(Effect.provide(sqliteKernel({ dataDir, synchronous: "normal" })), Effect.scoped)

const upTo = (position: number, records: ReadonlyArray<StoredRecord>, heads: ReadonlyArray<SignedHead>) => ({
  records: records.filter((r) => r.position <= position),
  heads: heads.filter((h) => h.position <= position)
})

describe("a feed's verified copy", () => {
  it.effect("takes whole signed batches in any page sizes, resumes after a reopen, and verifies as the source does", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const feed = yield* sourceFeed(path.join(dir, "source"), 5)
      expect(feed.heads.map((h) => h.position)).toEqual([2, 4, 6, 8, 10])
      const file = path.join(dir, "copy.db")
      const copy = openReplica(file, feed.publicKey)
      const first = upTo(4, feed.records, feed.heads)
      expect(copy.append(first.records, first.heads)).toEqual({ position: 4, hash: feed.records[3]!.hash })
      copy.close()

      // A follower killed here reopens its copy and asks from its head on: no gap, no duplicate.
      const reopened = openReplica(file, feed.publicKey)
      const rest = { records: feed.records.slice(4), heads: feed.heads.filter((h) => h.position > 4) }
      expect(reopened.append(rest.records, rest.heads)).toEqual({ position: 10, hash: feed.records[9]!.hash })
      expect(reopened.lastSignedHead()).toEqual(feed.heads[4])
      reopened.close()

      const report = yield* verifyChain({ trustedKeys: [feed.publicKey] }).pipe(
        Effect.provide(feedKernel({ file, publicKey: feed.publicKey })),
        Effect.scoped
      )
      expect(report).toMatchObject({ ok: true, eventsChecked: 10, headsChecked: 5 })
    }))

  it.effect("refuses an altered event, a gap, a head by another key or off the chain, and a batch cut before its head", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const feed = yield* sourceFeed(path.join(dir, "source"), 3)
      const copy = openReplica(path.join(dir, "copy.db"), feed.publicKey)
      const { heads, records } = upTo(4, feed.records, feed.heads)
      const other = keyPairFromSeed(new Uint8Array(32).fill(7))
      const forged = heads.map((h) => ({
        ...h,
        publicKey: other.publicKey,
        signature: other.sign(headMessage(h.position, h.hash))
      }))
      const refusals = [
        copy.append(records.map((r, i) => (i === 1 ? { ...r, payloadText: `{"i":9}` } : r)), heads),
        copy.append(records.slice(1), heads),
        copy.append(records, forged),
        copy.append(records, heads.map((h) => ({ ...h, signature: feed.heads[2]!.signature }))),
        copy.append(records.slice(0, 3), heads.slice(0, 1))
      ]
      for (const refusal of refusals) expect(refusal).toBeInstanceOf(ReplicaRefused)
      expect(refusals.map((r) => (r as ReplicaRefused).message)).toEqual([
        "refused at position 2: the event does not hash to its stored hash",
        "refused at position 1: expected event 1, got 2",
        `refused at position 2: a head signed by ${other.publicKey}, not the feed's key`,
        "refused at position 2: a head whose signature does not verify",
        "refused at position 3: the batch does not end at a signed head"
      ])
      // Nothing of a refused batch was written: the copy is still empty and takes the real batch.
      expect(copy.head().position).toBe(0)
      expect(copy.append(records, heads)).toMatchObject({ position: 4 })
      // A batch that does not link to what the copy holds is a rewritten history.
      // (the same key, writing another history: its events 5.. do not follow the copy's event 4)
      fs.mkdirSync(path.join(dir, "rewrite"))
      fs.copyFileSync(path.join(dir, "source", "node.key"), path.join(dir, "rewrite", "node.key"))
      const rewritten = yield* sourceFeed(path.join(dir, "rewrite"), 3, 1)
      expect(rewritten.publicKey).toBe(feed.publicKey)
      const refusedRewrite = copy.append(rewritten.records.slice(4), rewritten.heads.filter((h) => h.position > 4))
      expect((refusedRewrite as ReplicaRefused).message).toBe(
        "refused at position 5: the event does not link to the copy's last event"
      )
      copy.close()
    }))
})
