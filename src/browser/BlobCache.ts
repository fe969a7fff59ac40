/**
 * The page's model cache in IndexedDB: verified blobs by SHA-256 and the manifests that list them,
 * under a size cap with least-recently-used eviction. Only the ModelLoader writes blobs, and only
 * after they verified; a model counts as cached when its manifest and every blob it lists are here.
 */
import { requestDone, transactionDone } from "./IndexedDb.js"

/** One cached model: its manifest's id and version, its bytes, and when the page last used it. */
export interface CachedModel {
  readonly id: string
  readonly version: string
  readonly bytes: number
  readonly lastUsed: number
}

interface BlobMeta {
  readonly sha256: string
  readonly size: number
  readonly lastUsed: number
}

interface ManifestRecord {
  readonly key: string
  readonly id: string
  readonly version: string
  /** The manifest exactly as its publisher signed it. */
  readonly manifest: unknown
  /** The SHA-256 of every artifact it lists. */
  readonly blobs: ReadonlyArray<string>
  readonly lastUsed: number
}

const META = "blob-meta"
const BYTES = "blob-bytes"
const MANIFESTS = "manifests"

/** Thrown when IndexedDB refuses (private mode, quota) or a blob is larger than the whole cache. */
export class BlobCacheError extends Error {
  override readonly name = "BlobCacheError"
}

const failure = (reason: string) => new BlobCacheError(reason)
const done = <T>(request: IDBRequest<T>): Promise<T> => requestDone(request, failure)
const committed = (transaction: IDBTransaction): Promise<void> => transactionDone(transaction, failure)

const openDatabase = (name: string): Promise<IDBDatabase> => {
  const request = indexedDB.open(name, 1)
  request.onupgradeneeded = () => {
    const db = request.result
    db.createObjectStore(META, { keyPath: "sha256" })
    db.createObjectStore(BYTES)
    db.createObjectStore(MANIFESTS, { keyPath: "key" })
  }
  return done(request)
}

/** `id@version`, the key of a manifest. */
export const manifestKey = (id: string, version: string) => `${id}@${version}`

/** The IndexedDB cache of one page origin (`databaseName` separates caches, e.g. per test). */
export class BlobCache {
  private constructor(private readonly db: IDBDatabase, readonly maxBytes: number) {}

  /** Opens (or creates) the cache; `maxBytes` caps the blobs it keeps. */
  static async open(databaseName: string, maxBytes: number): Promise<BlobCache> {
    if (typeof indexedDB === "undefined") throw new BlobCacheError("this page has no IndexedDB")
    return new BlobCache(await openDatabase(databaseName), maxBytes)
  }

  /** A blob's bytes, marked as just used; undefined when it is not cached. */
  async getBlob(sha256: string): Promise<Uint8Array | undefined> {
    const transaction = this.db.transaction([META, BYTES], "readwrite")
    const meta = await done<BlobMeta | undefined>(transaction.objectStore(META).get(sha256))
    const bytes = await done<unknown>(transaction.objectStore(BYTES).get(sha256))
    if (meta === undefined || !(bytes instanceof Uint8Array)) return undefined
    transaction.objectStore(META).put({ ...meta, lastUsed: Date.now() } satisfies BlobMeta)
    await committed(transaction)
    return bytes
  }

  /** Whether every one of these blobs is cached. */
  async hasBlobs(digests: ReadonlyArray<string>): Promise<boolean> {
    const store = this.db.transaction(META, "readonly").objectStore(META)
    const found = await Promise.all(digests.map((digest) => done(store.count(digest))))
    return found.every((count) => count > 0)
  }

  /**
   * Stores a verified blob, first evicting the least recently used blobs (and the manifests that
   * list them) until it fits under the cap. `keep` names blobs not to evict (the rest of the model
   * being stored).
   */
  async putBlob(sha256: string, bytes: Uint8Array, keep: ReadonlySet<string> = new Set()): Promise<void> {
    if (bytes.length > this.maxBytes) {
      throw new BlobCacheError(
        `a blob of ${bytes.length} bytes is larger than the whole cache (${this.maxBytes} bytes)`
      )
    }
    await this.evictFor(bytes.length, new Set([...keep, sha256]))
    const transaction = this.db.transaction([META, BYTES], "readwrite")
    transaction.objectStore(BYTES).put(bytes, sha256)
    transaction.objectStore(META).put({ sha256, size: bytes.length, lastUsed: Date.now() } satisfies BlobMeta)
    await committed(transaction)
  }

