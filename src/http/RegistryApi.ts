/**
 * HTTP contract of the model registry, as the seed's section 9.1 draws it (`/v1/models`,
 * `/v1/models/{id}`, `/v1/models/{id}/download`, `/v1/adapters`) plus publishing and yanking,
 * where a signature is the credential.
 */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import {
  AdapterSummary,
  KindMismatch,
  ModelSummary,
  OwnershipViolation,
  PublisherNotAllowed,
  PublisherNotSigned,
  PublisherUnnamed,
  PublishReceipt,
  RegistryNotFound,
  SharingRefused,
  UnknownVersion,
  VersionExists,
  VersionNotNewer,
  VersionView,
  YankNotSigned
} from "../actors/registry/Registry.js"
import { ManifestError, ManifestId, ModelManifest } from "../content/Manifest.js"
import { ManifestRejected } from "../content/ManifestSigning.js"

/** The largest manifest a registry accepts; a body over it is refused (413) before it is parsed. */
export const MANIFEST_BODY_LIMIT = 1024 * 1024
/** The largest yank request (a reason and a signature). */
export const YANK_BODY_LIMIT = 64 * 1024
/**
 * How long one path segment may be. The router's default (100) made valid ids of 101 to 128
 * characters 404; the server passes this as the router's `maxParamLength`.
 */
export const ROUTE_PARAMETER_MAX_LENGTH = 1024

/** The same id rule as the registry's manifests, so any id that can be published can be addressed. */
const IdPath = Schema.Struct({ id: ManifestId })

const ErrorLine = Schema.Struct({ _tag: Schema.String, message: Schema.String })

export const ModelsQuery = Schema.Struct({
  type: Schema.optional(Schema.String),
  quantization: Schema.optional(Schema.Literal("FP32", "FP16", "INT8", "INT4")),
  /** Which listing: the registry's array, or OpenAI's `{object: "list", data}` (see `listingFormat`). */
  format: Schema.optional(Schema.Literal("registry", "openai"))
})

export const ArtifactUrls = Schema.Struct({
  filename: Schema.String,
  size: Schema.Number,
  sha256: Schema.String,
  cid: Schema.String,
  /** Where the bytes can be fetched, best first, for the chosen source kind. */
  urls: Schema.Array(Schema.String)
})

export const DownloadUrls = Schema.Struct({
  id: Schema.String,
  version: Schema.String,
  source: Schema.String,
  /** The seed's fields: the first URL of the artifacts of these names. */
  model: Schema.optional(Schema.String),
  tokenizer: Schema.optional(Schema.String),
  config: Schema.optional(Schema.String),
  /** The signed manifest (signatures are inside it). */
  signature: Schema.String,
  artifacts: Schema.Record({ key: Schema.String, value: ArtifactUrls })
})
export type DownloadUrls = typeof DownloadUrls.Type

export const YankBody = Schema.Struct({
  reason: Schema.String,
  keyId: Schema.String,
  publicKey: Schema.String,
  /** Ed25519 (hex) by the owner's key over the canonical JSON `{"id","kind":"model","reason","type":"edge-net/yank/v1","version"}` (see `signYank`). */
  signature: Schema.String
})

/** Publishing a model or sharing an adapter: a signed manifest in, a receipt or the rule it broke out. */
const publishing = <Name extends string>(name: Name, path: "/v1/models" | "/v1/adapters") =>
  HttpApiEndpoint.post(name, path)
    .setPayload(ModelManifest)
    .addSuccess(PublishReceipt, { status: 201 })
    .addError(ManifestError, { status: 400 })
    .addError(ManifestRejected, { status: 400 })
    .addError(KindMismatch, { status: 400 })
    .addError(PublisherUnnamed, { status: 400 })
    .addError(OwnershipViolation, { status: 403 })
    .addError(SharingRefused, { status: 403 })
    .addError(PublisherNotSigned, { status: 403 })
    .addError(PublisherNotAllowed, { status: 403 })
    .addError(VersionExists, { status: 409 })
    .addError(VersionNotNewer, { status: 409 })
    .addError(ErrorLine, { status: 413 })

export class RegistryApi extends HttpApiGroup.make("registry")
  .add(
    HttpApiEndpoint.get("list", "/v1/models")
      .setUrlParams(ModelsQuery)
      .addSuccess(Schema.Array(ModelSummary))
      .annotate(
        OpenApi.Description,
        "The latest version of every model, optionally of one type and quantization: an array (the seed registry's " +
          "listing), or OpenAI's `{object: \"list\", data: [{id, object: \"model\", created, owned_by, ...}]}` for " +
          "`format=openai` and for OpenAI clients (a request with `Authorization: Bearer` or OpenAI's SDK headers)."
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/v1/models/:id")
      .setPath(IdPath)
      .setUrlParams(Schema.Struct({ version: Schema.optional(Schema.String) }))
      .addSuccess(ModelManifest)
      .addError(RegistryNotFound, { status: 404 })
      .annotate(
        OpenApi.Description,
        "A model's manifest exactly as its publisher signed it: the latest version that is not yanked, or `version`."
      )
  )
  .add(
    HttpApiEndpoint.get("versions", "/v1/models/:id/versions")
      .setPath(IdPath)
      .addSuccess(Schema.Array(VersionView))
      .addError(RegistryNotFound, { status: 404 })
  )
  .add(
    HttpApiEndpoint.get("download", "/v1/models/:id/download")
      .setPath(IdPath)
      .setUrlParams(Schema.Struct({
        source: Schema.optionalWith(Schema.Literal("gcs", "http", "ipfs", "peer"), { default: () => "gcs" as const }),
        version: Schema.optional(Schema.String)
      }))
      .addSuccess(DownloadUrls)
      .addError(RegistryNotFound, { status: 404 })
      .annotate(
        OpenApi.Description,
        "Download URLs of a model's artifacts: the CDN of its manifest (`gcs`/`http`), IPFS gateways, or this node."
      )
  )
  .add(
    publishing("publish", "/v1/models").annotate(
      OpenApi.Description,
      "Publishes a signed manifest (at most 1 MiB). The signature is the credential: a new id goes to the key the manifest names " +
        "as `publisherKey`, which must have signed it, and only that key may publish further versions or yank. Upload the " +
        "artifacts afterwards with PUT /v1/blobs/{digest}."
    )
  )
  .add(
    HttpApiEndpoint.post("yank", "/v1/models/:id/versions/:version/yank")
      .setPath(Schema.Struct({ id: Schema.String, version: Schema.String }))
      .setPayload(YankBody)
      .addSuccess(VersionView)
      .addError(YankNotSigned, { status: 403 })
      .addError(OwnershipViolation, { status: 403 })
      .addError(UnknownVersion, { status: 404 })
      .addError(RegistryNotFound, { status: 404 })
      .addError(ErrorLine, { status: 413 })
      .annotate(
        OpenApi.Description,
        "Withdraws a version on its owner's signed request; it stays in the log and in `versions`, marked."
      )
  )
  .add(
    HttpApiEndpoint.get("adapters", "/v1/adapters")
      .setUrlParams(
        Schema.Struct({ baseModel: Schema.optional(Schema.String), domain: Schema.optional(Schema.String) })
      )
      .addSuccess(Schema.Array(AdapterSummary))
      .annotate(
        OpenApi.Description,
        "The latest version of every shared adapter, optionally for one base model and domain."
      )
  )
  .add(
    publishing("shareAdapter", "/v1/adapters").annotate(
      OpenApi.Description,
      "Shares a signed adapter manifest (type `adapter`), as POST /v1/models does for models."
    )
  )
{}
