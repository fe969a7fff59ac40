/**
 * Detached Ed25519 signatures on manifests, and the checks a client makes before trusting one, after
 * TUF: k-of-n distinct trusted keys, an expiry, and no silent rollback to an older version.
 */
import { Either, Schema } from "effect"
import type { ManifestSignature, ModelManifest } from "./Manifest.js"
import { compareVersions, manifestDigest, signedBody } from "./Manifest.js"
import { verifySignature } from "./NodeKey.js"

/** A key that can sign: its name, its public key (hex) and a function returning a hex signature. */
export interface ManifestSigner {
  readonly keyId: string
  readonly publicKey: string
  readonly sign: (message: string) => string
}

export interface TrustPolicy {
  /** Trusted publisher keys: keyId -> Ed25519 public key (hex). */
  readonly keys: ReadonlyMap<string, string>
  /** How many distinct trusted keys must have signed (default 1; never less than 1). */
  readonly threshold?: number
  /** Thresholds for particular manifest ids, overriding `threshold`. */
  readonly thresholds?: ReadonlyMap<string, number>
}

export interface VerifyOptions {
  /** Accept a version older than `highestTrusted` (the user asked for it explicitly). */
  readonly allowRollback?: boolean
  /** The highest version of this id the caller has trusted before. */
  readonly highestTrusted?: string | undefined
}

export interface VerifiedManifest {
  readonly manifest: ModelManifest
  /** sha256 (hex) of the signed body. */
  readonly digest: string
  /** The key ids whose signatures verified (trusted ones, for verifyManifest). */
  readonly verifiedBy: ReadonlyArray<string>
}

export const RejectionReason = Schema.Literal(
  "unsigned",
  "bad-signature",
  "untrusted-key",
  "threshold",
  "expired",
  "rollback"
)
export type RejectionReason = typeof RejectionReason.Type

const plural = (count: number, one: string, many: string) => (count === 1 ? one : many)

export class ManifestRejected extends Schema.TaggedError<ManifestRejected>()("ManifestRejected", {
  id: Schema.String,
  version: Schema.String,
  reason: RejectionReason,
  /** The keys concerned: those that failed (bad-signature, threshold) or are not trusted (untrusted-key). */
  keyIds: Schema.optionalWith(Schema.Array(Schema.String), { exact: true }),
  /** Trusted keys whose signatures verified, for threshold failures. */
  verifiedBy: Schema.optionalWith(Schema.Array(Schema.String), { exact: true }),
  required: Schema.optionalWith(Schema.Number, { exact: true }),
  expiresAt: Schema.optionalWith(Schema.String, { exact: true }),
  highestTrusted: Schema.optionalWith(Schema.String, { exact: true })
}) {
  override get message() {
    const subject = `manifest ${this.id}@${this.version}`
    const keys = (this.keyIds ?? []).join(", ")
    const count = this.keyIds?.length ?? 0
    switch (this.reason) {
      case "unsigned":
        return `${subject} is not signed`
      case "bad-signature":
        return `${subject}: ${plural(count, "signature by key", "signatures by keys")} ${keys} ${
          plural(count, "does", "do")
        } not verify`
      case "untrusted-key":
        return count === 0
          ? `${subject} is not signed by any trusted key`
          : `${subject} is signed only by untrusted ${plural(count, "key", "keys")} ${keys}`
      case "threshold": {
        const valid = this.verifiedBy?.length ?? 0
        const failed = count === 0 ? "" : ` (not counted: ${keys})`
        return `${subject} has ${valid} valid ${plural(valid, "signature", "signatures")} from trusted keys, ${
          this.required ?? "?"
        } required${failed}`
      }
      case "expired":
        return `${subject} is expired (expired ${this.expiresAt ?? "?"})`
      case "rollback":
        return `${subject} is a rollback: ${
          this.highestTrusted ?? "a newer version"
        } is already trusted (pass --allow-rollback to accept it)`
    }
  }
}

/** Adds `key`'s signature over the signed body, replacing an earlier one by the same key id. */
export const signManifest = (manifest: ModelManifest, key: ManifestSigner): ModelManifest => {
  const signature: ManifestSignature = {
    keyId: key.keyId,
    publicKey: key.publicKey,
    signature: key.sign(signedBody(manifest))
  }
  const existing = manifest.signatures ?? []
  const replaced = existing.some((entry) => entry.keyId === key.keyId)
  const signatures = replaced
    ? existing.map((entry) => (entry.keyId === key.keyId ? signature : entry))
    : [...existing, signature]
  return { ...manifest, signatures }
}

/**
 * Names `key` as the manifest's publisher (`publisherKey`, inside the signed body) and signs. Naming
 * changes the body, so it comes before any co-signature: earlier signatures are dropped.
 */
