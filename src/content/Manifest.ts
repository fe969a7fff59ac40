/**
 * Model manifests in the seed's format (model-manifest-v1) plus our additions: a CID per artifact, an
 * expiry, and detached Ed25519 signatures over the RFC 8785 canonical text of everything else.
 */
import { Either, ParseResult, Schema } from "effect"
import { CID } from "multiformats/cid"
import semver from "semver"
import { canonicalize } from "../domain/CanonicalJson.js"
import { sha256, toHex } from "./Sha256.js"

export const MANIFEST_SCHEMA_URL = "https://edge-net.ruvector.dev/schemas/model-manifest-v1.json"

/** Manifest types we know of; `type` stays an open, lower-case word so new kinds need no schema change. */
export const KnownModelTypes = ["text-generation", "embedding", "vision", "ocr", "audio", "adapter"] as const

// Every leaf carries its own message (override: it also covers "not a string"), so a parse error reads
// "<field> <message>" without Effect's structural dump of the expected type.
const says = (message: string) => ({ message: () => ({ message, override: true }) })

const Text = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1024)).annotations(
  says("must be a non-empty string of at most 1024 characters")
)
const Flag = Schema.Boolean.annotations(says("must be true or false"))
const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations(
  says("must be a whole number, 0 or more")
)
const PositiveCount = Schema.Number.pipe(Schema.int(), Schema.positive()).annotations(
  says("must be a whole number, 1 or more")
)
const Measure = Schema.Number.pipe(Schema.finite()).annotations(says("must be a finite number"))
const TextList = Schema.Array(Text).annotations(says("must be a list of non-empty strings"))
const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })
const object = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations({ message: () => "must be an object" })

export const ManifestId = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9][a-z0-9._-]{0,127}$/)
).annotations(says("must be 1-128 lowercase letters, digits or . _ -, starting with a letter or digit"))

/**
 * A version as manifests, adapters and the trust store hold it: SemVer 2.0.0 `major.minor.patch` with an
 * optional `-prerelease`, as the semver package reads it, written canonically: no `v` prefix and no build
 * metadata, which has no precedence, so `1.0.0+a` and `1.0.0+b` would be two versions no order tells
 * apart. Every number is a safe integer (semver compares numeric prerelease parts as doubles, which
 * would make 1.0.0-9007199254740993 equal to 1.0.0-9007199254740992).
 */
export const isVersion = (text: string): boolean =>
  semver.valid(text) === text &&
  semver.prerelease(text)?.some((part) => typeof part === "string" && /^\d+$/.test(part)) !== true

export const SemVer = Schema.String.pipe(Schema.filter(isVersion)).annotations(
  says("must be a semantic version such as 1.0.0 or 1.0.0-rc.1")
)

export const ModelType = Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9-]{0,63}$/)).annotations(
  says(`must be a lowercase word such as ${KnownModelTypes.join(", ")}`)
)

export const Sha256Hex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)).annotations(
  says("must be 64 lowercase hex characters")
)

/** An IPFS CIDv1 in base32 (`bafk…` raw leaves, `bafy…` dag-pb), as any gateway accepts it. */
export const ArtifactCid = Schema.String.pipe(
  Schema.filter((text) => {
    if (!/^b[a-z2-7]{10,}$/.test(text)) return false
    try {
      return CID.parse(text).version === 1
    } catch {
      return false
    }
  })
).annotations(says("must be an IPFS CIDv1 in base32 (bafk… or bafy…)"))

export const IsoDateTime = Schema.String.pipe(
  Schema.pattern(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/),
  Schema.filter((text) => Number.isFinite(Date.parse(text)))
).annotations(says("must be an ISO 8601 date-time such as 2026-01-03T00:00:00Z"))

export const KeyId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/)).annotations(
  says("must be 1-128 letters, digits or _ . @ -, starting with a letter or digit")
)

export const PublicKeyHex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)).annotations(
  says("must be an Ed25519 public key as 64 lowercase hex characters")
)
export const SignatureHex = Schema.String.pipe(Schema.pattern(/^[0-9a-f]{128}$/)).annotations(
  says("must be an Ed25519 signature as 128 lowercase hex characters")
)

