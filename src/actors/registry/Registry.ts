/**
 * The model and adapter registry as event-sourced entities, one stream per id (`Model-<id>`,
 * `Adapter-<id>`): an id belongs to the key its first manifest names as publisher (which signed it),
 * versions only move forward, owners yank.
 */
import { Effect, Either, Schema } from "effect"
import type { ManifestSignature, ModelManifest } from "../../content/Manifest.js"
import { compareVersions, manifestDigest } from "../../content/Manifest.js"
import type { ManifestSigner } from "../../content/ManifestSigning.js"
import { canonicalize } from "../../domain/CanonicalJson.js"
import type { EventSourced } from "../../events/Decider.js"
import type { QualityReport } from "./AdapterReports.js"
import { AdapterQualityReported, QualityReport as QualityReportSchema, supersedes } from "./AdapterReports.js"

export const RegistryKind = Schema.Literal("model", "adapter")
export type RegistryKind = typeof RegistryKind.Type

const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

const publishedFields = {
  id: Schema.String,
  version: Schema.String,
  /** The manifest exactly as signed (unknown fields included), so anyone can verify it again later. */
  manifest: Schema.Unknown,
  /** sha256 (hex) of the manifest's signed body. */
  digest: Schema.String,
  /** The publisher's key: the id's owner from the first publication on. */
  keyId: Schema.String,
  publicKey: Schema.String
}

// Events
export const ModelPublished = Schema.TaggedStruct("ModelPublished", publishedFields)
/** With the seed's adapter summary, so adapter listings need not open manifests. */
export const AdapterPublished = Schema.TaggedStruct("AdapterPublished", {
  ...publishedFields,
  name: Schema.String,
  baseModel: Schema.String,
  rank: Schema.Number,
  domain: Schema.String,
  quality: optional(Schema.Number)
})
export const VersionYanked = Schema.TaggedStruct("VersionYanked", {
  id: Schema.String,
  version: Schema.String,
  reason: Schema.String
})
export const RegistryEvent = Schema.Union(ModelPublished, AdapterPublished, VersionYanked, AdapterQualityReported)
export type RegistryEvent = typeof RegistryEvent.Type

export const PublisherKey = Schema.Struct({ keyId: Schema.String, publicKey: Schema.String })

export const VersionRecord = Schema.Struct({
  version: Schema.String,
  manifest: Schema.Unknown,
  digest: Schema.String,
  keyId: Schema.String,
  publicKey: Schema.String,
  /** Why the owner withdrew it; a yanked version stays fetchable by exact version but is never "latest". */
  yanked: optional(Schema.String)
})
export type VersionRecord = typeof VersionRecord.Type

export const RegistryState = Schema.Struct({
  owner: Schema.NullOr(PublisherKey),
  versions: Schema.Record({ key: Schema.String, value: VersionRecord }),
  /** The highest version ever published, yanked or not: new versions must pass it. */
  highest: Schema.NullOr(Schema.String),
  /** An adapter's standing quality report of each reporter key (AdapterReports.ts); absent until the first. */
  reports: optional(Schema.Record({ key: Schema.String, value: QualityReportSchema }))
})
export type RegistryState = typeof RegistryState.Type

export type RegistryCommand =
  | {
    readonly _tag: "Publish"
    /** Parsed with unknown fields kept and already verified by the service: the decider records. */
    readonly manifest: ModelManifest
    readonly keyId: string
    readonly publicKey: string
    /** Accept a version below the highest published one (a backport). */
    readonly allowOlder?: boolean
  }
  | {
    readonly _tag: "Yank"
    readonly id: string
    readonly version: string
    readonly reason: string
    /** The requester's key, whose signature on the yank the service has checked. */
    readonly keyId: string
    readonly publicKey: string
  }
  | {
    readonly _tag: "Report"
    readonly id: string
    /** A report whose signature by `report.reporter` the caller has checked (net/AdapterSwarm.ts). */
    readonly report: QualityReport
  }

// Errors a publisher can hit; they cross RPC as typed failures.
export class OwnershipViolation extends Schema.TaggedError<OwnershipViolation>()("OwnershipViolation", {
  id: Schema.String,
  owner: Schema.String,
  keyId: Schema.String
}) {
  override get message() {
    return `${this.id} belongs to key ${this.owner}: key ${this.keyId} cannot publish or yank its versions`
  }
}

