/**
 * Handlers of the registry API. Manifests go in and out as the exact JSON their publishers signed
 * (decoding and re-encoding could drop fields the signature covers), so those routes read and write
 * the body themselves, bounded in size before anything is parsed.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import type { ModelSummary, RegistryKind } from "../actors/registry/Registry.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import { cdnBaseUrls, gatewayRoots } from "../content/Manifest.js"
import type { NodeSettings } from "../layers/NodeConfig.js"
import { NodeConfig } from "../layers/NodeConfig.js"
import { NodeApi } from "./Api.js"
import { readBoundedText, refuseBody } from "./ContentRoutes.js"
import type { DownloadUrls } from "./RegistryApi.js"
import { MANIFEST_BODY_LIMIT, YANK_BODY_LIMIT, YankBody } from "./RegistryApi.js"

/**
 * This node's base URL from its configuration (its public URL, else its host and port), never from the
 * request's Host header, which the client writes; empty, so URLs are relative to wherever the client
 * reached the node, when it listens on every interface and has no public URL.
 */
export const publicBase = (config: Pick<NodeSettings, "host" | "port" | "publicUrl">) => {
  if (config.publicUrl !== undefined) return config.publicUrl.replace(/\/+$/, "")
  const host = config.host.trim()
  if (host === "" || host === "0.0.0.0" || host === "::") return ""
  return `http://${host.includes(":") ? `[${host}]` : host}:${config.port}`
}

const artifactUrls = (
  manifest: ModelManifest,
  source: "gcs" | "http" | "ipfs" | "peer",
  self: string,
  held: ReadonlySet<string>
) => {
  const cdn = cdnBaseUrls(manifest)
  const gateways = gatewayRoots(manifest)
  return Object.fromEntries(
    Object.entries(manifest.artifacts).map(([name, artifact]) => {
      const here = held.has(artifact.sha256) ? [`${self}/v1/blobs/sha256-${artifact.sha256}`] : []
      const urls = source === "ipfs"
        ? [
          ...(held.has(artifact.sha256) ? [`${self}/ipfs/${artifact.cid}`] : []),
          ...gateways.map((gateway) => `${gateway}/ipfs/${artifact.cid}`)
        ]
        : source === "peer"
        ? here
        : [...cdn.map((base) => `${base}${encodeURIComponent(artifact.filename)}`), ...here]
      return [name, {
        filename: artifact.filename,
        size: artifact.size,
        sha256: artifact.sha256,
        cid: artifact.cid,
        urls
      }]
    })
  )
}

/**
 * GET /v1/models is two listings on one path: the seed registry's array, which its clients (our CLI, the
 * registry client) decode, and OpenAI's `{object: "list", data}`, which OpenAI's clients read (given the
 * array they would list nothing). An array cannot carry OpenAI's fields, so the request chooses:
 * `format=openai|registry` when given; else OpenAI's when it looks like an OpenAI client, which always
 * sends an API key (`Authorization: Bearer`, that no registry client sends) and, from the official SDKs,
 * `X-Stainless-Lang`; else the array, so every registry client keeps its answer.
 */
export const listingFormat = (
  request: HttpServerRequest.HttpServerRequest,
  format: "registry" | "openai" | undefined
): "registry" | "openai" => {
  if (format !== undefined) return format
  const authorization = request.headers["authorization"] ?? ""
  return /^bearer\s/i.test(authorization) || request.headers["x-stainless-lang"] !== undefined ? "openai" : "registry"
}

/** OpenAI's model listing, each entry with the registry's fields too. */
const openAiListing = (models: ReadonlyArray<ModelSummary>) => ({
  object: "list",
  data: models.map((model) => ({
    ...model,
    object: "model",
    created: Math.floor(Date.parse(model.publishedAt) / 1000),
    owned_by: model.publishedBy
  }))
})

const failureStatus: Record<string, number> = {
  ManifestError: 400,
  ManifestRejected: 400,
  KindMismatch: 400,
  PublisherUnnamed: 400,
  OwnershipViolation: 403,
  SharingRefused: 403,
  PublisherNotSigned: 403,
  PublisherNotAllowed: 403,
  YankNotSigned: 403,
  UnknownVersion: 404,
  RegistryNotFound: 404,
  VersionExists: 409,
  VersionNotNewer: 409,
  VersionConflict: 409,
  BodyTooLarge: 413,
  BodyUnreadable: 400
}

const failure = (
  request: HttpServerRequest.HttpServerRequest,
  error: { readonly _tag: string; readonly message: string }
) =>
  error._tag === "BodyTooLarge" || error._tag === "BodyUnreadable"
    ? refuseBody(request, failureStatus[error._tag]!, error._tag, error.message)
    : Effect.succeed(
      HttpServerResponse.unsafeJson({ _tag: error._tag, message: error.message }, {
        status: failureStatus[error._tag] ?? 400
      })
    )

