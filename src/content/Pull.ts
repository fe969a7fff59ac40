/**
 * Pulling a model: fetch its manifest from the registry, accept it only if trusted, fresh and not a
 * rollback, then fetch each artifact from every source that has it (CDN, IPFS gateways, peers) in
 * verified pieces, into the blob store, and remember the manifest for offline verify and info.
 */
import { Data, Duration, Effect, Either, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlobStore } from "./BlobStore.js"
import type { DownloadResult, Progress } from "./Downloader.js"
import { download } from "./Downloader.js"
import { saveManifest } from "./LocalModels.js"
import type { ArtifactEntry, ModelManifest } from "./Manifest.js"
import { cdnBaseUrls, gatewayRoot, gatewayRoots, parseManifest } from "./Manifest.js"
import { verifyManifest } from "./ManifestSigning.js"
import type { ModelsConfig, SourceKind } from "./ModelsConfig.js"
import { parseByteSize } from "./ModelsConfig.js"
import { lockDownload } from "./PartialFile.js"
import { blobHolders, fetchManifest } from "./RegistryTransfer.js"
import { toHex } from "./Sha256.js"
import type { BlobSource } from "./Sources.js"
import { httpSource, ipfsGatewaySource, peerSource } from "./Sources.js"
import { TrustStore } from "./TrustStore.js"
import type { UnixFsLayout } from "./UnixFs.js"
import { CHUNK_SIZE, parseCid, resolveLeaves } from "./UnixFs.js"

const RAW_CODEC = 0x55