  /** Records a manifest whose blobs are all stored. */
  async putManifest(id: string, version: string, manifest: unknown, blobs: ReadonlyArray<string>): Promise<void> {
    const transaction = this.db.transaction(MANIFESTS, "readwrite")
    const record: ManifestRecord = { key: manifestKey(id, version), id, version, manifest, blobs, lastUsed: Date.now() }
    transaction.objectStore(MANIFESTS).put(record)
    await committed(transaction)
  }

  /** The cached manifest of `id` (at `version`, or the one used last), if all its blobs are here. */
  async getManifest(
    id: string,
    version?: string
  ): Promise<{ readonly version: string; readonly manifest: unknown } | undefined> {
    const candidates = (await this.manifests()).filter((record) =>
      record.id === id && (version === undefined || record.version === version)
    ).sort((a, b) => b.lastUsed - a.lastUsed)
    for (const record of candidates) {
      if (await this.hasBlobs(record.blobs)) return { version: record.version, manifest: record.manifest }
    }
    return undefined
  }

  /** Every model whose manifest and blobs are all cached. */
  async models(): Promise<Array<CachedModel>> {
    const sizes = new Map((await this.blobMetas()).map((meta) => [meta.sha256, meta.size]))
    return (await this.manifests())
      .filter((record) => record.blobs.every((digest) => sizes.has(digest)))
      .map((record) => ({
        id: record.id,
        version: record.version,
        bytes: record.blobs.reduce((sum, digest) => sum + (sizes.get(digest) ?? 0), 0),
        lastUsed: record.lastUsed
      }))
  }

  /** Bytes of all cached blobs. */
  async usedBytes(): Promise<number> {
    return (await this.blobMetas()).reduce((sum, meta) => sum + meta.size, 0)
  }

  /** Removes the manifests of `id` (every version) and the blobs no other cached manifest lists. */
  async clearModel(id: string): Promise<void> {
    const all = await this.manifests()
    const gone = all.filter((record) => record.id === id)
    const kept = new Set(all.filter((record) => record.id !== id).flatMap((record) => record.blobs))
    const transaction = this.db.transaction([META, BYTES, MANIFESTS], "readwrite")
    for (const record of gone) {
      transaction.objectStore(MANIFESTS).delete(record.key)
      for (const digest of record.blobs) {
        if (kept.has(digest)) continue
        transaction.objectStore(META).delete(digest)
        transaction.objectStore(BYTES).delete(digest)
      }
    }
    await committed(transaction)
  }

  /** Empties the cache. */
  async clearAll(): Promise<void> {
    const transaction = this.db.transaction([META, BYTES, MANIFESTS], "readwrite")
    for (const store of [META, BYTES, MANIFESTS]) transaction.objectStore(store).clear()
    await committed(transaction)
  }

  /** Closes the database connection. */
  close(): void {
    this.db.close()
  }

  private async manifests(): Promise<Array<ManifestRecord>> {
    return done<Array<ManifestRecord>>(this.db.transaction(MANIFESTS, "readonly").objectStore(MANIFESTS).getAll())
  }

  private async blobMetas(): Promise<Array<BlobMeta>> {
    return done<Array<BlobMeta>>(this.db.transaction(META, "readonly").objectStore(META).getAll())
  }

  /** Evicts least recently used blobs (never those in `keep`) until `incoming` more bytes fit. */
  private async evictFor(incoming: number, keep: ReadonlySet<string>): Promise<void> {
    const metas = (await this.blobMetas()).sort((a, b) => a.lastUsed - b.lastUsed)
    let used = metas.reduce((sum, meta) => sum + meta.size, 0)
    const evicted = new Set<string>()
    for (const meta of metas) {
      if (used + incoming <= this.maxBytes) break
      if (keep.has(meta.sha256)) continue
      evicted.add(meta.sha256)
      used -= meta.size
    }
    if (used + incoming > this.maxBytes) {
      throw new BlobCacheError(
        `the cache (${this.maxBytes} bytes) cannot hold ${incoming} more bytes beside the model being stored`
      )
    }
    if (evicted.size === 0) return
    const stale = (await this.manifests()).filter((record) => record.blobs.some((digest) => evicted.has(digest)))
    const transaction = this.db.transaction([META, BYTES, MANIFESTS], "readwrite")
    for (const digest of evicted) {
      transaction.objectStore(META).delete(digest)
      transaction.objectStore(BYTES).delete(digest)
    }
    for (const record of stale) transaction.objectStore(MANIFESTS).delete(record.key)
    await committed(transaction)
  }
}