export const signAsPublisher = (manifest: ModelManifest, key: ManifestSigner): ModelManifest => {
  if (manifest.publisherKey === key.publicKey) return signManifest(manifest, key)
  const { signatures: _, ...body } = manifest
  return signManifest({ ...body, publisherKey: key.publicKey }, key)
}

type RejectionDetails = Omit<ConstructorParameters<typeof ManifestRejected>[0], "id" | "version" | "reason">

const rejected = (manifest: ModelManifest, reason: RejectionReason, details: RejectionDetails = {}) =>
  new ManifestRejected({ id: manifest.id, version: manifest.version, reason, ...details })

// Freshness and rollback, once the signatures are known good (TUF checks them in this order too).
const checkVersionAndExpiry = (
  manifest: ModelManifest,
  now: Date,
  options: VerifyOptions
): ManifestRejected | undefined => {
  const { highestTrusted } = options
  if (
    highestTrusted !== undefined && options.allowRollback !== true &&
    compareVersions(manifest.version, highestTrusted) < 0
  ) {
    return rejected(manifest, "rollback", { highestTrusted })
  }
  if (Date.parse(manifest.expiresAt) <= now.getTime()) {
    return rejected(manifest, "expired", { expiresAt: manifest.expiresAt })
  }
  return undefined
}

/**
 * Accepts the manifest only if at least the policy's threshold of distinct trusted keys signed it, it
 * has not expired, and it is not older than the highest version trusted before (unless allowed).
 */
export const verifyManifest = (
  manifest: ModelManifest,
  trust: TrustPolicy,
  now: Date,
  options: VerifyOptions = {}
): Either.Either<VerifiedManifest, ManifestRejected> => {
  const signatures = manifest.signatures ?? []
  if (signatures.length === 0) return Either.left(rejected(manifest, "unsigned"))
  const required = Math.max(1, trust.thresholds?.get(manifest.id) ?? trust.threshold ?? 1)
  const body = signedBody(manifest)
  const verifiedBy: Array<string> = []
  const verifiedKeys = new Set<string>()
  const failed: Array<string> = []
  const untrusted: Array<string> = []
  const trustedKeys = new Set(trust.keys.values())
  for (const signature of signatures) {
    // A trusted key id decides which key must have signed; an unknown key id still counts when the key
    // it names is trusted under another name (keys, not names, are what TUF trusts).
    const trustedKey = trust.keys.get(signature.keyId) ??
      (trustedKeys.has(signature.publicKey) ? signature.publicKey : undefined)
    if (trustedKey === undefined) untrusted.push(signature.keyId)
    else if (!verifySignature(trustedKey, body, signature.signature)) failed.push(signature.keyId)
    // Two key ids for one key are one signer, as TUF counts them.
    else if (!verifiedKeys.has(trustedKey)) {
      verifiedKeys.add(trustedKey)
      verifiedBy.push(signature.keyId)
    }
  }
  if (verifiedBy.length < required) {
    if (verifiedBy.length === 0 && failed.length === 0) {
      return Either.left(rejected(manifest, "untrusted-key", { keyIds: untrusted }))
    }
    if (verifiedBy.length === 0) return Either.left(rejected(manifest, "bad-signature", { keyIds: failed }))
    return Either.left(rejected(manifest, "threshold", { keyIds: [...failed, ...untrusted], verifiedBy, required }))
  }
  const problem = checkVersionAndExpiry(manifest, now, options)
  return problem === undefined
    ? Either.right({ manifest, digest: manifestDigest(manifest), verifiedBy })
    : Either.left(problem)
}

/**
 * Self-consistency, as a registry checks it: signed, every signature verifies against the public key
 * it names, and not expired. Says nothing about whether anyone should trust those keys.
 */
export const verifyEmbeddedSignatures = (
  manifest: ModelManifest,
  now: Date
): Either.Either<VerifiedManifest, ManifestRejected> => {
  const signatures = manifest.signatures ?? []
  if (signatures.length === 0) return Either.left(rejected(manifest, "unsigned"))
  const body = signedBody(manifest)
  const failed = signatures.filter((signature) => !verifySignature(signature.publicKey, body, signature.signature)).map(
    (signature) => signature.keyId
  )
  if (failed.length > 0) return Either.left(rejected(manifest, "bad-signature", { keyIds: failed }))
  const problem = checkVersionAndExpiry(manifest, now, {})
  return problem === undefined
    ? Either.right({
      manifest,
      digest: manifestDigest(manifest),
      verifiedBy: signatures.map((signature) => signature.keyId)
    })
    : Either.left(problem)
}

/** A TrustPolicy from plain keyId -> publicKey entries. */
export const trustPolicy = (
  keys: Iterable<readonly [string, string]>,
  threshold = 1,
  thresholds: Iterable<readonly [string, number]> = []
): TrustPolicy => ({ keys: new Map(keys), threshold, thresholds: new Map(thresholds) })
