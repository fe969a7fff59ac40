/**
 * Handlers of the registry API. Manifests go in and out as the exact JSON their publishers signed
 * (decoding and re-encoding could drop fields the signature covers), so those routes read and write
 * the body themselves.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { Effect, Option } from "effect"
import type { RegistryKind } from "../actors/registry/Registry.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import { cdnBaseUrls, gatewayRoots } from "../content/Manifest.js"
import { NodeApi } from "./Api.js"
import type { DownloadUrls } from "./RegistryApi.js"

/** This node's own base URL as the client reached it. */
const selfUrl = (request: HttpServerRequest.HttpServerRequest) => `http://${request.headers["host"] ?? "127.0.0.1"}`

const artifactUrls = (manifest: ModelManifest, source: "gcs" | "http" | "ipfs" | "peer", self: string, held: ReadonlySet<string>) => {
  const cdn = cdnBaseUrls(manifest)
  const gateways = gatewayRoots(manifest)
  return Object.fromEntries(
    Object.entries(manifest.artifacts).map(([name, artifact]) => {
      const here = held.has(artifact.sha256) ? [`${self}/v1/blobs/sha256-${artifact.sha256}`] : []
      const urls = source === "ipfs"
        ? [...(held.has(artifact.sha256) ? [`${self}/ipfs/${artifact.cid}`] : []), ...gateways.map((gateway) => `${gateway}/ipfs/${artifact.cid}`)]
        : source === "peer"
        ? here
        : [...cdn.map((base) => `${base}${encodeURIComponent(artifact.filename)}`), ...here]
      return [name, { filename: artifact.filename, size: artifact.size, sha256: artifact.sha256, cid: artifact.cid, urls }]
    })
  )
}

const readJson = (request: HttpServerRequest.HttpServerRequest) =>
  request.json.pipe(
    Effect.catchAll(() => Effect.succeed(undefined))
  )

const failureStatus: Record<string, number> = {
  ManifestError: 400, ManifestRejected: 400, KindMismatch: 400, OwnershipViolation: 403, SharingRefused: 403, VersionExists: 409, VersionNotNewer: 409, VersionConflict: 409
}

/** Publishing reads the raw body: the registry must keep every byte of meaning the publisher signed. */
const publishRaw = (request: HttpServerRequest.HttpServerRequest, kind: RegistryKind) =>
  Effect.gen(function* () {
    const registry = yield* Registry
    const body = yield* readJson(request)
    if (body === undefined) return HttpServerResponse.unsafeJson({ _tag: "ManifestError", message: "invalid manifest: the body is not JSON" }, { status: 400 })
    const published = yield* Effect.either(kind === "adapter" ? registry.publishAdapter(body) : registry.publish(body, { kind: "model" }))
    if (published._tag === "Right") return HttpServerResponse.unsafeJson(published.right, { status: published.right.duplicate ? 200 : 201 })
    const error = published.left
    return HttpServerResponse.unsafeJson({ _tag: error._tag, message: error.message }, { status: failureStatus[error._tag] ?? 400 })
  })

export const RegistryHandlers = HttpApiBuilder.group(NodeApi, "registry", (handlers) =>
  handlers
    .handle("list", ({ urlParams }) => Effect.flatMap(Registry, (registry) => registry.list(urlParams)))
    .handle("get", ({ path, urlParams }) =>
      Effect.flatMap(Registry, (registry) => registry.get(path.id, urlParams.version)).pipe(
        Effect.map((published) => HttpServerResponse.unsafeJson(published.manifest))
      ))
    .handle("versions", ({ path }) => Effect.flatMap(Registry, (registry) => registry.versions(path.id)))
    .handle("download", ({ path, request, urlParams }) =>
      Effect.gen(function* () {
        const registry = yield* Registry
        const store = yield* BlobStore
        const published = yield* registry.get(path.id, urlParams.version)
        const manifest = published.manifest
        const held = new Set<string>()
        for (const artifact of Object.values(manifest.artifacts)) if (yield* store.has(artifact.sha256)) held.add(artifact.sha256)
        const self = selfUrl(request)
        const artifacts = artifactUrls(manifest, urlParams.source, self, held)
        const first = (name: string) => Option.getOrUndefined(Option.fromNullable(artifacts[name]?.urls[0]))
        const urls: DownloadUrls = {
          id: manifest.id,
          version: manifest.version,
          source: urlParams.source,
          signature: `${self}/v1/models/${encodeURIComponent(manifest.id)}?version=${encodeURIComponent(manifest.version)}`,
          artifacts,
          ...Object.fromEntries((["model", "tokenizer", "config"] as const).flatMap((name) => {
            const url = first(name)
            return url === undefined ? [] : [[name, url]]
          }))
        }
        return urls
      }))
    .handleRaw("publish", ({ request }) => publishRaw(request, "model").pipe(Effect.orDie))
    .handle("yank", ({ path, payload }) =>
      Effect.flatMap(Registry, (registry) => registry.yank({ kind: "model", id: path.id, version: path.version, ...payload })).pipe(
        // A yank never publishes, so these cannot happen; the journal's conflict is retried by the runner first.
        Effect.catchTags({ VersionConflict: Effect.die, KindMismatch: Effect.die, SharingRefused: Effect.die, VersionExists: Effect.die, VersionNotNewer: Effect.die })
      ))
    .handle("adapters", ({ urlParams }) => Effect.flatMap(Registry, (registry) => registry.listAdapters(urlParams)))
    .handleRaw("shareAdapter", ({ request }) => publishRaw(request, "adapter").pipe(Effect.orDie))
)
