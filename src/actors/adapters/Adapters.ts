/**
 * The adapters a node (or a user's machine) keeps in its content store, as a service: list them,
 * merge several into a new one (TIES, DARE, task arithmetic), bring one in (the seed's one-document
 * JSON, or PEFT's two files matched to the base model's layers), write one out in either form, and
 * share one through a registry under a signed manifest. Training is `AdapterTraining`'s. The CLI's
 * `adapters` commands and the node's adapter RPC both run these, so each answers alike in process
 * and over the wire.
 */
import { Effect, Either, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { AdapterMetadata } from "../../compute/lora/Adapter.js"
import type { AdapterDescription } from "../../compute/lora/AdapterFile.js"
import { adapterMetadataFile, adapterWeightsFile, loadAdapter } from "../../compute/lora/AdapterFile.js"
import { adapterDocument, importAdapterDocument } from "../../compute/lora/AdapterJson.js"
import { classifierHeadFile } from "../../compute/lora/ClassifierHeadFile.js"
import { loraTargets } from "../../compute/lora/GraphLora.js"
import {
  listLocalAdapters,
  loadLocalAdapter,
  localAdapterDir,
  saveLocalAdapter
} from "../../compute/lora/LocalAdapters.js"
import type { MergeMethod, MergeReport } from "../../compute/lora/Merge.js"
import { mergeAdapters } from "../../compute/lora/Merge.js"
import { matchModules, peftAdapterFrom, peftFilesOf } from "../../compute/lora/Peft.js"
import { readModel } from "../../compute/onnx/OnnxModel.js"
import { BlobStore } from "../../content/BlobStore.js"
import type { ModelManifest } from "../../content/Manifest.js"
import type { ManifestSigner } from "../../content/ManifestSigning.js"
import { buildManifest, idFromName } from "../../content/Publish.js"

export class AdaptersFailure extends Schema.TaggedError<AdaptersFailure>()("AdaptersFailure", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}

const failure = (reason: string) => new AdaptersFailure({ reason })
const asFailure = <A, E extends { readonly message: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (error) => failure(error.message))

/** How to merge, as the CLI's `adapters merge` options say it (defaults filled by `mergeMethodOf`). */
export const MergeSpec = Schema.Union(
  Schema.Struct({
    method: Schema.Literal("ties"),
    trimFraction: Schema.optional(Schema.Number),
    signElection: Schema.optional(Schema.Literal("majority", "weighted")),
    scalingCoef: Schema.optional(Schema.Number)
  }),
  Schema.Struct({
    method: Schema.Literal("dare"),
    dropRate: Schema.optional(Schema.Number),
    rescale: Schema.optional(Schema.Boolean),
    seed: Schema.optional(Schema.Number),
    weights: Schema.optional(Schema.Array(Schema.Number))
  }),
  Schema.Struct({
    method: Schema.Literal("task_arithmetic"),
    weights: Schema.optional(Schema.Array(Schema.Number))
  })
)
export type MergeSpec = typeof MergeSpec.Type

/** The merge method with mergekit's usual defaults (TIES trims 80%, DARE drops half and rescales). */
export const mergeMethodOf = (spec: MergeSpec, adapters: number): MergeMethod => {
  switch (spec.method) {
    case "ties":
      return {
        method: "ties",
        trimFraction: spec.trimFraction ?? 0.8,
        signElection: spec.signElection ?? "weighted",
        scalingCoef: spec.scalingCoef ?? 1
      }
    case "dare":
      return {
        method: "dare",
        dropRate: spec.dropRate ?? 0.5,
        rescale: spec.rescale ?? true,
        seed: spec.seed ?? 0,
        ...(spec.weights === undefined ? {} : { weights: spec.weights })
      }
    case "task_arithmetic":
      return { method: "task_arithmetic", weights: spec.weights ?? Array.from({ length: adapters }, () => 1) }
  }
}

/** An adapter named by id and, optionally, version (the highest stored when absent). */
export interface AdapterRef {
  readonly id: string
  readonly version?: string | undefined
}

/** Where a new adapter is listed: its id, version, name, domain and license. */
export interface NewAdapter {
  readonly id: string
  readonly version: string
  readonly name?: string | undefined
  readonly domain?: string | undefined
  readonly license?: string | undefined
}

export interface MergeRequest {
  readonly adapters: ReadonlyArray<AdapterRef>
  readonly spec: MergeSpec
  readonly adapter: NewAdapter
  readonly rank?: number | undefined
  readonly alpha?: number | undefined
}

export interface PeftImport {
  /** adapter_config.json's value. */
  readonly config: unknown
  /** adapter_model.safetensors' bytes. */
  readonly weights: Uint8Array
  /** The base model its modules are matched to, and whose digest it is pinned to. */
  readonly base: { readonly id: string; readonly bytes: Uint8Array }
  readonly adapter: Omit<NewAdapter, "id"> & { readonly id?: string | undefined }
}

export interface ShareRequest extends AdapterRef {
  /** Default: the adapter's own domain. */
  readonly domain?: string | undefined
  /** In 0..1; default: the adapter's measured task accuracy. */
  readonly quality?: number | undefined
}

/** An adapter directory's files: weights, metadata, and a classifier's head when it has one. */
export const adapterFiles = (directory: string) => [
  adapterWeightsFile,
  adapterMetadataFile,
  ...(fs.existsSync(path.join(directory, classifierHeadFile)) ? [classifierHeadFile] : [])
]

const describedAs = (
  adapter: NewAdapter,
  fields: Pick<AdapterDescription, "description" | "baseModel" | "baseModelDigest">
): AdapterDescription => ({
  id: adapter.id,
  name: adapter.name ?? adapter.id,
  version: adapter.version,
  createdAt: new Date().toISOString(),
  training: { steps: 0, finalLoss: 0, samples: 0, duration: 0 },
  quality: {},
  sharing: { public: false, domain: adapter.domain ?? "general", license: adapter.license ?? "unknown" },
  ...fields
})

export class Adapters extends Effect.Service<Adapters>()("edge-net/Adapters", {
  effect: Effect.gen(function*() {
    const store = yield* BlobStore
    const root = store.root

    const list = Effect.fn("Adapters.list")(function*(
      filter: { readonly baseModel?: string | undefined; readonly domain?: string | undefined } = {}
    ) {
      const { adapters, unreadable } = yield* listLocalAdapters(root)
      return {
        adapters: adapters.filter((adapter) =>
          (filter.baseModel === undefined || adapter.baseModel === filter.baseModel) &&
          (filter.domain === undefined || adapter.sharing.domain === filter.domain)
        ),
        unreadable
      }
    })

    /** A stored adapter, checked (checksum, signature when signed). */
    const get = (ref: AdapterRef) => asFailure(loadLocalAdapter(root, ref.id, ref.version))

    const merge = Effect.fn("Adapters.merge")(function*(request: MergeRequest) {
      if (request.adapters.length < 2) return yield* failure(`merging needs at least 2 adapters`)
      const inputs = []
      for (const ref of request.adapters) inputs.push(yield* get(ref))
      const weights = "weights" in request.spec ? request.spec.weights : undefined
      if (weights !== undefined && (weights.length !== inputs.length || !weights.every(Number.isFinite))) {
        return yield* failure(`weights needs ${inputs.length} numbers, one per adapter (got ${weights.length})`)
      }
      const method = mergeMethodOf(request.spec, inputs.length)
      const merged = mergeAdapters(
        inputs.map(({ metadata, weights }) => ({
          id: `${metadata.id}@${metadata.version}`,
          baseModelDigest: metadata.baseModelDigest,
          weights
        })),
        method,
        {
          ...(request.rank === undefined ? {} : { rank: request.rank }),
          ...(request.alpha === undefined ? {} : { alpha: request.alpha })
        }
      )
      if (Either.isLeft(merged)) return yield* failure(`cannot merge: ${merged.left.message}`)
      const { report } = merged.right
      const first = inputs[0]!.metadata
      const adapter = yield* asFailure(saveLocalAdapter(
        root,
        describedAs(request.adapter, {
          description: `${method.method} merge of ${report.adapters.join(", ")}`,
          baseModel: first.baseModel,
          baseModelDigest: first.baseModelDigest
        }),
        merged.right.weights
      ))
      return { adapter, report } satisfies { adapter: AdapterMetadata; report: MergeReport }
    })

    /** Stores the adapter of a JSON document as `exportDocument` writes it; `label` names it in errors. */
    const importDocument = Effect.fn("Adapters.importDocument")((text: string, label = "adapter document") =>
      asFailure(importAdapterDocument(text, label, (adapter) => localAdapterDir(root, adapter.id, adapter.version)))
    )

    /** Copies an edge-net adapter directory in byte for byte (checked first), so its signature stays valid. */
    const importDirectory = Effect.fn("Adapters.importDirectory")(function*(directory: string) {
      const { metadata } = yield* asFailure(loadAdapter(directory))
      const target = localAdapterDir(root, metadata.id, metadata.version)
      if (fs.existsSync(path.join(target, adapterMetadataFile))) {
        return yield* failure(`adapter ${metadata.id}@${metadata.version} is already stored here`)
      }
      fs.mkdirSync(target, { recursive: true })
      for (const file of adapterFiles(directory)) {
        fs.copyFileSync(path.join(directory, file), path.join(target, file))
      }
      return metadata
    })

    /** Stores a PEFT adapter, its modules renamed to the base model's LoRA targets. */
    const importPeft = Effect.fn("Adapters.importPeft")(function*(request: PeftImport) {
      const peft = yield* Either.mapLeft(
        peftAdapterFrom(request.config, request.weights),
        ({ file, problem }) => failure(`${file}: ${problem}`)
      )
      const model = yield* Effect.try({
        try: () => readModel(request.base.bytes),
        catch: (error) => failure(`${request.base.id}: ${(error as Error).message}`)
      })
      const weights = yield* Either.mapLeft(
        matchModules(peft.weights, loraTargets(model).map((target) => target.module)),
        failure
      )
      const name = request.adapter.name ?? request.adapter.id ?? "peft-adapter"
      return yield* asFailure(saveLocalAdapter(
        root,
        describedAs({ ...request.adapter, id: request.adapter.id ?? idFromName(name), name }, {
          description: `imported from PEFT${
            peft.baseModelNameOrPath === undefined ? "" : ` (base ${peft.baseModelNameOrPath})`
          }`,
          baseModel: request.base.id,
          baseModelDigest: crypto.createHash("sha256").update(request.base.bytes).digest("hex")
        }),
        weights
      ))
    })

    /** One JSON document with the weights inline (the seed's `LoRAAdapter`). */
    const exportDocument = Effect.fn("Adapters.exportDocument")(function*(ref: AdapterRef) {
      const { metadata } = yield* get(ref)
      return yield* asFailure(adapterDocument(localAdapterDir(root, metadata.id, metadata.version)))
    })

    /** PEFT's two files: adapter_config.json's value and adapter_model.safetensors' bytes. */
    const exportPeft = Effect.fn("Adapters.exportPeft")(function*(ref: AdapterRef) {
      const { metadata, weights } = yield* get(ref)
      return { metadata, ...peftFilesOf(weights, { baseModelNameOrPath: metadata.baseModel }) }
    })

    /**
     * The signed manifest that shares a stored adapter, its files put in the content store; the
     * caller hands it to a registry (the node's own, or one over HTTP).
     */
    const shareManifest = Effect.fn("Adapters.shareManifest")(function*(request: ShareRequest, signer: ManifestSigner) {
      const { metadata } = yield* get(request)
      const quality = request.quality ?? metadata.quality.taskAccuracy
      if (quality !== undefined && !(quality >= 0 && quality <= 1)) {
        return yield* failure(`invalid quality ${quality}: expected a score in 0..1`)
      }
      const directory = localAdapterDir(root, metadata.id, metadata.version)
      const manifest: ModelManifest = yield* asFailure(
        buildManifest({
          files: adapterFiles(directory).map((file) => path.join(directory, file)),
          id: metadata.id,
          name: metadata.name,
          version: metadata.version,
          type: "adapter",
          license: metadata.sharing.license,
          adapter: {
            baseModel: metadata.baseModel,
            baseModelDigest: metadata.baseModelDigest,
            rank: metadata.rank,
            alpha: metadata.alpha,
            targetModules: [...metadata.targetModules],
            domain: request.domain ?? metadata.sharing.domain,
            ...(quality === undefined ? {} : { quality })
          },
          expiresInDays: 365,
          signer
        }).pipe(Effect.provideService(BlobStore, store))
      )
      return manifest
    })

    return {
      root,
      list,
      get,
      merge,
      importDocument,
      importDirectory,
      importPeft,
      exportDocument,
      exportPeft,
      shareManifest
    } as const
  })
}) {}
