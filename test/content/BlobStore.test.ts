import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Exit, Fiber, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlobStore } from "../../src/content/BlobStore.js"
import { layoutOf } from "../../src/content/UnixFs.js"
import { tempDir } from "../support/TempDir.js"

const bytesOf = (size: number, seed = 1) => {
  const bytes = new Uint8Array(size)
  let state = seed
  for (let i = 0; i < size; i++) {
    state = (state * 1103515245 + 12345) >>> 0
    bytes[i] = state >>> 24
  }
  return bytes
}
const sha256 = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest("hex")
const streamOf = (bytes: Uint8Array, piece = 100_003) =>
  Stream.fromChunk(
    Chunk.unsafeFromArray(
      Array.from({ length: Math.ceil(bytes.length / piece) }, (_, i) => bytes.subarray(i * piece, (i + 1) * piece))
    )
  )

const withStore = <A, E>(use: Effect.Effect<A, E, BlobStore>, options: { maxBytes?: number; root?: string } = {}) =>
  Effect.provide(use, BlobStore.layer({ root: options.root ?? tempDir("blobs-"), ...options }))

describe("BlobStore", () => {
  it.effect("stores bytes under their SHA-256 with the kubo CID, and serves their IPFS blocks", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const bytes = bytesOf(700_000)
        const info = yield* store.put(streamOf(bytes), { sha256: sha256(bytes), size: bytes.length })
        const layout = layoutOf(bytes)
        expect(info.digest).toBe(`sha256-${sha256(bytes)}`)
        expect(info.cid).toBe(layout.root)
        expect(new Uint8Array(fs.readFileSync(store.pathOf(info.digest)))).toEqual(bytes)
        expect(fs.readdirSync(path.join(store.root, "tmp"))).toEqual([])
        const leaf = layout.leaves[1]!
        const block = yield* store.block(leaf.cid)
        expect(Option.getOrThrow(block)).toEqual(bytes.subarray(leaf.offset, leaf.offset + leaf.length))
        expect(Option.getOrThrow(yield* store.block(layout.root))).toEqual(
          layout.nodes.find((node) => node.cid === layout.root)!.bytes
        )
        expect(Option.getOrThrow(yield* store.byCid(layout.root)).sha256).toBe(info.sha256)
      })
    ))

  it.effect("refuses bytes that do not match the expected digest and leaves nothing behind", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const bytes = bytesOf(300_000)
        const wrong = sha256(bytesOf(10))
        const exit = yield* Effect.exit(store.put(streamOf(bytes), { sha256: wrong }))
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(Exit.isFailure(exit) && exit.cause)).toContain("do not match")
        expect(yield* store.has(wrong)).toBe(false)
        expect(yield* store.has(sha256(bytes))).toBe(false)
        expect(fs.readdirSync(path.join(store.root, "tmp"))).toEqual([])
        expect(fs.readdirSync(path.join(store.root, "blobs"))).toEqual([])
      })
    ))

  it.effect("a failing stream leaves nothing visible", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const bytes = bytesOf(300_000)
        const broken = Stream.concat(streamOf(bytes.subarray(0, 100_000)), Stream.fail("connection reset"))
        const exit = yield* Effect.exit(store.put(broken))
        expect(Exit.isFailure(exit)).toBe(true)
        expect(fs.readdirSync(path.join(store.root, "blobs"))).toEqual([])
        expect((yield* store.list).length).toBe(0)
      })
    ))

  it.effect("re-verifies on demand and drops a blob whose bytes changed on disk", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const bytes = bytesOf(50_000)
        const info = yield* store.put(streamOf(bytes))
        expect((yield* store.verify(info.digest)).size).toBe(50_000)
        const file = store.pathOf(info.digest)
        const onDisk = fs.readFileSync(file)
        onDisk[123] = onDisk[123]! ^ 1
        fs.writeFileSync(file, onDisk)
        const exit = yield* Effect.exit(store.verify(info.digest))
        expect(Exit.isFailure(exit)).toBe(true)
        expect(yield* store.has(info.digest)).toBe(false)
      })
    ))

  it.effect("evicts least recently used blobs to stay under the cap, never pinned or in-use ones", () =>
    withStore(
      Effect.scoped(Effect.gen(function*() {
        const store = yield* BlobStore
        const put = (seed: number) => store.put(streamOf(bytesOf(1000, seed)))
        const a = yield* put(1)
        const b = yield* put(2)
        const c = yield* put(3)
        yield* store.pin(a.digest)
        yield* store.use(b.digest) // held open for the rest of this scope
        const d = yield* put(4)
        // 4000 bytes would exceed the 3500 cap: c (unpinned, unused, oldest of the rest) goes.
        expect(yield* store.has(c.digest)).toBe(false)
        for (const kept of [a, b, d]) expect(yield* store.has(kept.digest)).toBe(true)
        const e = yield* Effect.exit(put(5))
        // Only d may go now; it does, and e fits.
        expect(Exit.isSuccess(e)).toBe(true)
        expect(yield* store.has(d.digest)).toBe(false)
        const tooBig = yield* Effect.exit(store.put(streamOf(bytesOf(5000)), { size: 5000 }))
        expect(String(Exit.isFailure(tooBig) && tooBig.cause)).toContain("larger than the cache cap")
      })),
      { maxBytes: 3500 }
    ))

  it.effect("stops at the first byte past the bound, writing none of it and keeping nothing", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const bytes = bytesOf(300_000)
        let pulled = 0
        // A sender that would go on for 50 MB: the store stops pulling right after the bound.
        const endless = Stream.repeatEffect(Effect.sync(() => {
          pulled += 65_536
          return bytes.subarray(0, 65_536)
        })).pipe(Stream.take(800))
        const exit = yield* Effect.exit(store.put(endless, { sha256: sha256(bytes), atMost: 300_000 }))
        expect(String(Exit.isFailure(exit) && exit.cause)).toContain(
          "more than 300000 bytes sent: refused, nothing kept"
        )
        expect(pulled).toBeLessThanOrEqual(6 * 65_536)
        expect(fs.readdirSync(path.join(store.root, "tmp"))).toEqual([])
        expect((yield* store.list).length).toBe(0)
        // Exactly the bound is fine.
        expect((yield* store.put(streamOf(bytes), { sha256: sha256(bytes), atMost: 300_000 })).size).toBe(300_000)
      })
    ))

  it.effect("mustFit refuses what pinned blobs leave no room for, evicting nothing, and counts puts in progress", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const pinned = yield* store.put(streamOf(bytesOf(2000, 1)))
        yield* store.pin(pinned.digest)
        const loose = yield* store.put(streamOf(bytesOf(1000, 2)))
        const full = yield* Effect.flip(store.put(streamOf(bytesOf(2000, 3)), { atMost: 2000, mustFit: true }))
        expect(full.message).toBe(
          "the blob store is full: 2000 more bytes would exceed its cap of 3500 (2000 held by pinned or in-use blobs and uploads in progress)"
        )
        expect(yield* store.has(loose.digest)).toBe(true)
        // 1500 fits once the loose blob goes; a second put of 1500 while the first streams in does not.
        const gate = yield* Deferred.make<void>()
        const slow = Stream.concat(Stream.fromEffect(Effect.as(Deferred.await(gate), bytesOf(1500, 4))), Stream.empty)
        const first = yield* Effect.fork(store.put(slow, { atMost: 1500, mustFit: true }))
        yield* Effect.yieldNow()
        const second = yield* Effect.flip(store.put(streamOf(bytesOf(1500, 5)), { atMost: 1500, mustFit: true }))
        expect(second._tag).toBe("BlobStoreFull")
        yield* Deferred.succeed(gate, undefined)
        expect((yield* Fiber.join(first)).size).toBe(1500)
        expect(yield* store.has(loose.digest)).toBe(false)
        expect((yield* store.summary).bytes).toBe(3500)
      }),
      { maxBytes: 3500 }
    ))

  it.effect("prune removes blobs no manifest refers to; clear honours --older-than", () =>
    withStore(
      Effect.gen(function*() {
        const store = yield* BlobStore
        const kept = yield* store.put(streamOf(bytesOf(100, 1)))
        const loose = yield* store.put(streamOf(bytesOf(100, 2)))
        yield* store.addRef(kept.digest, "tiny-lm@1.0.0")
        const pruned = yield* store.prune
        expect(pruned.map((blob) => blob.digest)).toEqual([loose.digest])
        expect(yield* store.refsOf(kept.digest)).toEqual(["tiny-lm@1.0.0"])
        expect((yield* store.clear(60_000)).length).toBe(0)
        expect((yield* store.clear()).map((blob) => blob.digest)).toEqual([kept.digest])
      })
    ))

  it.effect("the index survives a reopen: another process sees the same blobs", () =>
    Effect.gen(function*() {
      const root = tempDir("blobs-")
      const bytes = bytesOf(1234)
      const first = yield* withStore(Effect.flatMap(BlobStore, (store) => store.put(streamOf(bytes))), { root })
      const again = yield* withStore(Effect.flatMap(BlobStore, (store) => store.stat(first.digest)), { root })
      expect(Option.getOrThrow(again).cid).toBe(first.cid)
    }))

  it.effect("its change mark stands while nothing changes, and moves with a blob added here or by another store", () =>
    Effect.gen(function*() {
      const root = tempDir("blobs-")
      const marks = yield* withStore(
        Effect.gen(function*() {
          const store = yield* BlobStore
          const start = store.changeMark()
          const still = store.changeMark()
          yield* store.put(streamOf(bytesOf(100, 1)))
          const afterOwn = store.changeMark()
          // Another store on the same root, as another process opens it.
          yield* withStore(Effect.flatMap(BlobStore, (other) => other.put(streamOf(bytesOf(100, 2)))), { root })
          return { start, still, afterOwn, afterOther: store.changeMark() }
        }),
        { root }
      )
      expect(marks.still).toBe(marks.start)
      expect(marks.afterOwn).not.toBe(marks.start)
      expect(marks.afterOther).not.toBe(marks.afterOwn)
    }))
})
