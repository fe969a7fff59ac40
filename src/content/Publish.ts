/**
 * Publishing model files: store each file as a blob (digest and CID computed in one pass), describe
 * them in a manifest in the seed's format, sign it, and hand both to a registry node.
 */
import { Data, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlobStore } from "./BlobStore.js"
import type { AdapterInfo, ArtifactEntry, Benchmarks, ModelManifest, Optimization } from "./Manifest.js"
import { MANIFEST_SCHEMA_URL, parseManifest } from "./Manifest.js"
import { completeManifest } from "./ManifestDraft.js"
import type { ManifestSigner } from "./ManifestSigning.js"
import { signAsPublisher, signManifest } from "./ManifestSigning.js"
import { hasBlob, publishManifest, uploadBlob } from "./RegistryTransfer.js"

export class PublishError extends Data.TaggedError("PublishError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** A file already in the blob store, published under `filename`: re-hashed before it is described. */
export interface StoredArtifact {
  readonly sha256: string
  readonly filename: string
}

export interface PublishRequest {
  /** Paths of files to store, or blobs the store already holds. */
  readonly files: ReadonlyArray<string | StoredArtifact>
  readonly name: string
  readonly version: string
  readonly type: string
  /** Default: the name, lower-cased, with runs of other characters turned into `-`. */
  readonly id?: string | undefined
  readonly family?: string | undefined
  readonly quantization?: "FP32" | "FP16" | "INT8" | "INT4" | undefined
  /** How the model was optimized and what that measured (`quantization`, when also given, wins). */
  readonly optimization?: Optimization | undefined
  /** For a manifest of type `adapter`: the model it adapts and how (seed 9.1's AdapterSummary fields). */
  readonly adapter?: AdapterInfo | undefined
  readonly benchmarks?: Benchmarks | undefined
  readonly license: string
  readonly homepage?: string | undefined
  /** A CDN that will serve the files as `<cdn>/<id>/v<version>/<filename>`. */
  readonly cdn?: string | undefined
  readonly expiresInDays: number
  readonly signer: ManifestSigner
}

/** A publication described by a process that does not hold the key: the publisher is named, not signing. */
export interface DescribeRequest extends Omit<PublishRequest, "signer"> {
  readonly publisher: Pick<ManifestSigner, "keyId" | "publicKey">
}

export const idFromName = (name: string) =>
  name.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[^a-z0-9]+|-+$/g, "").slice(0, 128)

/** The seed's artifact names: the ONNX file is `model`, tokenizer.json `tokenizer`, config.json `config`. */
const artifactName = (file: string, taken: ReadonlySet<string>) => {
  const base = path.basename(file)
  let name = base.endsWith(".onnx") && !taken.has("model")
    ? "model"
    : base.replace(/\.[^.]+$/, "").replace(/[^A-Za-z0-9_.-]+/g, "-") || "file"
  for (let n = 2; taken.has(name); n++) name = `${name.replace(/-\d+$/, "")}-${n}`
  return name
}

/** Stores the files and returns the signed manifest describing them. */
export const buildManifest = ({ signer, ...request }: PublishRequest, now = new Date()) =>
  Effect.map(describeFiles({ ...request, publisher: signer }, now), (manifest) => signManifest(manifest, signer))

/**
 * Stores and pins the files and returns the manifest describing them, naming `request.publisher`, for
 * the publisher's key to sign (`signManifest`).
 */
export const describeFiles = (request: DescribeRequest, now = new Date()) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    const artifacts: Record<string, ArtifactEntry> = {}
    const filenames = new Set<string>()
    for (const file of request.files) {
      const filename = typeof file === "string" ? path.basename(file) : file.filename
      if (filenames.has(filename)) {
        return yield* Effect.fail(new PublishError({ reason: `two files are named ${filename}` }))
      }
      filenames.add(filename)
      // A stored blob is hashed again, so a publisher never signs bytes its store no longer holds.
      const stored = yield* Effect.mapError(
        typeof file === "string" ? store.putFile(file) : store.verify(file.sha256),
        (error: { readonly message: string }) =>
          new PublishError({ reason: `${typeof file === "string" ? file : filename}: ${error.message}` })
      )
      yield* store.pin(stored.digest)
      artifacts[artifactName(filename, new Set(Object.keys(artifacts)))] = {
        filename,
        size: stored.size,
        sha256: stored.sha256,
        cid: stored.cid
      }
    }
    const id = request.id ?? idFromName(request.name)
    const expiresAt = new Date(now.getTime() + request.expiresInDays * 86_400_000)
    const optimization = request.quantization === undefined
      ? request.optimization
      : { ...request.optimization, quantization: request.quantization }
    const draft = {
      $schema: MANIFEST_SCHEMA_URL,
      id,
      name: request.name,
      version: request.version,
      type: request.type,
      ...(request.family === undefined ? {} : { family: request.family }),
      ...(optimization === undefined ? {} : { optimization }),
      ...(request.adapter === undefined ? {} : { adapter: request.adapter }),
      artifacts,
      ...(request.cdn === undefined
        ? {}
        : {
          distribution: {
            primary: { type: "http", baseUrl: `${request.cdn.replace(/\/+$/, "")}/${id}/v${request.version}/` }
          }
        }),
      license: request.license,
      ...(request.benchmarks === undefined ? {} : { benchmarks: request.benchmarks }),
      ...(request.homepage === undefined ? {} : { homepage: request.homepage }),
      publishedAt: now.toISOString().replace(/\.\d{3}Z$/, "Z"),
      publishedBy: request.publisher.keyId,
      publisherKey: request.publisher.publicKey,
      expiresAt: expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z")
    }
    const manifest = yield* Either.mapLeft(parseManifest(draft), (error) => new PublishError({ reason: error.message }))
    for (const artifact of Object.values(manifest.artifacts)) {
      yield* store.addRef(artifact.sha256, `${manifest.id}@${manifest.version}`)
    }
    return manifest
  })

/**
 * A manifest written by hand (ManifestDraft) completed from the files beside it, which are stored and
 * pinned, then signed by `signer` as its publisher. Returns it with the draft's warnings.
 */
export const buildManifestFromDraft = (file: string, signer: ManifestSigner, expiresInDays: number) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (cause) => new PublishError({ reason: `${file}: ${String(cause)}` })
    })
    const describe = (artifact: string) =>
      store.putFile(artifact).pipe(
        Effect.tap((stored) => store.pin(stored.digest)),
        Effect.mapError((error) => new PublishError({ reason: `${artifact}: ${error.message}` }))
      )
    const { manifest, warnings } = yield* completeManifest(text, {
      directory: path.dirname(file),
      signer,
      describe,
      expiresInDays
    }).pipe(
      Effect.mapError((
        error
      ) => (error instanceof PublishError ? error : new PublishError({ reason: `${file}: ${error.message}` })))
    )
    for (const artifact of Object.values(manifest.artifacts)) {
      yield* store.addRef(artifact.sha256, `${manifest.id}@${manifest.version}`)
    }
    return { manifest: signAsPublisher(manifest, signer), warnings }
  })

/** Sends the signed manifest, then every artifact the registry does not hold yet (it checks them against the manifest). */
export const pushToRegistry = (registry: string, manifest: ModelManifest) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    yield* publishManifest(registry, manifest, manifest.type === "adapter")
    const uploaded: Array<string> = []
    for (const artifact of Object.values(manifest.artifacts)) {
      if (yield* hasBlob(registry, artifact.sha256)) continue
      yield* uploadBlob(registry, artifact.sha256, store.pathOf(artifact.sha256))
      uploaded.push(artifact.filename)
    }
    return uploaded
  })
