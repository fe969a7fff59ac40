/**
 * Content-addressed blob store: files named by their SHA-256 (`sha256-<hex>`), written to a temp file,
 * hashed while streaming in, fsynced and renamed into place only once verified; an LRU size cap that
 * never evicts pinned blobs or blobs a live process is using; the IPFS blocks of every blob, indexed.
 */
import { Context, Data, Effect, Layer, Option, Schema, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { moveIntoPlaceSync } from "../node/AtomicFile.js"
import type { BlobIndex, BlobRow } from "./BlobIndex.js"
import { openBlobIndex } from "./BlobIndex.js"
import type { UnixFsLayout } from "./UnixFs.js"
import { UnixFsBuilder } from "./UnixFs.js"

export const BlobDigest = Schema.String.pipe(
  Schema.pattern(/^sha256-[0-9a-f]{64}$/, {
    message: () => "a blob digest is sha256- followed by 64 lowercase hex characters"
  })
)

export const digestOf = (sha256: string) => `sha256-${sha256}`
export const sha256Of = (
  digestOrHex: string
) => (digestOrHex.startsWith("sha256-") ? digestOrHex.slice(7) : digestOrHex)
const isSha256 = (hex: string) => /^[0-9a-f]{64}$/.test(hex)

export interface BlobInfo {
  readonly digest: string
  readonly sha256: string
  readonly size: number
  readonly cid: string
  readonly addedAt: number
  readonly lastUsed: number
  readonly pinned: boolean
}

export interface Expected {
  readonly sha256?: string | undefined
  readonly size?: number | undefined
  /** Refuse (BlobTooLarge) as soon as more bytes than this arrive, before writing them; `size` bounds them too. */
  readonly atMost?: number | undefined
  /**
   * Refuse (BlobStoreFull) rather than go over the cap when pinned or in-use blobs leave no room; the
   * bound (`size` or `atMost`) is reserved while the bytes stream in, so concurrent puts cannot overbook.
   */
  readonly mustFit?: boolean | undefined
}

export class BlobNotFound extends Data.TaggedError("BlobNotFound")<{ readonly digest: string }> {
  override get message() {
    return `no blob ${this.digest} in the store`
  }
}

export class BlobMismatch extends Data.TaggedError("BlobMismatch")<{
  readonly what: "sha256" | "size"
  readonly expected: string
  readonly actual: string
}> {
  override get message() {
    return `received bytes do not match: ${this.what} is ${this.actual}, expected ${this.expected}`
  }
}

export class BlobTooLarge extends Data.TaggedError("BlobTooLarge")<{ readonly limit: number }> {
  override get message() {
    return `more than ${this.limit} bytes sent: refused, nothing kept`
  }
}

export class BlobStoreFull extends Data.TaggedError("BlobStoreFull")<{
  readonly incoming: number
  /** Bytes that cannot be evicted: pinned or in-use blobs and reservations of puts in progress. */
  readonly held: number
  readonly maxBytes: number
}> {
  override get message() {
    return `the blob store is full: ${this.incoming} more bytes would exceed its cap of ${this.maxBytes} (${this.held} held by pinned or in-use blobs and uploads in progress)`
  }
}

export class BlobStoreError extends Data.TaggedError("BlobStoreError")<{ readonly reason: string }> {
  override get message() {
    return `blob store: ${this.reason}`
  }
}

export interface BlobStoreOptions {
  readonly root: string
  /** Size cap in bytes; least recently used blobs are evicted to stay under it. Default 10 GiB. */
  readonly maxBytes?: number | undefined
  /** Re-hash a blob every time it is opened with `use`. */
  readonly verifyOnUse?: boolean | undefined
}

export const DEFAULT_MAX_BYTES = 10 * 1024 ** 3

const toInfo = (row: BlobRow): BlobInfo => ({
  digest: digestOf(row.hex),
  sha256: row.hex,
  size: row.size,
  cid: row.cid,
  addedAt: row.addedAt,
  lastUsed: row.lastUsed,
  pinned: row.pinned
})

const ioError = (cause: unknown) =>
  new BlobStoreError({ reason: cause instanceof Error ? cause.message : String(cause) })

const READ_CHUNK = 4 * 1024 * 1024

/** Reads a file once, feeding each chunk to every consumer. */
const scanFile = (file: string, consumers: ReadonlyArray<(bytes: Uint8Array) => void>) =>
  Effect.tryPromise({
    try: async () => {
      const handle = await fs.promises.open(file, "r")
      try {
        const buffer = Buffer.allocUnsafe(READ_CHUNK)
        let position = 0
        while (true) {
          const { bytesRead } = await handle.read(buffer, 0, READ_CHUNK, position)
          if (bytesRead === 0) break
          const chunk = buffer.subarray(0, bytesRead)
          for (const consume of consumers) consume(chunk)
          position += bytesRead
        }
        return position
      } finally {
        await handle.close()
      }
    },
    catch: ioError
  })

const blocksOf = (layout: UnixFsLayout) => [
  ...layout.leaves.map((leaf) => ({ cid: leaf.cid, offset: leaf.offset, length: leaf.length })),
  ...layout.nodes.map((node) => ({ cid: node.cid, node: node.bytes }))
]

const makeStore = (options: BlobStoreOptions, index: BlobIndex) => {
  const root = path.resolve(options.root)
  const blobsDir = path.join(root, "blobs")
  const tmpDir = path.join(root, "tmp")
  const partialDir = path.join(root, "partial")
  for (const dir of [blobsDir, tmpDir, partialDir]) fs.mkdirSync(dir, { recursive: true })
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  /** Bytes promised to puts in progress that must fit (`mustFit`), counted as if stored. */
  let reserved = 0

  const pathOf = (digest: string) => path.join(blobsDir, digestOf(sha256Of(digest)))

  const stat = (digest: string) =>
    Effect.sync(() => Option.map(Option.fromNullable(index.get(sha256Of(digest))), toInfo))

  const has = (digest: string) =>
    Effect.sync(() => {
      const hex = sha256Of(digest)
      return index.get(hex) !== undefined && fs.existsSync(pathOf(hex))
    })

  const remove = (hex: string) =>
    Effect.sync(() => {
      index.remove(hex)
      fs.rmSync(pathOf(hex), { force: true })
    })

  /** Blobs that may go: not pinned, not in use by a live process, least recently used first. */
  const evictable = () => index.all().filter((row) => !row.pinned && !index.inUse(row.hex))

  /**
   * Evicts least recently used blobs until `incoming` more bytes fit under the cap. With `mustFit`, when
   * they cannot fit even after every evictable blob went, it evicts nothing and fails with BlobStoreFull;
   * `ownReservation` is what the caller reserved for these very bytes (not counted twice).
   */
  const makeRoom = (
    incoming: number,
    options: { readonly mustFit?: boolean | undefined; readonly ownReservation?: number } = {}
  ) =>
    Effect.gen(function*() {
      const mustFit = options.mustFit === true
      let total = index.totals().bytes + reserved - (options.ownReservation ?? 0)
      const candidates = evictable()
      if (mustFit) {
        const evictableBytes = candidates.reduce((sum, row) => sum + row.size, 0)
        if (total - evictableBytes + incoming > maxBytes) {
          return yield* Effect.fail(new BlobStoreFull({ incoming, held: total - evictableBytes, maxBytes }))
        }
      }
      if (incoming > maxBytes) {
        return yield* Effect.fail(
          new BlobStoreError({
            reason:
              `a blob of ${incoming} bytes is larger than the cache cap of ${maxBytes} bytes (raise cache.maxSize)`
          })
        )
      }
      const evicted: Array<BlobInfo> = []
      if (total + incoming <= maxBytes) return evicted
      for (const row of candidates) {
        if (total + incoming <= maxBytes) break
        yield* remove(row.hex)
        evicted.push(toInfo(row))
        total -= row.size
      }
      return evicted
    })

  /** Moves a verified file into place and indexes it with its IPFS layout. */
  const install = (
    file: string,
    sha256: string,
    layout: UnixFsLayout,
    room: { readonly mustFit?: boolean; readonly ownReservation?: number } = {}
  ) =>
    Effect.gen(function*() {
      yield* makeRoom(layout.size, room)
      const target = pathOf(sha256)
      yield* Effect.try({
        try: () => moveIntoPlaceSync(file, target),
        catch: ioError
      })
      const now = Date.now()
      index.add({ hex: sha256, size: layout.size, cid: layout.root, addedAt: now }, blocksOf(layout))
      return toInfo(index.get(sha256)!)
    })

  const check = (expected: Expected, sha256: string, size: number) => {
    if (expected.size !== undefined && expected.size !== size) {
      return Effect.fail(new BlobMismatch({ what: "size", expected: String(expected.size), actual: String(size) }))
    }
    if (expected.sha256 !== undefined && sha256Of(expected.sha256) !== sha256) {
      return Effect.fail(new BlobMismatch({ what: "sha256", expected: sha256Of(expected.sha256), actual: sha256 }))
    }
    return Effect.void
  }

  /**
   * Streams bytes into the store. Nothing is visible under the digest until every byte is on disk and
   * the hash (and `expected`, when given) matched; a failure leaves no trace.
   */
  const put = <E>(bytes: Stream.Stream<Uint8Array, E>, expected: Expected = {}) =>
    Effect.gen(function*() {
      if (expected.sha256 !== undefined && !isSha256(sha256Of(expected.sha256))) {
        return yield* Effect.fail(new BlobStoreError({ reason: `invalid sha256 ${expected.sha256}` }))
      }
      const limit = Math.min(expected.size ?? Infinity, expected.atMost ?? Infinity)
      const mustFit = expected.mustFit === true
      const reservation = mustFit && Number.isFinite(limit) ? limit : 0
      const room = expected.size !== undefined || reservation > 0
        ? makeRoom(reservation > 0 ? reservation : limit, { mustFit })
        : Effect.void
      const temporary = path.join(tmpDir, `${process.pid}-${crypto.randomBytes(8).toString("hex")}`)
      const receive = Effect.acquireUseRelease(
        Effect.tryPromise({ try: () => fs.promises.open(temporary, "wx"), catch: ioError }),
        (handle) =>
          Effect.gen(function*() {
            const hash = crypto.createHash("sha256")
            const builder = UnixFsBuilder.make()
            let size = 0
            yield* Stream.runForEach(bytes, (chunk): Effect.Effect<unknown, BlobTooLarge | BlobStoreError> => {
              // Past the bound, nothing more is written: the sender is cut off at the first extra byte.
              if (size + chunk.length > limit) return Effect.fail(new BlobTooLarge({ limit }))
              hash.update(chunk)
              builder.update(chunk)
              size += chunk.length
              return Effect.tryPromise({ try: () => handle.write(chunk), catch: ioError })
            })
            yield* Effect.tryPromise({ try: () => handle.sync(), catch: ioError })
            const sha256 = hash.digest("hex")
            yield* check(expected, sha256, size)
            const existing = index.get(sha256)
            if (existing !== undefined && fs.existsSync(pathOf(sha256))) {
              index.touch(sha256, Date.now())
              return toInfo(index.get(sha256)!)
            }
            return yield* install(temporary, sha256, builder.finish(), { mustFit, ownReservation: reservation })
          }),
        (handle) =>
          Effect.promise(() => handle.close().catch(() => undefined)).pipe(
            Effect.zipRight(Effect.sync(() => fs.rmSync(temporary, { force: true })))
          )
      )
      return yield* Effect.acquireUseRelease(
        Effect.zipRight(room, Effect.sync(() => (reserved += reservation))),
        () => receive,
        () => Effect.sync(() => (reserved -= reservation))
      )
    })

  const putFile = (file: string, expected: Expected = {}) =>
    put(Stream.fromAsyncIterable(fs.createReadStream(file, { highWaterMark: READ_CHUNK }), ioError), expected)

  /**
   * Takes over a file whose whole SHA-256 the caller already verified (the downloader hashes while it
   * downloads) and moves it into place; the IPFS layout is read from the file unless the caller has it.
   */
  const adopt = (
    file: string,
    verified: { readonly sha256: string; readonly size: number; readonly layout?: UnixFsLayout | undefined }
  ) =>
    Effect.gen(function*() {
      let layout = verified.layout
      if (layout === undefined) {
        const builder = UnixFsBuilder.make()
        yield* scanFile(file, [(chunk) => builder.update(chunk)])
        layout = builder.finish()
      }
      yield* check({ size: verified.size }, verified.sha256, layout.size)
      if (index.get(verified.sha256) !== undefined && fs.existsSync(pathOf(verified.sha256))) {
        fs.rmSync(file, { force: true })
        return toInfo(index.get(verified.sha256)!)
      }
      return yield* install(file, verified.sha256, layout)
    })

  /** Re-hashes a stored blob; a blob whose bytes changed on disk is removed and reported. */
  const verify = (digest: string) =>
    Effect.gen(function*() {
      const hex = sha256Of(digest)
      if (index.get(hex) === undefined || !fs.existsSync(pathOf(hex))) {
        return yield* Effect.fail(new BlobNotFound({ digest: digestOf(hex) }))
      }
      const hash = crypto.createHash("sha256")
      yield* scanFile(pathOf(hex), [(chunk) => hash.update(chunk)])
      const actual = hash.digest("hex")
      if (actual !== hex) {
        yield* remove(hex)
        return yield* Effect.fail(new BlobMismatch({ what: "sha256", expected: hex, actual }))
      }
      return toInfo(index.get(hex)!)
    })

  /** Holds a blob open for the scope: it cannot be evicted meanwhile, and its last use is now. */
  const use = (digest: string) =>
    Effect.gen(function*() {
      const hex = sha256Of(digest)
      if (index.get(hex) === undefined || !fs.existsSync(pathOf(hex))) {
        return yield* Effect.fail(new BlobNotFound({ digest: digestOf(hex) }))
      }
      if (options.verifyOnUse === true) yield* verify(hex)
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          index.lease(hex)
          index.touch(hex, Date.now())
        }),
        () => Effect.sync(() => index.unlease(hex))
      )
      return pathOf(hex)
    })

  const touch = (digest: string) => Effect.sync(() => index.touch(sha256Of(digest), Date.now()))

  const pin = (digest: string, pinned = true) =>
    Effect.suspend(() => (index.setPinned(sha256Of(digest), pinned)
      ? Effect.void
      : Effect.fail(new BlobNotFound({ digest: digestOf(sha256Of(digest)) })))
    )

  const addRef = (digest: string, ref: string) => Effect.sync(() => index.addRef(sha256Of(digest), ref))
  const removeRef = (digest: string, ref: string) => Effect.sync(() => index.removeRef(sha256Of(digest), ref))
  const refsOf = (digest: string) => Effect.sync(() => index.refsOf(sha256Of(digest)))

  const list = Effect.sync(() => index.all().map(toInfo))

  const summary = Effect.sync(() => {
    const totals = index.totals()
    return {
      root,
      blobs: totals.count,
      bytes: totals.bytes,
      maxBytes,
      pinned: index.all().filter((row) => row.pinned).length
    }
  })

  const removeWhere = (keep: (row: BlobRow) => boolean) =>
    Effect.gen(function*() {
      const removed: Array<BlobInfo> = []
      for (const row of evictable()) {
        if (keep(row)) continue
        yield* remove(row.hex)
        removed.push(toInfo(row))
      }
      return removed
    })

  /** Removes every blob not used since `olderThanMs` ago (all of them without it), except pinned or in use. */
  const clear = (olderThanMs?: number) => {
    const cutoff = olderThanMs === undefined ? Infinity : Date.now() - olderThanMs
    return removeWhere((row) => row.lastUsed >= cutoff)
  }

  /** Removes blobs no manifest refers to, except pinned or in use. */
  const prune = Effect.suspend(() => {
    const referenced = index.referenced()
    return removeWhere((row) => referenced.has(row.hex))
  })

  /** The bytes of one IPFS block held here: a raw leaf (a slice of a blob) or an internal DAG node. */
  const block = (cid: string) =>
    Effect.gen(function*() {
      const location = index.block(cid)
      if (location === undefined) return Option.none<Uint8Array>()
      if (location.kind === "node") return Option.some(location.bytes)
      const bytes = yield* Effect.tryPromise({
        try: async () => {
          const handle = await fs.promises.open(pathOf(location.hex), "r")
          try {
            const buffer = Buffer.allocUnsafe(location.length)
            const { bytesRead } = await handle.read(buffer, 0, location.length, location.offset)
            return new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead)
          } finally {
            await handle.close()
          }
        },
        catch: ioError
      })
      return Option.some(bytes)
    })

  /** Which stored blob has this root CID. */
  const byCid = (cid: string) => Effect.sync(() => Option.map(Option.fromNullable(index.byCid(cid)), toInfo))

  return {
    root,
    partialDir,
    maxBytes,
    pathOf,
    stat,
    has,
    put,
    putFile,
    adopt,
    verify,
    use,
    touch,
    pin,
    addRef,
    removeRef,
    refsOf,
    list,
    summary,
    clear,
    prune,
    makeRoom,
    block,
    byCid,
    /** Moves whenever the store's index changes (a blob added, removed, used...), in any process. */
    changeMark: () => index.changeMark(),
    remove: (digest: string) => remove(sha256Of(digest))
  } as const
}

export type BlobStoreService = ReturnType<typeof makeStore>

export class BlobStore extends Context.Tag("edge-net/BlobStore")<BlobStore, BlobStoreService>() {
  static readonly layer = (options: BlobStoreOptions) =>
    Layer.scoped(
      BlobStore,
      Effect.acquireRelease(
        Effect.try({ try: () => openBlobIndex(path.join(options.root, "index.db")), catch: ioError }),
        (index) => Effect.sync(() => index.close())
      ).pipe(Effect.map((index) => makeStore(options, index)))
    )
}