/** A bounded body parsed as JSON, or the one line saying why not. */
const readJson = (request: HttpServerRequest.HttpServerRequest, what: string, limit: number) =>
  Effect.flatMap(readBoundedText(request, what, limit), (text) =>
    Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: () => ({ _tag: "BadRequest", message: `${what} is not JSON` })
    }))

/** Publishing reads the raw body: the registry must keep every byte of meaning the publisher signed. */
const publishRaw = (request: HttpServerRequest.HttpServerRequest, kind: RegistryKind) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const body = yield* readJson(request, "a manifest", MANIFEST_BODY_LIMIT).pipe(
      Effect.mapError((error) => (error._tag === "BadRequest"
        ? { _tag: "ManifestError", message: "invalid manifest: the body is not JSON" }
        : error)
      )
    )
    const receipt = yield* kind === "adapter"
      ? registry.publishAdapter(body)
      : registry.publish(body, { kind: "model" })
    return HttpServerResponse.unsafeJson(receipt, { status: receipt.duplicate ? 200 : 201 })
  }).pipe(Effect.catchAll((error) => failure(request, error)))

const decodeYank = Schema.decodeUnknownEither(YankBody, { errors: "first" })

/** A yank, with its body bounded and decoded here rather than parsed whole by the platform. */
const yankRaw = (request: HttpServerRequest.HttpServerRequest, id: string, version: string) =>
  Effect.gen(function*() {
    const registry = yield* Registry
    const body = yield* readJson(request, "a yank request", YANK_BODY_LIMIT)
    const payload = yield* Either.mapLeft(decodeYank(body), (error) => ({
      _tag: "BadRequest",
      message: `invalid yank request: ${
        ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "does not match"
      }`
    }))
    const view = yield* registry.yank({ kind: "model", id, version, ...payload })
    return HttpServerResponse.unsafeJson(view)
  }).pipe(Effect.catchAll((error) => failure(request, error)))

export const RegistryHandlers = HttpApiBuilder.group(NodeApi, "registry", (handlers) =>
  handlers
    .handle("list", ({ request, urlParams }) => {
      const { format, ...filter } = urlParams
      return Effect.flatMap(Registry, (registry) => registry.list(filter)).pipe(
        Effect.map((models) =>
          listingFormat(request, format) === "openai"
            ? HttpServerResponse.unsafeJson(openAiListing(models))
            : models
        )
      )
    })
    .handle("get", ({ path, urlParams }) =>
      Effect.flatMap(Registry, (registry) =>
        registry.get(path.id, urlParams.version)).pipe(
          // The seed's CDN headers (§4.2): which version this is, and the digest of what its publisher signed.
          Effect.map((published) =>
            HttpServerResponse.unsafeJson(published.manifest, {
              headers: { "x-model-version": published.version, "x-model-checksum": published.digest }
            })
          )
        ))
    .handle("versions", ({ path }) =>
      Effect.flatMap(Registry, (registry) => registry.versions(path.id)))
    .handle("download", ({ path, urlParams }) =>
      Effect.gen(function*() {
        const registry = yield* Registry
        const store = yield* BlobStore
        const config = yield* NodeConfig
        const published = yield* registry.get(path.id, urlParams.version)
        const manifest = published.manifest
        const held = new Set<string>()
        for (const artifact of Object.values(manifest.artifacts)) {
          if (yield* store.has(artifact.sha256)) held.add(artifact.sha256)
        }
        const self = publicBase(config)
        const artifacts = artifactUrls(manifest, urlParams.source, self, held)
        const first = (name: string) => Option.getOrUndefined(Option.fromNullable(artifacts[name]?.urls[0]))
        const urls: DownloadUrls = {
          id: manifest.id,
          version: manifest.version,
          source: urlParams.source,
          signature: `${self}/v1/models/${encodeURIComponent(manifest.id)}?version=${
            encodeURIComponent(manifest.version)
          }`,
          artifacts,
          ...Object.fromEntries((["model", "tokenizer", "config"] as const).flatMap((name) => {
            const url = first(name)
            return url === undefined ? [] : [[name, url]]
          }))
        }
        return urls
      }))
    .handleRaw("publish", ({ request }) => publishRaw(request, "model").pipe(Effect.orDie))
    .handleRaw("yank", ({ path, request }) => yankRaw(request, path.id, path.version))
    .handle("adapters", ({ urlParams }) => Effect.flatMap(Registry, (registry) => registry.listAdapters(urlParams)))
    .handleRaw("shareAdapter", ({ request }) => publishRaw(request, "adapter").pipe(Effect.orDie)))
