/**
 * The adapters a node keeps, over RPC: list them, merge several into a new one, import one (the
 * seed's JSON document, or PEFT's files matched to a base model the node holds), export one, and
 * share one through the node's own registry under a manifest the node signs with its key. Everything
 * but the listing writes to the node's store or hands out weights it keeps, so it takes the
 * operator key(s). Imports travel inside the signed command, so they stay within its size limit
 * (256 KiB of canonical JSON: a rank-8 adapter of a small model); larger adapters come by the
 * registry (`AdapterPeersPull`).
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { AdaptersFailure, MergeSpec } from "../actors/adapters/Adapters.js"
import { PublishReceipt } from "../actors/registry/Registry.js"
import { PublishFailure } from "../actors/registry/RegistryRpc.js"
import { AdapterMetadataSchema } from "../compute/lora/AdapterFile.js"
import { ModelSource, ModelSourceError } from "../content/ModelSource.js"
import { Authority, operator, SignedCommands, signedFields } from "../domain/CommandAuthority.js"

const AdapterRef = {
  id: Schema.String,
  /** Default: the highest stored. */
  version: Schema.optional(Schema.String)
}

/** The new adapter's listing: its id and version, and optionally its name, domain and license. */
export const NewAdapterFields = Schema.Struct({
  id: Schema.String,
  version: Schema.String,
  name: Schema.optional(Schema.String),
  domain: Schema.optional(Schema.String),
  license: Schema.optional(Schema.String)
})

/** A stored adapter's adapter.json. */
export const StoredAdapter = Schema.Struct({
  ...AdapterMetadataSchema.fields,
  targetModules: Schema.Array(Schema.String),
  quality: Schema.Record({ key: Schema.String, value: Schema.UndefinedOr(Schema.Number) })
})

export const ModuleMergeView = Schema.Struct({
  inFeatures: Schema.Number,
  outFeatures: Schema.Number,
  trimmed: Schema.optional(Schema.Number),
  dropped: Schema.optional(Schema.Number),
  singularValues: Schema.Array(Schema.Number),
  refactorError: Schema.Number
})

/** What a merge did: the inputs, the method's settings, the rank kept and each module's re-factoring loss. */
export const MergeReportView = Schema.Struct({
  method: Schema.Union(
    Schema.Struct({
      method: Schema.Literal("ties"),
      trimFraction: Schema.Number,
      signElection: Schema.Literal("majority", "weighted"),
      scalingCoef: Schema.Number
    }),
    Schema.Struct({
      method: Schema.Literal("dare"),
      dropRate: Schema.Number,
      rescale: Schema.Boolean,
      seed: Schema.Number,
      weights: Schema.optional(Schema.Array(Schema.Number))
    }),
    Schema.Struct({ method: Schema.Literal("task_arithmetic"), weights: Schema.Array(Schema.Number) })
  ),
  adapters: Schema.Array(Schema.String),
  baseModelDigest: Schema.String,
  rank: Schema.Number,
  alpha: Schema.Number,
  modules: Schema.Record({ key: Schema.String, value: ModuleMergeView }),
  random: Schema.optional(
    Schema.Struct({ generator: Schema.Literal("xoshiro128**"), seed: Schema.Number, draws: Schema.Number })
  )
})

export const ExportedAdapter = Schema.Union(
  Schema.TaggedStruct("AdapterDocument", { adapter: StoredAdapter, document: Schema.String }),
  Schema.TaggedStruct("PeftFiles", {
    adapter: StoredAdapter,
    /** adapter_config.json's text. */
    config: Schema.String,
    /** adapter_model.safetensors. */
    weights: Schema.Uint8ArrayFromBase64
  })
)
export type ExportedAdapter = typeof ExportedAdapter.Type

export class AdaptersRpcs extends RpcGroup.make(
  Rpc.make("AdaptersStored", {
    payload: { baseModel: Schema.optional(Schema.String), domain: Schema.optional(Schema.String) },
    success: Schema.Struct({ adapters: Schema.Array(StoredAdapter), unreadable: Schema.Array(Schema.String) }),
    error: AdaptersFailure
  }),
  Rpc.make("AdapterMerge", {
    payload: {
      adapters: Schema.Array(Schema.Struct(AdapterRef)),
      spec: MergeSpec,
      adapter: NewAdapterFields,
      rank: Schema.optional(Schema.Number.pipe(Schema.int(), Schema.between(1, 1024))),
      alpha: Schema.optional(Schema.Number),
      ...signedFields
    },
    success: Schema.Struct({ adapter: StoredAdapter, report: MergeReportView }),
    error: AdaptersFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("AdapterImport", {
    payload: {
      /** The seed's one-document JSON, as `AdapterExport` with format json returns it. */
      document: Schema.String,
      ...signedFields
    },
    success: StoredAdapter,
    error: AdaptersFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("AdapterImportPeft", {
    payload: {
      /** adapter_config.json's text. */
      config: Schema.String,
      /** adapter_model.safetensors. */
      weights: Schema.Uint8ArrayFromBase64,
      base: ModelSource,
      /** The base model's id as the adapter records it (default: the registry id, or the blob's). */
      baseModelId: Schema.optional(Schema.String),
      adapter: Schema.Struct({ ...NewAdapterFields.fields, id: Schema.optional(Schema.String) }),
      ...signedFields
    },
    success: StoredAdapter,
    error: Schema.Union(AdaptersFailure, ModelSourceError)
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("AdapterExport", {
    payload: { ...AdapterRef, format: Schema.Literal("json", "peft"), ...signedFields },
    success: ExportedAdapter,
    error: AdaptersFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("AdapterShare", {
    payload: {
      ...AdapterRef,
      domain: Schema.optional(Schema.String),
      quality: Schema.optional(Schema.Number),
      ...signedFields
    },
    success: PublishReceipt,
    error: Schema.Union(AdaptersFailure, PublishFailure)
  }).middleware(SignedCommands).annotate(Authority, operator)
) {}