const ARTIFACT_NAME = /^[A-Za-z0-9_.-]{1,128}$/
export const ArtifactName = Schema.String.pipe(Schema.pattern(ARTIFACT_NAME)).annotations(
  says("is not a valid artifact name (letters, digits, _ . - only)")
)
const Filename = Schema.String.pipe(
  Schema.pattern(/^[^/\\\0]{1,255}$/),
  Schema.filter((name) => name !== "." && name !== "..")
).annotations(says("must be a plain file name, without / or \\"))

export const ArtifactEntry = object({
  filename: Filename,
  size: Count,
  sha256: Sha256Hex,
  cid: ArtifactCid,
  /** The seed's per-artifact signature: accepted on input, never produced (the manifest signature covers it). */
  signature: optional(Text)
})
export type ArtifactEntry = typeof ArtifactEntry.Type

export const Quantization = Schema.Literal("FP32", "FP16", "INT8", "INT4").annotations(
  says("must be one of FP32, FP16, INT8, INT4")
)
export type Quantization = typeof Quantization.Type

export const Architecture = object({
  type: Text,
  layers: optional(PositiveCount),
  hiddenSize: optional(PositiveCount),
  vocabSize: optional(PositiveCount),
  contextLength: optional(PositiveCount)
})

const Figures = Schema.Record({ key: Schema.String, value: Measure }).annotations({
  message: () => "must be an object of finite numbers"
})

/** A model by its ONNX file's digest, with its registry id and version when it has them. */
export const BaseModelRef = object({ sha256: Sha256Hex, id: optional(ManifestId), version: optional(Text) })

export const Optimization = object({
  quantization: Quantization,
  /** GPTQ, AWQ, RTN, QDQ, DynamicQuantizeLinear, FP16, auto, …: how the weights were quantized. */
  format: optional(Text),
  groupSize: optional(PositiveCount),
  originalSize: optional(Text),
  optimizedSize: optional(Text),
  /** Optimized bytes over original bytes, as the optimizer measured them. */
  sizeRatio: optional(Measure),
  pruning: optional(object({ method: Text, sparsity: Measure })),
  /** Agreement with the FP32 model on held-out inputs: cosine, maxError, top1, perplexityDelta, a task metric… */
  quality: optional(Figures),
  /** Nodes whose weights stayed FP32. */
  keptFp32: optional(TextList),
  /** Bits per weight, when the precision was chosen per layer (`auto`). */
  precision: optional(
    Schema.Record({ key: Schema.String, value: PositiveCount }).annotations({
      message: () => "must be an object of bit widths"
    })
  ),
  /** The optimizer actor's job that produced the model (its decisions can be audited there). */
  optimizerJob: optional(Text),
  /**
   * The model this one was optimized from. Quantization and pruning keep every LoRA target's module
   * name and shape, so an adapter made for that model runs on this one: adapters are keyed to it.
   */
  baseModel: optional(BaseModelRef)
})
export type Optimization = typeof Optimization.Type

export const DistributionSource = object({
  type: Text,
  baseUrl: optional(Text),
  region: optional(Text),
  cid: optional(Text),
  gateways: optional(TextList)
})

export const Distribution = object({ primary: optional(DistributionSource), fallback: optional(DistributionSource) })

export const Requirements = object({
  minMemory: optional(Count),
  simdRequired: optional(Flag),
  webgpuOptional: optional(Flag),
  browserSupport: optional(TextList)
})

export const AdapterSlots = object({
  baseRank: optional(PositiveCount),
  microRank: optional(PositiveCount),
  slots: optional(TextList)
})

export const Benchmarks = object({
  perplexity: optional(Measure),
  tokensPerSecond: optional(Schema.Record({ key: Schema.String, value: Measure })),
  memoryUsage: optional(Count),
  /** Median milliseconds per inference, by runtime (`onnxruntime-node`), of this model and of its FP32 original. */
  latencyMs: optional(Figures),
  baselineLatencyMs: optional(Figures)
})
export type Benchmarks = typeof Benchmarks.Type

/** What a LoRA adapter manifest (type "adapter") adds: the model it adapts and how. */
export const AdapterInfo = object({
  baseModel: ManifestId,
  /** sha256 of the base model's ONNX file (its `model` artifact), pinning the exact weights the adapter was trained on. */
  baseModelDigest: optional(Sha256Hex),
  rank: PositiveCount,
  alpha: optional(Measure),
  targetModules: optional(TextList),
  domain: Text,
  quality: optional(Measure)
})
export type AdapterInfo = typeof AdapterInfo.Type

export const ManifestSignature = object({ keyId: KeyId, publicKey: PublicKeyHex, signature: SignatureHex })
export type ManifestSignature = typeof ManifestSignature.Type

