/**
 * The SDK's model loader (seed section 7): models by id and version from the local cache, pulled
 * from a registry when they are not there, opened for inference and kept in memory under a limit
 * (a number of models and a number of bytes), the least recently used idle one evicted first.
 *
 * A loaded model is lent to a scope: while any scope holds it, it stays open; once released it
 * may be evicted. Cache management (`isCached`, `getCachedModels`, `clearCache`, `clearAllCache`)
 * and `checkCompatibility` against the manifest's `requirements` work without loading anything.
 */
import { Context, Effect, Exit, Layer, Option, Scope } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Inference } from "../compute/inference/Inference.js"
import type { ModelHandle, ModelSource } from "../compute/inference/Model.js"
import type { Adapter } from "../compute/lora/AdapterFile.js"
import { loadLocalAdapter } from "../compute/lora/LocalAdapters.js"
import { BlobStore } from "../content/BlobStore.js"
import type { Progress } from "../content/Downloader.js"
import { listManifests, readManifest, removeManifest } from "../content/LocalModels.js"
import type { ModelManifest } from "../content/Manifest.js"
import { manifestBytes, versionsAmong } from "../content/Manifest.js"
import type { ModelsConfig } from "../content/ModelsConfig.js"
import { pull } from "../content/Pull.js"
import { TrustStore } from "../content/TrustStore.js"
import { jsonDecoderSync, JsonObject } from "../domain/JsonText.js"
import { type ModelCatalog, ModelLoaderError, parseModelReference } from "./ModelCatalog.js"

export { type ModelCatalog, ModelLoaderError, parseModelReference } from "./ModelCatalog.js"

/** What a load is doing: downloading (pull progress), opening the session, or done. */
export type LoadProgress =
  | { readonly phase: "download"; readonly id: string; readonly progress: Progress }
  | { readonly phase: "open"; readonly id: string; readonly version: string }
  | {
    readonly phase: "ready"
    readonly id: string
    readonly version: string
    /** Whether it was already open in memory (nothing read from disk). */
    readonly resident: boolean
  }

export interface LoadOptions {
  readonly version?: string | undefined
  /** A LoRA adapter on this machine (`id[@version]`), made for this exact base model. */
  readonly adapter?: string | undefined
  /** Open the model with adapter branches of this rank, so adapters up to it swap per call. */
  readonly adapterRank?: number | undefined
  /**
   * The model's manifest, already read from the catalog by the caller (a node resolves it to answer
   * "not found" itself): the loader opens it without asking the catalog again.
   */
  readonly manifest?: ModelManifest | undefined
  readonly onProgress?: ((progress: LoadProgress) => void) | undefined
}

/** An open model, lent to the scope that loaded it. */
export interface LoadedModel {
  readonly id: string
  readonly version: string
  readonly manifest: ModelManifest
  readonly handle: ModelHandle
  /** The adapter asked for at load, checked against this base model. */
  readonly adapter: Adapter | undefined
  /** Size of the model file held in memory. */
  readonly bytes: number
}

export interface CachedModel {
  readonly id: string
  readonly version: string
  readonly name: string
  readonly type: string
  readonly quantization: string | undefined
  /** Sum of the artifacts' sizes. */
  readonly bytes: number
}

export interface ResidentModel {
  readonly id: string
  readonly version: string
  readonly bytes: number
  /** Scopes holding it now: a model in use is never evicted. */
  readonly users: number
  readonly adapterRank: number | undefined
}

export interface CompatibilityReport {
  readonly id: string
  readonly version: string
  readonly compatible: boolean
  /** Why not, one line each (empty when compatible). */
  readonly reasons: ReadonlyArray<string>
}

export interface ClearReport {
  readonly versions: ReadonlyArray<string>
  readonly blobsRemoved: number
  readonly bytesFreed: number
}

export type EvictionPolicy = "lru" | "fifo"

/** The models cache: manifests saved by pulls as `manifests/<id>/<version>.json` under `root`. */
export const cacheCatalog = (root: string): ModelCatalog => {
  const versionsOf = (id: string) => {
    const dir = path.join(root, "manifests", id)
    if (!fs.existsSync(dir)) return []
    return versionsAmong(fs.readdirSync(dir).filter((name) => name.endsWith(".json")).map((name) => name.slice(0, -5)))
  }
  const asLoaderError = (error: { readonly message: string }) => new ModelLoaderError({ reason: error.message })
  return {
    name: `the cache at ${root}`,
    manifest: (id, version) =>
      Effect.suspend(() => {
        const versions = versionsOf(id)
        const chosen = version ?? versions[versions.length - 1]
        return chosen === undefined || !versions.includes(chosen)
          ? Effect.succeed(Option.none())
          : Effect.map(Effect.mapError(readManifest(root, id, chosen), asLoaderError), Option.some)
      }),
    list: () => Effect.mapError(listManifests(root), asLoaderError),
    forget: (id, version) => removeManifest(root, id, version),
    versions: (id) => Effect.sync(() => versionsOf(id))
  }
}