export class VersionExists
  extends Schema.TaggedError<VersionExists>()("VersionExists", { id: Schema.String, version: Schema.String })
{
  override get message() {
    return `${this.id}@${this.version} is already published (versions are immutable: publish a new one)`
  }
}

export class VersionNotNewer extends Schema.TaggedError<VersionNotNewer>()("VersionNotNewer", {
  id: Schema.String,
  version: Schema.String,
  highest: Schema.String
}) {
  override get message() {
    return `${this.id}@${this.version} is older than the published ${this.highest} (pass --allow-older to publish it anyway)`
  }
}

export class UnknownVersion
  extends Schema.TaggedError<UnknownVersion>()("UnknownVersion", { id: Schema.String, version: Schema.String })
{
  override get message() {
    return `${this.id}@${this.version} is not published`
  }
}

/** The registry's sharing gate refused an adapter (see AdapterSharing). */
export class SharingRefused extends Schema.TaggedError<SharingRefused>()("SharingRefused", {
  id: Schema.String,
  keyId: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `${this.keyId} may not share adapter ${this.id}: ${this.reason}`
  }
}

export class KindMismatch extends Schema.TaggedError<KindMismatch>()("KindMismatch", {
  id: Schema.String,
  type: Schema.String,
  expected: RegistryKind
}) {
  override get message() {
    return this.expected === "adapter"
      ? `${this.id} has type ${this.type}: only manifests of type adapter are published as adapters`
      : `${this.id} is an adapter: publish it as an adapter, not as a model`
  }
}

/** The manifest does not name its publisher's key, so no key can be given its id. */
export class PublisherUnnamed
  extends Schema.TaggedError<PublisherUnnamed>()("PublisherUnnamed", { id: Schema.String, version: Schema.String })
{
  override get message() {
    return `manifest ${this.id}@${this.version} names no publisherKey: a registry gives an id only to the key named as its publisher`
  }
}

/** The key named as publisher is not among the manifest's signatures (co-signers cannot publish for it). */
export class PublisherNotSigned extends Schema.TaggedError<PublisherNotSigned>()("PublisherNotSigned", {
  id: Schema.String,
  version: Schema.String,
  publisherKey: Schema.String
}) {
  override get message() {
    return `manifest ${this.id}@${this.version} is not signed by its publisher key ${this.publisherKey.slice(0, 16)}…`
  }
}

/** This registry publishes only for the keys on its allow-list. */
export class PublisherNotAllowed extends Schema.TaggedError<PublisherNotAllowed>()("PublisherNotAllowed", {
  id: Schema.String,
  keyId: Schema.String,
  publicKey: Schema.String
}) {
  override get message() {
    return `key ${this.keyId} (${
      this.publicKey.slice(0, 16)
    }…) may not publish on this registry: it is not on its list of publishers`
  }
}

export const RegistryError = Schema.Union(
  OwnershipViolation,
  VersionExists,
  VersionNotNewer,
  UnknownVersion,
  KindMismatch,
  SharingRefused,
  PublisherUnnamed,
  PublisherNotSigned,
  PublisherNotAllowed
)
export type RegistryError = typeof RegistryError.Type

// Errors of the service around the decider.
export class RegistryNotFound extends Schema.TaggedError<RegistryNotFound>()("RegistryNotFound", {
  kind: RegistryKind,
  id: Schema.String,
  version: optional(Schema.String),
  /** The id exists but every version of it is yanked. */
  allYanked: optional(Schema.Boolean)
}) {
  override get message() {
    if (this.version !== undefined) return `no version ${this.version} of ${this.kind} ${this.id}`
    return this.allYanked === true
      ? `every version of ${this.kind} ${this.id} is yanked`
      : `no ${this.kind} ${this.id} in the registry`
  }
}

export class YankNotSigned extends Schema.TaggedError<YankNotSigned>()("YankNotSigned", {
  id: Schema.String,
  version: Schema.String,
  keyId: Schema.String
}) {
  override get message() {
    return `yank of ${this.id}@${this.version}: signature by key ${this.keyId} does not verify`
  }
}

const initialState: RegistryState = { owner: null, versions: {}, highest: null }

