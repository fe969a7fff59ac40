/**
 * A caller's model and data sources resolved on the node: blobs read from its content store (each
 * must be there already: the node takes uploads only of blobs a published manifest lists), registry models found
 * by their manifest's artifacts, the tokenizer built from its tokenizer.json (with the model's
 * tokenizer_config.json and config.json when the manifest has them).
 */
import { Effect, Schema } from "effect"
import * as fs from "node:fs"
import { Registry } from "../actors/registry/RegistryService.js"
import { Tokenizer } from "../compute/tokenizer/Tokenizer.js"
import { BlobStore } from "../content/BlobStore.js"
import { ModelManifest } from "../content/Manifest.js"
import type { DataSource, ModelSource } from "../content/ModelSource.js"
import { ModelSourceError } from "../content/ModelSource.js"

const failure = (reason: string) => new ModelSourceError({ reason })

const decodeManifest = Schema.decodeUnknown(ModelManifest)

const notHeld = (sha256: string) =>
  failure(
    `blob sha256-${sha256} is not in this node's content store (publish a manifest that lists it, then upload it, or name a registry model by id)`
  )

/** A blob's bytes, or why the node cannot read it. */
const blobBytes = (sha256: string) =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    if (!(yield* store.has(sha256))) return yield* Effect.fail(notHeld(sha256))
    return yield* Effect.try({
      try: () => new Uint8Array(fs.readFileSync(store.pathOf(sha256))),
      catch: (error) => failure(`reading blob sha256-${sha256}: ${error instanceof Error ? error.message : error}`)
    })
  })

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

const jsonOf = (bytes: Uint8Array, name: string) =>
  Effect.try({
    try: (): Record<string, unknown> => JSON.parse(text(bytes)),
    catch: () => failure(`${name} is not JSON`)
  })

export interface ResolvedModel {
  readonly id: string
  readonly bytes: Uint8Array
  readonly tokenizer: Tokenizer | undefined
  /** The model it was optimized from, when its manifest says: adapters made on this one are keyed to that. */
  readonly baseModelDigest?: string | undefined
}

/** A model's files in the node's store, by digest: what a job's child process reads itself. */
export interface ModelFiles {
  readonly id: string
  readonly model: string
  readonly tokenizer?: string | undefined
  readonly tokenizerConfig?: string | undefined
  readonly config?: string | undefined
  readonly baseModelDigest?: string | undefined
}

const registryFiles = (id: string, version: string | undefined) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const published = yield* Effect.mapError(registry.get(id, version), (error) => failure(error.message))
    const manifest = yield* Effect.mapError(
      decodeManifest(published.manifest),
      () => failure(`the manifest of ${id}@${published.version} does not decode`)
    )
    const byName = (name: string) =>
      Object.values(manifest.artifacts).find((artifact) =>
        artifact.filename === name || artifact.filename.endsWith(`/${name}`)
      )?.sha256
    const model = Object.values(manifest.artifacts).find((artifact) => artifact.filename.endsWith(".onnx"))
    if (model === undefined) return yield* Effect.fail(failure(`${id}@${published.version} has no .onnx artifact`))
    return {
      id,
      model: model.sha256,
      tokenizer: byName("tokenizer.json"),
      tokenizerConfig: byName("tokenizer_config.json"),
      config: byName("config.json"),
      baseModelDigest: manifest.optimization?.baseModel?.sha256
    } satisfies ModelFiles
  })

/** The model's files: a registry model's from its manifest, or the blobs named; each must be in the store. */
export const resolveFiles = (source: ModelSource) =>
  Effect.gen(function*() {
    const files: ModelFiles = "sha256" in source
      ? { id: `sha256-${source.sha256.slice(0, 12)}`, model: source.sha256, tokenizer: source.tokenizer }
      : yield* registryFiles(source.id, source.version)
    const store = yield* BlobStore
    for (const sha256 of [files.model, files.tokenizer, files.tokenizerConfig, files.config]) {
      if (sha256 !== undefined && !(yield* store.has(sha256))) return yield* Effect.fail(notHeld(sha256))
    }
    return files
  })

/** The model's bytes and tokenizer (when it has one), from the node's store. */
export const resolveModel = (source: ModelSource) => Effect.flatMap(resolveFiles(source), loadModel)

/** The bytes and tokenizer of a model's files. */
export const loadModel = (files: ModelFiles) =>
  Effect.gen(function*() {
    const bytes = yield* blobBytes(files.model)
    const lineage = files.baseModelDigest === undefined ? {} : { baseModelDigest: files.baseModelDigest }
    if (files.tokenizer === undefined) {
      return { id: files.id, bytes, tokenizer: undefined, ...lineage } satisfies ResolvedModel
    }
    const tokenizerText = text(yield* blobBytes(files.tokenizer))
    const optional = (sha256: string | undefined, name: string) =>
      sha256 === undefined ? Effect.succeed({}) : Effect.flatMap(blobBytes(sha256), (json) => jsonOf(json, name))
    const config = yield* optional(files.tokenizerConfig, "tokenizer_config.json")
    const modelConfig = yield* optional(files.config, "config.json")
    const tokenizer = yield* Effect.try({
      try: () => Tokenizer.fromJson(tokenizerText, config, modelConfig),
      catch: (error) => failure(error instanceof Error ? error.message : String(error))
    })
    return { id: files.id, bytes, tokenizer, ...lineage } satisfies ResolvedModel
  })

/** The data's text, inline or from a blob. */
export const resolveData = (source: DataSource) =>
  "content" in source
    ? Effect.succeed({ content: source.content, name: source.name })
    : Effect.map(blobBytes(source.sha256), (bytes) => ({ content: text(bytes), name: source.name }))