export interface ModelLoaderOptions {
  /** Models kept open at once (default 3). */
  readonly maxModels?: number | undefined
  /** Bytes of model files kept open at once (default: no limit beyond `maxModels`). */
  readonly maxBytes?: number | undefined
  /** Which idle model goes first: least recently used (default) or first loaded. */
  readonly eviction?: EvictionPolicy | undefined
  /** Where to pull a model that is not cached, with the config's sources and trust (none: cache only). */
  readonly pullFrom?: { readonly registry: string; readonly config: ModelsConfig } | undefined
  /** Where manifests are found (default: the models cache in the BlobStore's root). */
  readonly catalog?: ModelCatalog | undefined
}

export interface ModelLoaderService {
  /** Opens a model (pulling it first when it is not cached and a registry is set), lent to the scope. */
  readonly load: (
    id: string,
    options?: LoadOptions
  ) => Effect.Effect<LoadedModel, ModelLoaderError, Scope.Scope>
  readonly isCached: (id: string, version?: string) => Effect.Effect<boolean>
  /** The manifest of a model the catalog holds (the given version, else the highest). */
  readonly getManifest: (id: string, version?: string) => Effect.Effect<ModelManifest, ModelLoaderError>
  /** Every cached model's highest version. */
  readonly getCachedModels: () => Effect.Effect<ReadonlyArray<CachedModel>, ModelLoaderError>
  /** Pulls each model into the cache without opening it; returns the versions pulled. */
  readonly preload: (
    ids: ReadonlyArray<string>,
    onProgress?: (progress: LoadProgress) => void
  ) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly version: string }>, ModelLoaderError>
  /** Removes every cached version of a model (and the blobs no other model uses); closes it if idle. */
  readonly clearCache: (id: string) => Effect.Effect<ClearReport, ModelLoaderError>
  readonly clearAllCache: () => Effect.Effect<ClearReport, ModelLoaderError>
  /** Checks the manifest's `requirements` against this machine and runtime. */
  readonly checkCompatibility: (id: string, version?: string) => Effect.Effect<CompatibilityReport, ModelLoaderError>
  /** The models open in memory now. */
  readonly resident: () => Effect.Effect<ReadonlyArray<ResidentModel>>
  /** Closes every idle open model. */
  readonly unloadIdle: () => Effect.Effect<number>
  /** A stored adapter (`id[@version]`), checked (checksum, signature when signed). */
  readonly adapter: (reference: string) => Effect.Effect<Adapter, ModelLoaderError>
  /** The cache's directory. */
  readonly cacheRoot: string
  /** A cached model's ONNX file, read from the store (for training on it). */
  readonly modelBytes: (manifest: ModelManifest) => Effect.Effect<Uint8Array, ModelLoaderError>
}

const decodeJson = jsonDecoderSync(JsonObject)

/** The files a manifest names, read from the blob store: the ONNX model, its tokenizer and configs. */
export const modelSourceOf = (
  store: Pick<BlobStore["Type"], "pathOf">,
  manifest: ModelManifest
): Effect.Effect<ModelSource, ModelLoaderError> =>
  Effect.try({
    try: (): ModelSource => {
      const byFile = new Map(
        Object.values(manifest.artifacts).map((artifact) => [artifact.filename, store.pathOf(artifact.sha256)])
      )
      const model = [...byFile.keys()].find((name) => name.endsWith(".onnx"))
      const tokenizer = byFile.get("tokenizer.json")
      if (model === undefined || tokenizer === undefined) {
        throw new ModelLoaderError({
          reason: `${manifest.id}@${manifest.version} has no ONNX model and tokenizer.json to run`
        })
      }
      const json = (name: string) => {
        const file = byFile.get(name)
        return file === undefined ? undefined : decodeJson(fs.readFileSync(file, "utf8"), file)
      }
      return {
        name: `${manifest.id}@${manifest.version}`,
        model: new Uint8Array(fs.readFileSync(byFile.get(model)!)),
        tokenizer: json("tokenizer.json"),
        tokenizerConfig: json("tokenizer_config.json"),
        config: json("config.json"),
        generationConfig: json("generation_config.json"),
        // Adapters made for the model this one was optimized from run on it (Manifest.adapterBaseDigestOf).
        ...(manifest.optimization?.baseModel === undefined
          ? {}
          : { baseModelDigest: manifest.optimization.baseModel.sha256 })
      }
    },
    catch: (cause) =>
      cause instanceof ModelLoaderError
        ? cause
        : new ModelLoaderError({
          reason: `cannot read ${manifest.id}@${manifest.version} from the cache: ${
            cause instanceof Error ? cause.message : String(cause)
          }`
        })
  })

