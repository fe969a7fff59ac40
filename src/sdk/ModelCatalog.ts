/**
 * What the model loader loads from (a catalog of manifests), how a model is named (`id[@version]`),
 * and the loader's error: the parts a node's serving uses before, and without, loading the loader.
 */
import { Data, type Effect, type Option } from "effect"
import type { ModelManifest } from "../content/Manifest.js"

/** Every failure of the loader, in one line that says what to do. */
export class ModelLoaderError extends Data.TaggedError("ModelLoaderError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** `id` or `id@version`. */
export const parseModelReference = (text: string): { readonly id: string; readonly version: string | undefined } => {
  const at = text.lastIndexOf("@")
  return at > 0 ? { id: text.slice(0, at), version: text.slice(at + 1) } : { id: text, version: undefined }
}

/**
 * Where the loader finds manifests; the blobs they name are in the loader's BlobStore. The models
 * cache (`cacheCatalog`, the default) holds what was pulled; a node's registry holds what was
 * published to it (`registryCatalog` in RegistryCatalog.ts).
 */
export interface ModelCatalog {
  /** What the catalog is, in errors: "the cache at DIR", "the registry of this node". */
  readonly name: string
  /** The given version, else the highest; absent (None) when the catalog does not hold it. */
  readonly manifest: (id: string, version?: string) => Effect.Effect<Option.Option<ModelManifest>, ModelLoaderError>
  /** The highest version of every model. */
  readonly list: () => Effect.Effect<ReadonlyArray<ModelManifest>, ModelLoaderError>
  /** Forgets one version (the cache removes its manifest file); absent where models are not removed so. */
  readonly forget?: ((id: string, version: string) => Effect.Effect<void>) | undefined
  /** Every version of one model held, lowest first. */
  readonly versions: (id: string) => Effect.Effect<ReadonlyArray<string>>
}
