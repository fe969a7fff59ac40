/**
 * The adapters a node holds, for its swarm (net/AdapterSwarm.ts): those its registry lists whose
 * artifacts are all in its blob store. A pulled adapter is stored the same way (blobs checked against
 * their digests, then the manifest published in the node's own registry), so the node holds, serves
 * and announces it from then on, and every report on it is an event of the registry's journal.
 */
import { Clock, Effect, Either, Stream } from "effect"
import * as fs from "node:fs"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import { Journal } from "../events/Journal.js"
import { bundleLayout } from "./AdapterDownload.js"
import type { AdapterHoldings } from "./AdapterSwarm.js"

/** How long `held` may answer from what it found, if neither the journal nor the store moved. */
const HELD_FRESH_MS = 60_000

/** Bundles kept in memory for serving: a pull asks for every chunk of one adapter in a short time. */
const BUNDLES_CACHED = 4

export const registryHoldings = Effect.gen(function*() {
  const registry = yield* Registry
  const store = yield* BlobStore
  const journal = yield* Journal
  const cached = new Map<string, Uint8Array>()

  const complete = (manifest: ModelManifest) =>
    Effect.reduce(
      Object.values(manifest.artifacts),
      true,
      (all, artifact) => all ? store.has(artifact.sha256) : Effect.succeed(false)
    )

  const manifestOf = (id: string, version: string) =>
    registry.get(id, version, "adapter").pipe(
      Effect.map((published) => published.manifest),
      Effect.option,
      Effect.map((found) => (found._tag === "Some" ? found.value : undefined))
    )

  // What `held` found, and the journal's head and the store's mark then. The registry's adapters
  // change only with the journal and their artifacts only with the store: while neither moves, the
  // answer stands (an idle node's swarm asks every second; reading the registry each time was a
  // quarter of what it allocated). Read again at least every HELD_FRESH_MS all the same.
  let found: { readonly mark: string; readonly at: number; readonly held: ReadonlyArray<ModelManifest> } | undefined
  const held = Effect.gen(function*() {
    const mark = `${(yield* journal.head).position}/${store.changeMark()}`
    const now = yield* Clock.currentTimeMillis
    if (found !== undefined && found.mark === mark && now - found.at < HELD_FRESH_MS) return found.held
    const manifests: Array<ModelManifest> = []
    for (const summary of yield* registry.listAdapters()) {
      const manifest = yield* manifestOf(summary.id, summary.version)
      if (manifest !== undefined && (yield* complete(manifest))) manifests.push(manifest)
    }
    found = { mark, at: now, held: manifests }
    return manifests
  }).pipe(Effect.orDie)

  const bundle = (id: string, version: string) =>
    Effect.gen(function*() {
      const key = `${id}@${version}`
      const hit = cached.get(key)
      if (hit !== undefined) return hit
      const manifest = yield* manifestOf(id, version)
      if (manifest === undefined || !(yield* complete(manifest))) return undefined
      const layout = bundleLayout(manifest)
      const bytes = new Uint8Array(layout.reduce((sum, part) => sum + part.size, 0))
      for (const part of layout) bytes.set(fs.readFileSync(store.pathOf(part.sha256)), part.offset)
      cached.set(key, bytes)
      if (cached.size > BUNDLES_CACHED) cached.delete(cached.keys().next().value!)
      return bytes
    }).pipe(Effect.orDie)

  const storeBundle = (manifest: ModelManifest, bytes: Uint8Array) =>
    Effect.gen(function*() {
      for (const part of bundleLayout(manifest)) {
        const stored = yield* store.put(Stream.make(bytes.subarray(part.offset, part.offset + part.size)), {
          sha256: part.sha256,
          size: part.size
        })
        yield* store.pin(stored.digest)
      }
      // A pulled version may be older than one published here before: it is a copy, not a new release.
      yield* registry.publishAdapter(manifest, { allowOlder: true })
    }).pipe(Effect.mapError((error) => `cannot store ${manifest.id}@${manifest.version}: ${error.message}`))

  const scoreOf = (id: string) =>
    registry.adapterScore(id).pipe(
      Effect.either,
      Effect.map((result) => (Either.isRight(result) ? result.right : undefined))
    )

  return {
    held,
    bundle,
    store: storeBundle,
    recordReport: (id, report) =>
      registry.reportAdapter(id, report).pipe(
        Effect.either,
        Effect.map((result) => (Either.isRight(result) ? result.right : undefined))
      ),
    score: scoreOf,
    standing: (id) =>
      registry.adapterScore(id).pipe(
        Effect.map((found) => found.standing),
        Effect.orElseSucceed(() => [])
      )
  } satisfies AdapterHoldings
})
