/**
 * The registry's RPC contract: listing, fetching, publishing and yanking models and adapters.
 * Manifests travel as the JSON their publisher signed, so a client can verify them again itself.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { ManifestError } from "../../content/Manifest.js"
import { ManifestRejected } from "../../content/ManifestSigning.js"
import { anyKey, Authority, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { VersionConflict } from "../../events/Journal.js"
import {
  AdapterSummary,
  ModelSummary,
  PublishedView,
  PublishReceipt,
  RegistryError,
  RegistryKind,
  RegistryNotFound,
  VersionView,
  YankNotSigned
} from "./Registry.js"

/** What a publication can fail with: a malformed or badly signed manifest, a registry rule, a racing writer. */
export const PublishFailure = Schema.Union(ManifestError, ManifestRejected, RegistryError, VersionConflict)
export const YankFailure = Schema.Union(YankNotSigned, RegistryError, VersionConflict)

const PublishPayload = {
  /** The manifest JSON exactly as signed (unknown fields included). */
  manifest: Schema.Unknown,
  allowOlder: Schema.optional(Schema.Boolean)
}

export class RegistryRpcs extends RpcGroup.make(
  Rpc.make("RegistryList", {
    payload: { type: Schema.optional(Schema.String), quantization: Schema.optional(Schema.String) },
    success: Schema.Array(ModelSummary)
  }),
  Rpc.make("RegistryGet", {
    payload: { id: Schema.String, version: Schema.optional(Schema.String), kind: Schema.optional(RegistryKind) },
    success: PublishedView,
    error: RegistryNotFound
  }),
  Rpc.make("RegistryVersions", {
    payload: { id: Schema.String, kind: Schema.optional(RegistryKind) },
    success: Schema.Array(VersionView),
    error: RegistryNotFound
  }),
  // The manifest's own signatures are the publisher's credential; the command signature says who sent it.
  Rpc.make("RegistryPublish", {
    payload: { ...PublishPayload, ...signedFields },
    success: PublishReceipt,
    error: PublishFailure
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("RegistryYank", {
    payload: {
      kind: Schema.optional(RegistryKind),
      id: Schema.String,
      version: Schema.String,
      reason: Schema.String,
      keyId: Schema.String,
      publicKey: Schema.String,
      /** The owner's Ed25519 signature (hex) over `yankMessage(kind, id, version, reason)`. */
      signature: Schema.String,
      ...signedFields
    },
    success: VersionView,
    error: YankFailure
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("AdapterList", {
    payload: { baseModel: Schema.optional(Schema.String), domain: Schema.optional(Schema.String) },
    success: Schema.Array(AdapterSummary)
  }),
  Rpc.make("AdapterPublish", {
    payload: { ...PublishPayload, ...signedFields },
    success: PublishReceipt,
    error: PublishFailure
  }).middleware(SignedCommands).annotate(Authority, anyKey)
) {}