export class PullError extends Data.TaggedError("PullError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

export interface PullRequest {
  readonly id: string
  readonly version?: string | undefined
  readonly registry: string
  /** Restrict where bytes come from; all kinds when empty. */
  readonly sources?: ReadonlyArray<SourceKind> | undefined
  readonly output?: string | undefined
  readonly allowRollback?: boolean | undefined
  readonly onProgress?: ((progress: Progress) => void) | undefined
  readonly onSourceDropped?: ((report: { readonly source: string; readonly reason: string }) => void) | undefined
}

export interface PulledArtifact {
  readonly name: string
  readonly filename: string
  readonly digest: string
  readonly size: number
  readonly cid: string
  /** Already in the cache: nothing was downloaded. */
  readonly cached: boolean
  readonly bytesFetched: number
  readonly bytesReused: number
  readonly sources: ReadonlyArray<{ readonly name: string; readonly bytes: number }>
  readonly dropped: ReadonlyArray<{ readonly source: string; readonly reason: string }>
}

export interface PullReceipt {
  readonly id: string
  readonly version: string
  readonly verifiedBy: ReadonlyArray<string>
  readonly artifacts: ReadonlyArray<PulledArtifact>
  readonly output?: string
}

const trimSlash = (url: string) => url.replace(/\/+$/, "")

/** Where each artifact can come from, in the config's order: CDN, then gateways, then peers (the registry is one). */
export const sourcesFor = (
  config: ModelsConfig,
  registry: string,
  manifest: ModelManifest,
  artifact: ArtifactEntry,
  kinds: ReadonlyArray<SourceKind>,
  /** Node URLs of peers the registry heard announce the blob on gossip. */
  holders: ReadonlyArray<string> = []
) => {
  const wanted = (kind: SourceKind) => kinds.length === 0 || kinds.includes(kind)
  const sources: Array<BlobSource> = []
  if (wanted("http")) {
    const bases = new Set<string>()
    if (config.cdn.endpoint !== "") bases.add(`${trimSlash(config.cdn.endpoint)}/${manifest.id}/v${manifest.version}/`)
    for (const baseUrl of cdnBaseUrls(manifest)) bases.add(baseUrl)
    for (const baseUrl of bases) {
      sources.push(httpSource(`${baseUrl}${encodeURIComponent(artifact.filename)}`, `cdn ${baseUrl}`))
    }
  }
  const peers = [...new Set([registry, ...config.peers].map(trimSlash))]
  if (wanted("ipfs")) {
    const gateways = new Set(config.ipfs.gateways.map(gatewayRoot))
    for (const gateway of gatewayRoots(manifest)) gateways.add(gateway)
    // Every edge-net node is a trustless gateway too.
    for (const peer of peers) gateways.add(peer)
    for (const gateway of gateways) {
      sources.push(ipfsGatewaySource(gateway, undefined, { idleTimeoutMs: config.ipfs.timeout }))
    }
  }
  if (wanted("peer")) {
    for (const peer of peers) sources.push(peerSource(peer, artifact.sha256))
    for (const holder of new Set(holders.map(trimSlash))) {
      if (!peers.includes(holder)) sources.push(peerSource(holder, artifact.sha256, `peer ${holder} (gossip)`))
    }
  }
  return sources
}

/**
 * The artifact's 256 KiB pieces with their hashes, from the DAG under its CID (which the signed
 * manifest pins), so every piece is checked as it arrives. Nodes and the registry are asked first;
 * when none can answer, the download falls back to the whole-file hash.
 */
const piecesOf = (config: ModelsConfig, registry: string, artifact: ArtifactEntry) =>
  Effect.gen(function*() {
    const root = parseCid(artifact.cid)
    if (artifact.size <= CHUNK_SIZE) {
      // One piece: the CID is the raw leaf itself, whose hash must be the file's.
      if (
        root === undefined || root.code !== RAW_CODEC || toHex(root.multihash.digest) !== artifact.sha256
      ) return undefined
      const leaf = { cid: artifact.cid, offset: 0, length: artifact.size, sha256: root.multihash.digest }
      return { root: artifact.cid, size: artifact.size, leaves: [leaf], nodes: [] } satisfies UnixFsLayout
    }
    const gateways = [...new Set([registry, ...config.peers, ...config.ipfs.gateways].map(gatewayRoot))]
    for (const gateway of gateways) {
      const source = ipfsGatewaySource(gateway, undefined, { idleTimeoutMs: config.ipfs.timeout })
      const resolved = yield* resolveLeaves(artifact.cid, (cid: string) => source.fetchBlock!(cid)).pipe(
        Effect.timeout(Duration.millis(Math.min(config.ipfs.timeout, 10_000))),
        Effect.option
      )
      if (Option.isSome(resolved) && resolved.value.size === artifact.size) return resolved.value
    }
    return undefined
  })

const pullArtifact = (
  request: PullRequest,
  config: ModelsConfig,
  manifest: ModelManifest,
  name: string,
  artifact: ArtifactEntry
) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    const ref = `${manifest.id}@${manifest.version}`
    const summary = {
      name,
      filename: artifact.filename,
      digest: `sha256-${artifact.sha256}`,
      size: artifact.size,
      cid: artifact.cid
    }
    if (yield* store.has(artifact.sha256)) {
      yield* store.addRef(artifact.sha256, ref)
      yield* store.touch(artifact.sha256)
      return {
        ...summary,
        cached: true,
        bytesFetched: 0,
        bytesReused: artifact.size,
        sources: [],
        dropped: []
      } satisfies PulledArtifact
    }
    const kinds = request.sources ?? []
    const holders = kinds.length === 0 || kinds.includes("peer")
      ? (yield* blobHolders(request.registry, artifact.sha256)).map((holder) => holder.url)
      : []
    const sources = sourcesFor(config, request.registry, manifest, artifact, kinds, holders)
    if (sources.length === 0) {
      return yield* Effect.fail(new PullError({ reason: `no source is configured for ${ref}/${artifact.filename}` }))
    }
    const pieces: UnixFsLayout | undefined = yield* piecesOf(config, request.registry, artifact)
    if (config.cache.autoCleanup) yield* store.makeRoom(artifact.size)
    else {
      const { bytes, maxBytes } = yield* store.summary
      if (bytes + artifact.size > maxBytes) {
        return yield* Effect.fail(
          new PullError({
            reason:
              `${ref}/${artifact.filename} (${artifact.size} bytes) does not fit in the cache (${bytes} of ${maxBytes} bytes used) and cache.autoCleanup is off: ` +
              "free space with `edge-net-models cache prune` or `cache clear`, or raise cache.maxSize"
          })
        )
      }
    }
    const maxBytesPerSecond = parseByteSize(config.download.maxBytesPerSecond) ?? 0
    const lock = lockDownload(store.partialDir, artifact.sha256)
    if (lock.release === undefined) {
      return yield* Effect.fail(
        new PullError({
          reason:
            `${ref}/${artifact.filename} is being downloaded by another process (pid ${lock.ownerPid}); wait for it or stop it`
        })
      )
    }
    yield* Effect.addFinalizer(() => Effect.sync(lock.release!))
    const result: DownloadResult = yield* download(
      {
        sha256: artifact.sha256,
        size: artifact.size,
        label: `${ref}/${artifact.filename}`,
        ...(pieces === undefined ? {} : { leaves: pieces.leaves })
      },
      sources,
      {
        partialDir: store.partialDir,
        parallel: config.download.parallel,
        timeoutMs: config.cdn.timeout,
        retries: config.cdn.retries,
        ...(maxBytesPerSecond > 0 ? { maxBytesPerSecond } : {}),
        ...(request.onProgress === undefined ? {} : { onProgress: request.onProgress }),
        ...(request.onSourceDropped === undefined ? {} : { onSourceDropped: request.onSourceDropped })
      }
    )
    const stored = yield* store.adopt(result.path, {
      sha256: result.sha256,
      size: result.size,
      layout: pieces ?? result.layout
    })
    if (stored.cid !== artifact.cid) {
      yield* store.remove(stored.digest)
      return yield* Effect.fail(
        new PullError({
          reason: `${ref}/${artifact.filename}: its bytes have CID ${stored.cid}, the manifest says ${artifact.cid}`
        })
      )
    }
    yield* store.addRef(artifact.sha256, ref)
    return {
      ...summary,
      cached: false,
      bytesFetched: result.bytesFetched,
      bytesReused: result.bytesReused,
      sources: result.sources,
      dropped: result.dropped
    } satisfies PulledArtifact
  })