interface Entry {
  readonly key: string
  readonly id: string
  readonly version: string
  readonly adapterRank: number | undefined
  readonly manifest: ModelManifest
  readonly handle: ModelHandle
  readonly bytes: number
  readonly scope: Scope.CloseableScope
  readonly loadedAt: number
  users: number
  lastUsed: number
}

const simdAvailable = () => {
  // The smallest module that uses a v128 instruction: it compiles only where WebAssembly has SIMD.
  const probe = new Uint8Array([
    0,
    97,
    115,
    109,
    1,
    0,
    0,
    0,
    1,
    5,
    1,
    96,
    0,
    1,
    123,
    3,
    2,
    1,
    0,
    10,
    10,
    1,
    8,
    0,
    65,
    0,
    253,
    15,
    253,
    98,
    11
  ])
  const wasm = (globalThis as { WebAssembly?: { validate: (bytes: Uint8Array) => boolean } }).WebAssembly
  try {
    return wasm?.validate(probe) === true
  } catch {
    return false
  }
}

export const makeModelLoader = (options: ModelLoaderOptions = {}) =>
  Effect.gen(function*() {
    const inference = yield* Inference
    const store = yield* BlobStore
    const trust = yield* TrustStore
    const maxModels = Math.max(1, options.maxModels ?? 3)
    const maxBytes = options.maxBytes ?? Infinity
    const eviction = options.eviction ?? "lru"
    const root = store.root
    const entries = new Map<string, Entry>()
    // Loads of one model are serialized, so two callers never open it twice.
    const lock = yield* Effect.makeSemaphore(1)

    const fail = (reason: string) => new ModelLoaderError({ reason })
    const asLoaderError = (error: { readonly message: string }) => fail(error.message)

    const catalog = options.catalog ?? cacheCatalog(root)
    const nameOf = (id: string, version: string | undefined) => `${id}${version === undefined ? "" : `@${version}`}`
    const manifestOf = (id: string, version?: string) =>
      Effect.flatMap(catalog.manifest(id, version), (found) =>
        Option.isSome(found)
          ? Effect.succeed(found.value)
          : Effect.fail(fail(`${nameOf(id, version)} is not in ${catalog.name}`)))

    const closeEntry = (entry: Entry) =>
      Effect.suspend(() => {
        entries.delete(entry.key)
        return Scope.close(entry.scope, Exit.void)
      })

    /** Closes idle models, by the policy's order, until the limits hold (with `incoming` still to come). */
    const makeRoom = (incoming: number) =>
      Effect.suspend(() => {
        const idle = [...entries.values()].filter((entry) => entry.users === 0).sort((a, b) =>
          eviction === "lru" ? a.lastUsed - b.lastUsed : a.loadedAt - b.loadedAt
        )
        let count = entries.size + (incoming > 0 ? 1 : 0)
        let bytes = [...entries.values()].reduce((sum, entry) => sum + entry.bytes, 0) + incoming
        const closing: Array<Entry> = []
        for (const entry of idle) {
          if (count <= maxModels && bytes <= maxBytes) break
          closing.push(entry)
          count--
          bytes -= entry.bytes
        }
        return Effect.forEach(closing, closeEntry, { discard: true })
      })

    const pullModel = (id: string, version: string | undefined, onProgress?: (progress: LoadProgress) => void) => {
      const from = options.pullFrom
      if (from === undefined) {
        return Effect.fail(
          fail(`${nameOf(id, version)} is not in ${catalog.name}, and no registry is set to pull it from`)
        )
      }
      return pull(
        {
          id,
          version,
          registry: from.registry,
          ...(onProgress === undefined
            ? {}
            : { onProgress: (progress) => onProgress({ phase: "download", id, progress }) })
        },
        from.config
      ).pipe(
        Effect.provideService(BlobStore, store),
        Effect.provideService(TrustStore, trust),
        Effect.mapError(asLoaderError),
        Effect.map((receipt) => receipt.version)
      )
    }

    const isCached = (id: string, version?: string) =>
      Effect.map(Effect.option(catalog.manifest(id, version)), (found) => Option.isSome(Option.flatten(found)))

    /** The manifest of a cached model, pulled first when it is not cached. */
    const ensureCached = (id: string, version: string | undefined, onProgress?: (progress: LoadProgress) => void) =>
      Effect.flatMap(isCached(id, version), (cached) =>
        cached
          ? manifestOf(id, version)
          : Effect.flatMap(pullModel(id, version, onProgress), (pulled) => manifestOf(id, pulled)))

    const adapter = (reference: string) => {
      const { id, version } = parseModelReference(reference)
      return Effect.mapError(loadLocalAdapter(root, id, version), asLoaderError)
    }

    const release = (entry: Entry) =>
      Effect.suspend(() => {
        entry.users--
        entry.lastUsed = Date.now()
        return entry.users === 0 ? makeRoom(0) : Effect.void
      })

    const load = (reference: string, loadOptions: LoadOptions = {}) =>
      Effect.gen(function*() {
        const parsed = parseModelReference(reference)
        const version = loadOptions.version ?? parsed.version
        const onProgress = loadOptions.onProgress
        const withAdapter = loadOptions.adapter === undefined ? undefined : yield* adapter(loadOptions.adapter)
        const rank = Math.max(loadOptions.adapterRank ?? 0, withAdapter?.weights.rank ?? 0)
        const adapterRank = rank > 0 ? rank : undefined
        const entry = yield* lock.withPermits(1)(Effect.gen(function*() {
          const manifest = loadOptions.manifest ?? (yield* ensureCached(parsed.id, version, onProgress))
          const key = `${manifest.id}@${manifest.version}#${adapterRank ?? 0}`
          const open = entries.get(key)
          if (open !== undefined) {
            open.users++
            open.lastUsed = Date.now()
            onProgress?.({ phase: "ready", id: manifest.id, version: manifest.version, resident: true })
            return open
          }
          onProgress?.({ phase: "open", id: manifest.id, version: manifest.version })
          const source = yield* modelSourceOf(store, manifest)
          yield* makeRoom(source.model.length)
          const scope = yield* Scope.make()
          const handle = yield* inference.loadModel({
            ...source,
            adapterSlots: adapterRank === undefined
              ? undefined
              : { rank: adapterRank, modules: withAdapter?.metadata.targetModules }
          }).pipe(
            Scope.extend(scope),
            Effect.tapError(() => Scope.close(scope, Exit.void)),
            Effect.mapError(asLoaderError)
          )
          for (const artifact of Object.values(manifest.artifacts)) yield* store.touch(artifact.sha256)
          const now = Date.now()
          const created: Entry = {
            key,
            id: manifest.id,
            version: manifest.version,
            adapterRank,
            manifest,
            handle,
            bytes: source.model.length,
            scope,
            loadedAt: now,
            lastUsed: now,
            users: 1
          }
          entries.set(key, created)
          onProgress?.({ phase: "ready", id: manifest.id, version: manifest.version, resident: false })
          return created
        }))
        yield* Effect.addFinalizer(() => release(entry))
        if (withAdapter !== undefined && withAdapter.metadata.baseModelDigest !== entry.handle.baseModelDigest) {
          return yield* Effect.fail(
            fail(
              `adapter ${withAdapter.metadata.id}@${withAdapter.metadata.version} was made for base model ${withAdapter.metadata.baseModel} (sha256 ${withAdapter.metadata.baseModelDigest}), not ${entry.id}@${entry.version} (sha256 ${entry.handle.baseModelDigest})`
            )
          )
        }
        return {
          id: entry.id,
          version: entry.version,
          manifest: entry.manifest,
          handle: entry.handle,
          adapter: withAdapter,
          bytes: entry.bytes
        } satisfies LoadedModel
      })

    const getCachedModels = () =>
      Effect.map(catalog.list(), (manifests) =>
        manifests.map((manifest): CachedModel => ({
          id: manifest.id,
          version: manifest.version,
          name: manifest.name,
          type: manifest.type,
          quantization: manifest.optimization?.quantization,
          bytes: manifestBytes(manifest)
        })))

    const preload = (ids: ReadonlyArray<string>, onProgress?: (progress: LoadProgress) => void) =>
      Effect.forEach(ids, (reference) => {
        const { id, version } = parseModelReference(reference)
        return Effect.map(ensureCached(id, version, onProgress), (manifest) => ({
          id: manifest.id,
          version: manifest.version
        }))
      })

    const clearCache = (id: string) =>
      lock.withPermits(1)(Effect.gen(function*() {
        const forget = catalog.forget
        if (forget === undefined) {
          return yield* Effect.fail(fail(`${catalog.name} does not remove models: ${id} stays`))
        }
        const open = [...entries.values()].filter((entry) => entry.id === id)
        const busy = open.find((entry) => entry.users > 0)
        if (busy !== undefined) {
          return yield* Effect.fail(
            fail(`${busy.id}@${busy.version} is in use by ${busy.users} session(s): dispose them before clearing it`)
          )
        }
        yield* Effect.forEach(open, closeEntry, { discard: true })
        const versions = yield* catalog.versions(id)
        let blobsRemoved = 0
        let bytesFreed = 0
        for (const version of versions) {
          const manifest = yield* manifestOf(id, version)
          const ref = `${manifest.id}@${manifest.version}`
          for (const artifact of Object.values(manifest.artifacts)) {
            yield* store.removeRef(artifact.sha256, ref)
            const refs = yield* store.refsOf(artifact.sha256)
            const info = yield* store.stat(artifact.sha256)
            if (refs.length === 0 && Option.isSome(info) && !info.value.pinned) {
              yield* store.remove(artifact.sha256)
              blobsRemoved++
              bytesFreed += info.value.size
            }
          }
          yield* forget(id, version)
        }
        return { versions, blobsRemoved, bytesFreed } satisfies ClearReport
      }))

    const clearAllCache = () =>
      Effect.gen(function*() {
        const ids = (yield* catalog.list()).map((manifest) => manifest.id).sort()
        const reports = yield* Effect.forEach(ids, clearCache)
        return {
          versions: reports.flatMap((report, i) => report.versions.map((version) => `${ids[i]}@${version}`)),
          blobsRemoved: reports.reduce((sum, report) => sum + report.blobsRemoved, 0),
          bytesFreed: reports.reduce((sum, report) => sum + report.bytesFreed, 0)
        } satisfies ClearReport
      })

    const checkCompatibility = (id: string, version?: string) =>
      Effect.map(manifestOf(id, version), (manifest): CompatibilityReport => {
        const requirements = manifest.requirements ?? {}
        const reasons: Array<string> = []
        const memory = os.totalmem()
        if (requirements.minMemory !== undefined && requirements.minMemory > memory) {
          reasons.push(`needs ${requirements.minMemory} bytes of memory, this machine has ${memory}`)
        }
        if (requirements.simdRequired === true && inference.backend === "onnxruntime-web" && !simdAvailable()) {
          reasons.push("needs WebAssembly SIMD, which this runtime lacks")
        }
        return { id: manifest.id, version: manifest.version, compatible: reasons.length === 0, reasons }
      })

    const resident = () =>
      Effect.sync(() =>
        [...entries.values()].map((entry): ResidentModel => ({
          id: entry.id,
          version: entry.version,
          bytes: entry.bytes,
          users: entry.users,
          adapterRank: entry.adapterRank
        }))
      )

    const unloadIdle = () =>
      Effect.suspend(() => {
        const idle = [...entries.values()].filter((entry) => entry.users === 0)
        return Effect.as(Effect.forEach(idle, closeEntry, { discard: true }), idle.length)
      })

    yield* Effect.addFinalizer(() => Effect.forEach([...entries.values()], closeEntry, { discard: true }))

    return {
      load,
      getManifest: manifestOf,
      isCached,
      getCachedModels,
      preload,
      clearCache,
      clearAllCache,
      checkCompatibility,
      resident,
      unloadIdle,
      adapter,
      cacheRoot: root,
      modelBytes: (manifest: ModelManifest) => Effect.map(modelSourceOf(store, manifest), (source) => source.model)
    } satisfies ModelLoaderService
  })

export class ModelLoader extends Context.Tag("edge-net/ModelLoader")<ModelLoader, ModelLoaderService>() {
  /** Over the Inference, BlobStore and TrustStore layers you give it; closes every open model with the layer. */
  static readonly layer = (options: ModelLoaderOptions = {}) => Layer.scoped(ModelLoader, makeModelLoader(options))
}
