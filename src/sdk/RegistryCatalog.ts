/**
 * A node's registry as the ModelLoader's catalog: the models published to this node, their blobs in
 * the node's BlobStore. Yanked versions are not served unless asked for by version, as `get` does.
 */
import { Effect, Option } from "effect"
import type { Registry } from "../actors/registry/RegistryService.js"
import { type ModelCatalog, ModelLoaderError } from "./ModelCatalog.js"

export const registryCatalog = (registry: Registry): ModelCatalog => ({
  name: "the registry of this node",
  manifest: (id, version) =>
    registry.get(id, version).pipe(
      Effect.map((published) => Option.some(published.manifest)),
      Effect.catchTag("RegistryNotFound", () => Effect.succeed(Option.none()))
    ),
  list: () =>
    registry.list().pipe(
      Effect.flatMap((summaries) =>
        Effect.forEach(summaries, (summary) => Effect.map(registry.get(summary.id, summary.version), (p) => p.manifest))
      ),
      Effect.mapError((error) => new ModelLoaderError({ reason: error.message }))
    ),
  versions: (id) =>
    registry.versions(id).pipe(
      Effect.map((views) => views.filter((view) => view.yanked === undefined).map((view) => view.version)),
      Effect.orElseSucceed(() => [])
    )
})