/** Copies (hard-links when it can) the pulled artifacts into `dir` under their file names, with the manifest. */
const writeOutput = (dir: string, manifest: ModelManifest) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    yield* Effect.try({
      try: () => fs.mkdirSync(dir, { recursive: true }),
      catch: (cause) => new PullError({ reason: `cannot create ${dir}: ${String(cause)}` })
    })
    for (const artifact of Object.values(manifest.artifacts)) {
      const target = path.join(dir, artifact.filename)
      yield* Effect.try({
        try: () => {
          fs.rmSync(target, { force: true })
          try {
            fs.linkSync(store.pathOf(artifact.sha256), target)
          } catch {
            fs.copyFileSync(store.pathOf(artifact.sha256), target)
          }
        },
        catch: (cause) => new PullError({ reason: `cannot write ${target}: ${String(cause)}` })
      })
    }
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n")
  })

export const pull = (request: PullRequest, config: ModelsConfig) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    const trust = yield* TrustStore
    const raw = yield* fetchManifest(request.registry, request.id, request.version)
    const manifest = yield* Either.mapLeft(parseManifest(raw), (error) =>
      new PullError({ reason: `${request.id}: ${error.message}` }))
    if (manifest.id !== request.id || (request.version !== undefined && manifest.version !== request.version)) {
      return yield* Effect.fail(
        new PullError({
          reason: `the registry answered ${manifest.id}@${manifest.version} for ${request.id}${
            request.version === undefined ? "" : `@${request.version}`
          }`
        })
      )
    }
    const policy = yield* trust.policy(config.trust.threshold)
    const highestTrusted = Option.getOrUndefined(yield* trust.highestTrusted(manifest.id))
    const verified = yield* verifyManifest(manifest, policy, new Date(), {
      allowRollback: request.allowRollback === true,
      highestTrusted
    })
    const artifacts: Array<PulledArtifact> = []
    for (const [name, artifact] of Object.entries(manifest.artifacts)) {
      artifacts.push(yield* Effect.scoped(pullArtifact(request, config, manifest, name, artifact)))
    }
    yield* saveManifest(store.root, manifest)
    yield* trust.recordTrusted(manifest.id, manifest.version)
    if (request.output !== undefined) {
      yield* writeOutput(request.output, manifest)
    }
    return {
      id: manifest.id,
      version: manifest.version,
      verifiedBy: verified.verifiedBy,
      artifacts,
      ...(request.output === undefined ? {} : { output: path.resolve(request.output) })
    } satisfies PullReceipt
  })