/**
 * The signature that publishes a manifest: the one by the key its signed body names as publisher.
 * The signature list is outside the signed body, so its order gives nothing: a co-signer who puts
 * their signature first still publishes for the named key, or not at all.
 */
export const publisherSignature = (
  manifest: ModelManifest
): Either.Either<ManifestSignature, PublisherUnnamed | PublisherNotSigned> => {
  const { id, version, publisherKey } = manifest
  if (publisherKey === undefined) return Either.left(new PublisherUnnamed({ id, version }))
  const signature = (manifest.signatures ?? []).find((entry) => entry.publicKey === publisherKey)
  return signature === undefined
    ? Either.left(new PublisherNotSigned({ id, version, publisherKey }))
    : Either.right(signature)
}

const publishedEvent = (kind: RegistryKind, command: Extract<RegistryCommand, { _tag: "Publish" }>): RegistryEvent => {
  const { manifest } = command
  const fields = {
    id: manifest.id,
    version: manifest.version,
    manifest,
    digest: manifestDigest(manifest),
    keyId: command.keyId,
    publicKey: command.publicKey
  }
  if (kind === "model" || manifest.adapter === undefined) return ModelPublished.make(fields)
  const { adapter } = manifest
  return AdapterPublished.make({
    ...fields,
    name: manifest.name,
    baseModel: adapter.baseModel,
    rank: adapter.rank,
    domain: adapter.domain,
    ...(adapter.quality === undefined ? {} : { quality: adapter.quality })
  })
}

const makeDecide =
  (kind: RegistryKind) =>
  (command: RegistryCommand, state: RegistryState): Effect.Effect<ReadonlyArray<RegistryEvent>, RegistryError> => {
    switch (command._tag) {
      case "Publish": {
        const { id, version, type } = command.manifest
        if ((type === "adapter") !== (kind === "adapter")) {
          return Effect.fail(new KindMismatch({ id, type, expected: kind }))
        }
        // The service found this key's signature valid; the signed body must name it as publisher.
        const { publisherKey } = command.manifest
        if (publisherKey === undefined) return Effect.fail(new PublisherUnnamed({ id, version }))
        if (publisherKey !== command.publicKey) {
          return Effect.fail(new PublisherNotSigned({ id, version, publisherKey }))
        }
        // Keys are compared, not key ids: anyone can name their key "alice".
        if (state.owner !== null && state.owner.publicKey !== command.publicKey) {
          return Effect.fail(new OwnershipViolation({ id, owner: state.owner.keyId, keyId: command.keyId }))
        }
        if (Object.hasOwn(state.versions, version)) return Effect.fail(new VersionExists({ id, version }))
        if (state.highest !== null && command.allowOlder !== true && compareVersions(version, state.highest) < 0) {
          return Effect.fail(new VersionNotNewer({ id, version, highest: state.highest }))
        }
        return Effect.succeed([publishedEvent(kind, command)])
      }
      case "Yank": {
        const { id, version } = command
        const record = Object.hasOwn(state.versions, version) ? state.versions[version] : undefined
        if (state.owner === null || record === undefined) return Effect.fail(new UnknownVersion({ id, version }))
        if (state.owner.publicKey !== command.publicKey) {
          return Effect.fail(new OwnershipViolation({ id, owner: state.owner.keyId, keyId: command.keyId }))
        }
        // Yanking twice changes nothing: the first reason stands.
        return Effect.succeed(
          record.yanked === undefined ? [VersionYanked.make({ id, version, reason: command.reason })] : []
        )
      }
      case "Report": {
        const { id, report } = command
        if (state.owner === null) return Effect.fail(new UnknownVersion({ id, version: "any" }))
        // Latest by the report's own timestamp: replaying or reordering reports records nothing new.
        return Effect.succeed(
          supersedes(report, state.reports?.[report.reporter])
            ? [AdapterQualityReported.make({ id, ...report })]
            : []
        )
      }
    }
  }

