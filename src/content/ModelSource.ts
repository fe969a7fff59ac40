/**
 * How a caller names a model that a node holds, when it asks the node to work on it (optimize it,
 * train an adapter on it): by the digests of blobs in the node's content store (the model and, for a
 * text model, its tokenizer.json), or by id and version in the node's registry.
 */
import { Schema } from "effect"
import { Sha256Hex } from "./Manifest.js"

export const BlobModelSource = Schema.Struct({
  sha256: Sha256Hex,
  /** The model's tokenizer.json, stored as a blob too. */
  tokenizer: Schema.optional(Sha256Hex)
})

export const RegistryModelSource = Schema.Struct({
  id: Schema.String,
  /** Default: the latest version not yanked. */
  version: Schema.optional(Schema.String)
})

export const ModelSource = Schema.Union(BlobModelSource, RegistryModelSource)
export type ModelSource = typeof ModelSource.Type

/** Data given inline (within the signed command's size limit) or as a blob in the node's store. */
export const DataSource = Schema.Union(
  Schema.Struct({ content: Schema.String, name: Schema.String }),
  Schema.Struct({ sha256: Sha256Hex, name: Schema.String })
)
export type DataSource = typeof DataSource.Type

export class ModelSourceError extends Schema.TaggedError<ModelSourceError>()("ModelSourceError", {
  reason: Schema.String
}) {
  override get message() {
    return this.reason
  }
}
