/**
 * Pulls models into the page: the manifest from a node's registry, checked in the page (its schema,
 * its expiry, an Ed25519 signature by a trusted key), then every artifact from IndexedDB or else from
 * the node, verified (size, SHA-256, CID) before it is cached or handed to anyone.
 */
import { Either } from "effect"
import { type ModelManifest, parseManifest } from "../content/Manifest.js"
import { BlobCache, type CachedModel } from "./BlobCache.js"
import { checkSignatures } from "./Signatures.js"
import { artifactProblem, sha256Hex } from "./Verify.js"

export type { CachedModel } from "./BlobCache.js"

/** How a ModelLoader reaches its node and what it trusts. */
export interface ModelLoaderOptions {
  /** The node whose registry and blobs to pull from; default: the page's own origin. */
  readonly registry?: string | undefined
  /** Ed25519 public keys (64 hex characters): a manifest loads only with a valid signature by one of them. */
  readonly trustedKeys: ReadonlyArray<string>
  /** The most bytes of blobs the IndexedDB cache keeps (default 512 MiB); least recently used go first. */
  readonly maxCacheBytes?: number | undefined
  /** The IndexedDB database (default `edge-net-models`). */
  readonly databaseName?: string | undefined
}

/** Where a load is: reported to `onProgress` and as a `progress` event (CustomEvent) of the loader. */
export interface LoadProgress {
  readonly id: string
  readonly version: string
  /** The artifact (`model`, `tokenizer`, ...) being read; empty before the first. */
  readonly artifact: string
  readonly phase: "manifest" | "download" | "cache" | "verify" | "done"
  /** Bytes of the whole model read so far, from the node or the cache. */
  readonly loadedBytes: number
  readonly totalBytes: number
}

/** A verified model: its signed manifest and its artifacts' bytes by artifact name. */
export interface LoadedModel {
  readonly id: string
  readonly version: string
  readonly manifest: ModelManifest
  readonly files: ReadonlyMap<string, Uint8Array>
  /** True when every artifact came from IndexedDB (no blob was downloaded). */
  readonly fromCache: boolean
  /** Key ids of the trusted keys that signed it. */
  readonly signedBy: ReadonlyArray<string>
}

/** A load that failed: the one-line reason says which model, which artifact and what was wrong. */
export class ModelLoaderError extends Error {
  override readonly name = "ModelLoaderError"
}

const DEFAULT_CACHE_BYTES = 512 * 1024 * 1024
const HEX_KEY = /^[0-9a-f]{64}$/

/** Loads models into the page through an IndexedDB cache. */
export class ModelLoader extends EventTarget {
  private constructor(
    private readonly cache: BlobCache,
    private readonly registry: string,
    private readonly trustedKeys: ReadonlySet<string>
  ) {
    super()
  }

  /** Opens the cache and checks the options; a bad trusted key is refused here, not at the first load. */
  static async create(options: ModelLoaderOptions): Promise<ModelLoader> {
    const bad = options.trustedKeys.find((key) => !HEX_KEY.test(key))
    if (bad !== undefined) {
      throw new ModelLoaderError(`trusted key "${bad.slice(0, 80)}" is not an Ed25519 public key in 64 hex characters`)
    }
    if (options.trustedKeys.length === 0) throw new ModelLoaderError("trustedKeys is empty: no manifest could load")
    const maxBytes = options.maxCacheBytes ?? DEFAULT_CACHE_BYTES
    if (!(maxBytes > 0)) throw new ModelLoaderError(`maxCacheBytes must be more than 0 (not ${maxBytes})`)
    const registry = options.registry ?? globalThis.location.origin
    const cache = await BlobCache.open(options.databaseName ?? "edge-net-models", maxBytes)
    return new ModelLoader(cache, registry.replace(/\/+$/, ""), new Set(options.trustedKeys))
  }

  /** Loads `id` (its latest version, or `version`): from the cache where it can, verified either way. */
  async load(
    id: string,
    options: { readonly version?: string | undefined; readonly onProgress?: (progress: LoadProgress) => void } = {}
  ): Promise<LoadedModel> {
    const report = (progress: LoadProgress) => {
      options.onProgress?.(progress)
      this.dispatchEvent(new CustomEvent<LoadProgress>("progress", { detail: progress }))
    }
    const manifest = await this.manifestOf(id, options.version)
    const name = `${manifest.id}@${manifest.version}`
    const signedBy = this.trustCheck(manifest, name)
    const artifacts = Object.entries(manifest.artifacts)
    const totalBytes = artifacts.reduce((sum, [, artifact]) => sum + artifact.size, 0)
    const digests = artifacts.map(([, artifact]) => artifact.sha256)
    const files = new Map<string, Uint8Array>()
    let loadedBytes = 0
    let downloaded = false
    const at = (artifact: string, phase: LoadProgress["phase"]) =>
      report({ id: manifest.id, version: manifest.version, artifact, phase, loadedBytes, totalBytes })
    at("", "manifest")
    for (const [artifactName, artifact] of artifacts) {
      const cached = await this.cache.getBlob(artifact.sha256)
      if (cached !== undefined && (await sha256Hex(cached)) === artifact.sha256) {
        loadedBytes += cached.length
        files.set(artifactName, cached)
        at(artifactName, "cache")
        continue
      }
      const base = loadedBytes
      const bytes = await this.download(artifact.sha256, artifact.size, name, artifactName, (received) => {
        loadedBytes = base + received
        at(artifactName, "download")
      })
      at(artifactName, "verify")
      const problem = await artifactProblem(bytes, artifact)
      if (problem !== undefined) {
        throw new ModelLoaderError(
          `artifact ${artifactName} of ${name} (sha256-${artifact.sha256}) was refused and not cached: ${problem}`
        )
      }
      await this.cache.putBlob(artifact.sha256, bytes, new Set(digests))
      downloaded = true
      loadedBytes = base + bytes.length
      files.set(artifactName, bytes)
    }
    await this.cache.putManifest(manifest.id, manifest.version, manifest, digests)
    at("", "done")
    return { id: manifest.id, version: manifest.version, manifest, files, fromCache: !downloaded, signedBy }
  }