// A key that fails ArtifactName is an excess property to Schema (kept by "preserve"), so names are also
// checked in crossFieldProblem.
const Artifacts = Schema.Record({ key: ArtifactName, value: ArtifactEntry })
  .annotations({ message: () => "must be an object of named artifacts" })
  .pipe(Schema.filter((artifacts) => Object.keys(artifacts).length > 0))
  .annotations({ message: () => "must list at least one artifact" })

/**
 * No field has a default or a transformation: the decoded value (unknown fields preserved) is the
 * publisher's JSON itself, so its canonical text is exactly what they signed.
 */
export const ModelManifest = Schema.Struct({
  $schema: optional(Text),
  id: ManifestId,
  name: Text,
  version: SemVer,
  type: ModelType,
  family: optional(Text),
  architecture: optional(Architecture),
  optimization: optional(Optimization),
  artifacts: Artifacts,
  distribution: optional(Distribution),
  requirements: optional(Requirements),
  adapters: optional(AdapterSlots),
  adapter: optional(AdapterInfo),
  benchmarks: optional(Benchmarks),
  license: Text,
  homepage: optional(Text),
  publishedAt: IsoDateTime,
  publishedBy: Text,
  /**
   * The publisher's Ed25519 public key. Inside the signed body, so no co-signer can change it: a
   * registry gives a new id to this key only, and only when it is among the valid signatures.
   */
  publisherKey: optional(PublicKeyHex),
  expiresAt: IsoDateTime,
  signatures: optional(Schema.Array(ManifestSignature).annotations({ message: () => "must be a list of signatures" }))
})
export type ModelManifest = typeof ModelManifest.Type

export class ManifestError extends Schema.TaggedError<ManifestError>()("ManifestError", {
  /** Dotted path of the offending field (`artifacts.model.sha256`), empty for the document itself. */
  field: Schema.String,
  problem: Schema.String
}) {
  override get message() {
    return this.field === "" ? `invalid manifest: ${this.problem}` : `invalid manifest: ${this.field} ${this.problem}`
  }
}

const decode = Schema.decodeUnknownEither(ModelManifest, { onExcessProperty: "preserve", errors: "first" })