const evolve = (state: RegistryState, event: RegistryEvent): RegistryState => {
  switch (event._tag) {
    case "ModelPublished":
    case "AdapterPublished": {
      const record: VersionRecord = {
        version: event.version,
        manifest: event.manifest,
        digest: event.digest,
        keyId: event.keyId,
        publicKey: event.publicKey
      }
      return {
        owner: state.owner ?? { keyId: event.keyId, publicKey: event.publicKey },
        versions: { ...state.versions, [event.version]: record },
        highest: state.highest === null || compareVersions(event.version, state.highest) > 0
          ? event.version
          : state.highest
      }
    }
    case "VersionYanked": {
      const record = state.versions[event.version]
      if (record === undefined) return state
      return { ...state, versions: { ...state.versions, [event.version]: { ...record, yanked: event.reason } } }
    }
    case "AdapterQualityReported": {
      const { _tag: _, id: __, ...report } = event
      if (!supersedes(report, state.reports?.[report.reporter])) return state
      return { ...state, reports: { ...state.reports, [report.reporter]: report } }
    }
  }
}

const registryOf = (
  kind: RegistryKind,
  category: string
): EventSourced<RegistryCommand, RegistryEvent, RegistryState, RegistryError> => ({
  category,
  decider: { initialState, decide: makeDecide(kind), evolve },
  event: RegistryEvent,
  state: RegistryState
})

export const Models = registryOf("model", "Model")
export const Adapters = registryOf("adapter", "Adapter")

/** The latest version that is not yanked, by semver precedence. */
export const latestVersion = (state: RegistryState): VersionRecord | undefined => {
  let latest: VersionRecord | undefined
  for (const record of Object.values(state.versions)) {
    if (record.yanked === undefined && (latest === undefined || compareVersions(record.version, latest.version) > 0)) {
      latest = record
    }
  }
  return latest
}

/** Every version, oldest first. */
export const versionsOf = (state: RegistryState): ReadonlyArray<VersionRecord> =>
  Object.values(state.versions).sort((left, right) => compareVersions(left.version, right.version))

/**
 * What the owner signs to yank a version: a domain-separated canonical statement, so a signature on a
 * manifest (or on a yank of another version or kind) can never be replayed as this one.
 */
export const yankMessage = (kind: RegistryKind, id: string, version: string, reason: string): string =>
  canonicalize({ type: "edge-net/yank/v1", kind, id, version, reason })

export const signYank = (signer: ManifestSigner, kind: RegistryKind, id: string, version: string, reason: string) => ({
  kind,
  id,
  version,
  reason,
  keyId: signer.keyId,
  publicKey: signer.publicKey,
  signature: signer.sign(yankMessage(kind, id, version, reason))
})

// Views: what the service answers and the RPC contract carries.
export const VersionView = Schema.Struct({
  version: Schema.String,
  digest: Schema.String,
  keyId: Schema.String,
  yanked: optional(Schema.String)
})
export type VersionView = typeof VersionView.Type

/** One version with its manifest as signed: a client verifies it against its own trust store. */
export const PublishedView = Schema.Struct({
  kind: RegistryKind,
  id: Schema.String,
  ...VersionView.fields,
  publicKey: Schema.String,
  manifest: Schema.Unknown
})
export type PublishedView = typeof PublishedView.Type

export const PublishReceipt = Schema.Struct({
  kind: RegistryKind,
  id: Schema.String,
  version: Schema.String,
  digest: Schema.String,
  keyId: Schema.String,
  /** Global journal position of the publication. */
  position: Schema.Number,
  /** The same manifest was published before; nothing new was recorded. */
  duplicate: Schema.Boolean
})
export type PublishReceipt = typeof PublishReceipt.Type

export const ModelSummary = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  /** The latest version that is not yanked. */
  version: Schema.String,
  type: Schema.String,
  family: optional(Schema.String),
  quantization: optional(Schema.String),
  format: optional(Schema.String),
  /** Bytes of all artifacts together. */
  size: Schema.Number,
  digest: Schema.String,
  keyId: Schema.String,
  publishedBy: Schema.String,
  publishedAt: Schema.String,
  expiresAt: Schema.String
})
export type ModelSummary = typeof ModelSummary.Type

export const AdapterSummary = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  version: Schema.String,
  baseModel: Schema.String,
  rank: Schema.Number,
  domain: Schema.String,
  quality: optional(Schema.Number),
  /** The quality score from signed reports and the declared quality (AdapterReports.ts), when there is one. */
  score: optional(Schema.Number),
  /** How many reporters' reports the score holds. */
  reports: optional(Schema.Number),
  digest: Schema.String,
  keyId: Schema.String,
  publishedAt: Schema.String
})
export type AdapterSummary = typeof AdapterSummary.Type