  /** Whether `id` (any version, or `version`) is in the cache, manifest and every blob. */
  async isCached(id: string, version?: string): Promise<boolean> {
    return (await this.cache.getManifest(id, version)) !== undefined
  }

  /** Every model in the cache, with its bytes and when it was last used. */
  getCachedModels(): Promise<Array<CachedModel>> {
    return this.cache.models()
  }

  /** Removes every version of `id` and the blobs no other cached model shares. */
  clearCache(id: string): Promise<void> {
    return this.cache.clearModel(id)
  }

  /** Empties the cache. */
  clearAllCache(): Promise<void> {
    return this.cache.clearAll()
  }

  /** Bytes the cache holds now. */
  cachedBytes(): Promise<number> {
    return this.cache.usedBytes()
  }

  /** Closes the cache's database. */
  close(): void {
    this.cache.close()
  }

  /** The node's manifest, or the cached one when the node cannot be reached (offline use). */
  private async manifestOf(id: string, version: string | undefined): Promise<ModelManifest> {
    const query = version === undefined ? "" : `?version=${encodeURIComponent(version)}`
    const url = `${this.registry}/v1/models/${encodeURIComponent(id)}${query}`
    let response: Response
    try {
      response = await fetch(url, { headers: { accept: "application/json" } })
    } catch (cause) {
      const cached = await this.cache.getManifest(id, version)
      if (cached === undefined) {
        throw new ModelLoaderError(`cannot reach ${this.registry} for ${id}, and it is not cached: ${String(cause)}`)
      }
      return decoded(cached.manifest, `the cached manifest of ${id}`)
    }
    const body: unknown = await response.json().catch(() => undefined)
    if (!response.ok) {
      const reason = typeof body === "object" && body !== null && "error" in body ? String(body.error) : ""
      throw new ModelLoaderError(`${id}: the registry answered ${response.status} ${reason || response.statusText}`)
    }
    return decoded(body, `the manifest of ${id} from ${this.registry}`)
  }

  private trustCheck(manifest: ModelManifest, name: string): Array<string> {
    if (Date.parse(manifest.expiresAt) <= Date.now()) {
      throw new ModelLoaderError(`the manifest of ${name} expired at ${manifest.expiresAt}`)
    }
    const check = checkSignatures(manifest)
    if (check.invalid.length > 0) {
      throw new ModelLoaderError(`the manifest of ${name} has a bad signature by ${check.invalid.join(", ")}`)
    }
    const trusted = check.valid.filter((_, index) => this.trustedKeys.has(check.validKeys[index] ?? ""))
    if (trusted.length === 0) {
      throw new ModelLoaderError(
        `the manifest of ${name} is not signed by a trusted key (signed by ${check.valid.join(", ") || "no one"})`
      )
    }
    return trusted
  }

  private async download(
    sha256: string,
    size: number,
    name: string,
    artifact: string,
    onBytes: (received: number) => void
  ): Promise<Uint8Array> {
    const url = `${this.registry}/v1/blobs/sha256-${sha256}`
    const response = await fetch(url).catch((cause: unknown) => {
      throw new ModelLoaderError(`artifact ${artifact} of ${name}: cannot reach ${url}: ${String(cause)}`)
    })
    if (!response.ok || response.body === null) {
      throw new ModelLoaderError(`artifact ${artifact} of ${name}: ${url} answered ${response.status}`)
    }
    // Never more than the manifest's size plus one byte: a longer body fails verification anyway.
    const bytes = new Uint8Array(size + 1)
    let received = 0
    const reader = response.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      if (received + value.length > bytes.length) {
        await reader.cancel()
        throw new ModelLoaderError(
          `artifact ${artifact} of ${name} (sha256-${sha256}) was refused and not cached: it is longer than the manifest's ${size} bytes`
        )
      }
      bytes.set(value, received)
      received += value.length
      onBytes(received)
    }
    return bytes.subarray(0, received)
  }
}

const decoded = (json: unknown, source: string): ModelManifest =>
  Either.getOrThrowWith(parseManifest(json), (error) => new ModelLoaderError(`${source}: ${error.message}`))