const fieldPath = (path: ReadonlyArray<PropertyKey>) =>
  path.reduce<string>(
    (text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`),
    ""
  )

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

// Rules that span fields, checked once the shape is right.
const crossFieldProblem = (manifest: ModelManifest): ManifestError | undefined => {
  if (manifest.$schema !== undefined && manifest.$schema !== MANIFEST_SCHEMA_URL) {
    return new ManifestError({
      field: "$schema",
      problem: `must be ${MANIFEST_SCHEMA_URL} (the only manifest format this version reads)`
    })
  }
  for (const name of Object.keys(manifest.artifacts)) {
    if (!ARTIFACT_NAME.test(name)) {
      return new ManifestError({
        field: `artifacts[${JSON.stringify(name)}]`,
        problem: "is not a valid artifact name (letters, digits, _ . - only)"
      })
    }
  }
  if (Date.parse(manifest.expiresAt) <= Date.parse(manifest.publishedAt)) {
    return new ManifestError({
      field: "expiresAt",
      problem: `must be later than publishedAt (${manifest.publishedAt})`
    })
  }
  if (manifest.type === "adapter" && manifest.adapter === undefined) {
    return new ManifestError({
      field: "adapter",
      problem: "is missing (a manifest of type adapter describes its base model)"
    })
  }
  if (manifest.type !== "adapter" && manifest.adapter !== undefined) {
    return new ManifestError({
      field: "adapter",
      problem: `is only allowed on manifests of type adapter, not ${manifest.type}`
    })
  }
  const seen = new Set<string>()
  for (const [index, signature] of (manifest.signatures ?? []).entries()) {
    if (seen.has(signature.keyId)) {
      return new ManifestError({ field: `signatures[${index}].keyId`, problem: `repeats key ${signature.keyId}` })
    }
    seen.add(signature.keyId)
  }
  return undefined
}

/** Validates a JSON value as a manifest; unknown fields are kept, because the signatures cover them. */
export const parseManifest = (json: unknown): Either.Either<ModelManifest, ManifestError> => {
  if (!isPlainObject(json)) return Either.left(new ManifestError({ field: "", problem: "must be a JSON object" }))
  return Either.flatMap(
    Either.mapLeft(decode(json), (error) => {
      const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
      const problem = issue === undefined
        ? "does not match model-manifest-v1"
        : issue._tag === "Missing"
        ? "is missing"
        : issue.message
      return new ManifestError({ field: fieldPath(issue?.path ?? []), problem })
    }),
    (manifest) => {
      const problem = crossFieldProblem(manifest)
      return problem === undefined ? Either.right(manifest) : Either.left(problem)
    }
  )
}

/** Parses manifest text (a file, a request body). */
export const parseManifestText = (text: string): Either.Either<ModelManifest, ManifestError> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (cause) {
    return Either.left(
      new ManifestError({
        field: "",
        problem: `is not JSON (${cause instanceof Error ? cause.message : String(cause)})`
      })
    )
  }
  return parseManifest(json)
}

/** The text every signature covers: the canonical JSON of the manifest without its `signatures`. */
export const signedBody = (manifest: ModelManifest): string => {
  const { signatures: _, ...body } = manifest
  return canonicalize(body)
}

/** sha256 (hex) of the signed body: names a manifest's content whatever signatures it carries. */
export const manifestDigest = (manifest: ModelManifest): string =>
  toHex(sha256(new TextEncoder().encode(signedBody(manifest))))

/** Text compared as a version that is not one (see isVersion); versions from parsed manifests never are. */
export class InvalidVersion extends Error {
  override readonly name = "InvalidVersion"
}

const required = (version: string) => {
  if (!isVersion(version)) {
    throw new InvalidVersion(`"${version}" is not a semantic version such as 1.0.0 or 1.0.0-rc.1`)
  }
  return version
}

/**
 * Semantic Versioning 2.0.0 precedence (semver's compare): -1, 0 or 1. A prerelease sorts before its
 * release, its identifiers compare one by one (numbers numerically and below words). Rollback checks
 * rest on this order, so there is no lenient reading: anything isVersion refuses throws InvalidVersion.
 */
export const compareVersions = (left: string, right: string): -1 | 0 | 1 =>
  semver.compare(required(left), required(right))

/** The bytes of all a manifest's artifacts together: what a pull downloads and the cache keeps. */
export const manifestBytes = (manifest: ModelManifest): number =>
  Object.values(manifest.artifacts).reduce((sum, artifact) => sum + artifact.size, 0)

/** The versions among `names` (directory or file names: anything else there is not ours), oldest first. */
export const versionsAmong = (names: Iterable<string>): Array<string> =>
  Array.from(names).filter(isVersion).sort(compareVersions)

const distributionEntries = (
  manifest: ModelManifest
) => [manifest.distribution?.primary, manifest.distribution?.fallback]

/** The manifest's CDN base URLs (every non-IPFS distribution entry), each ending in `/`. */
export const cdnBaseUrls = (manifest: ModelManifest): Array<string> =>
  distributionEntries(manifest).flatMap((entry) =>
    entry?.baseUrl !== undefined && entry.type !== "ipfs"
      ? [entry.baseUrl.endsWith("/") ? entry.baseUrl : `${entry.baseUrl}/`]
      : []
  )

/** The manifest's IPFS gateways as roots (`https://ipfs.io`, without a trailing `/ipfs`). */
export const gatewayRoots = (manifest: ModelManifest): Array<string> =>
  distributionEntries(manifest).flatMap((entry) =>
    entry?.type === "ipfs"
      ? (entry.gateways ?? []).map((gateway) => gatewayRoot(gateway.includes("://") ? gateway : `https://${gateway}`))
      : []
  )

/** `https://ipfs.io/ipfs/` and `https://ipfs.io` name the same gateway. */
export const gatewayRoot = (url: string) => url.replace(/\/+$/, "").replace(/\/ipfs$/, "")

/** The ONNX file's digest, or undefined for a manifest without one. */
export const onnxDigestOf = (manifest: ModelManifest): string | undefined =>
  Object.values(manifest.artifacts).find((artifact) => artifact.filename.endsWith(".onnx"))?.sha256

/**
 * The digest adapters for this model are made for: the model it was optimized from, when its manifest
 * says so, else its own ONNX file. An adapter trained on the FP32 model and one trained on its INT4
 * variant (QLoRA) then both run on either.
 */
export const adapterBaseDigestOf = (manifest: ModelManifest): string | undefined =>
  manifest.optimization?.baseModel?.sha256 ?? onnxDigestOf(manifest)
