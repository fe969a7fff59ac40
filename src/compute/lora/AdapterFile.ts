/**
 * Our adapter on disk: a directory holding `adapter.json` (the seed's LoRAAdapter metadata) and
 * `adapter.safetensors` (`<module>.lora_A` [rank, in] and `<module>.lora_B` [out, rank]).
 *
 * `checksum` is the SHA-256 of the safetensors bytes, and the Ed25519 signature covers the RFC 8785
 * canonical JSON of the metadata without `signature` (checksum and base model digest included), so one
 * signature vouches for the weights and for the exact base model they apply to. A classification
 * adapter adds `classifier.safetensors` (its head), named with its SHA-256 in `classifier`.
 */
import { Effect, Either, ParseResult, Schema } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import {
  IsoDateTime,
  KeyId,
  ManifestId,
  PublicKeyHex,
  SemVer,
  Sha256Hex,
  SignatureHex
} from "../../content/Manifest.js"
import type { ManifestSigner, TrustPolicy } from "../../content/ManifestSigning.js"
import { verifySignature } from "../../content/NodeKey.js"
import { createSha256, sha256, toHex } from "../../content/Sha256.js"
import { canonicalize } from "../../domain/CanonicalJson.js"
import { writeFileAtomically } from "../../node/AtomicFile.js"
import type { AdapterMetadata, LoraModule, LoraWeights } from "./Adapter.js"
import { classifierHeadFile, decodeClassifierHead, encodeClassifierHead } from "./ClassifierHeadFile.js"
import type { SafetensorsTensor } from "./Safetensors.js"
import { readSafetensors, SafetensorsError, writeSafetensors } from "./Safetensors.js"
import type { ClassifierHead } from "./train/ClassifierHead.js"

export const adapterMetadataFile = "adapter.json"
export const adapterWeightsFile = "adapter.safetensors"

export class AdapterFileError extends Schema.TaggedError<AdapterFileError>()("AdapterFileError", {
  path: Schema.String,
  kind: Schema.Literal(
    "FileSystem",
    "Invalid",
    "Checksum",
    "Unsigned",
    "BadSignature",
    "UntrustedKey",
    "BaseModelMismatch"
  ),
  problem: Schema.String
}) {
  override get message() {
    return `${this.path}: ${this.problem}`
  }
}

// Every leaf says what it wants, so a parse error reads "<field> <message>" on one line.
const says = (message: string) => ({ message: () => ({ message, override: true }) })
const Text = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1024)).annotations(
  says("must be a non-empty string of at most 1024 characters")
)
const AnyText = Schema.String.pipe(Schema.maxLength(4096)).annotations(
  says("must be a string of at most 4096 characters")
)
const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations(
  says("must be a whole number, 0 or more")
)
const Rank = Schema.Number.pipe(Schema.int(), Schema.between(1, 1024)).annotations(
  says("must be a whole number from 1 to 1024")
)
const Measure = Schema.Number.pipe(Schema.finite()).annotations(says("must be a finite number"))
const Positive = Schema.Number.pipe(Schema.finite(), Schema.positive()).annotations(says("must be a positive number"))
const Flag = Schema.Boolean.annotations(says("must be true or false"))
const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })
const object = <Fields extends Schema.Struct.Fields>(fields: Fields) =>
  Schema.Struct(fields).annotations({ message: () => "must be an object" })

/**
 * adapter.json. No defaults or transformations, and unknown fields are kept: the decoded value is the
 * publisher's JSON itself, so its canonical text is exactly what they signed.
 */
export const AdapterMetadataSchema = Schema.Struct({
  id: ManifestId,
  name: Text,
  description: AnyText,
  version: SemVer,
  createdAt: IsoDateTime,
  baseModel: ManifestId,
  baseModelDigest: Sha256Hex,
  rank: Rank,
  alpha: Positive,
  targetModules: Schema.NonEmptyArray(Text).annotations(says("must be a non-empty list of module names")),
  training: object({ steps: Count, finalLoss: Measure, samples: Count, duration: Measure }),
  quality: Schema.Struct(
    { perplexityDelta: optional(Measure), taskAccuracy: optional(Measure), humanScore: optional(Measure) },
    Schema.Record({ key: Schema.String, value: Measure })
  ).annotations({ message: () => "must be an object of named figures" }),
  sharing: object({ public: Flag, domain: AnyText, license: Text }),
  checksum: Sha256Hex,
  classifier: optional(object({ labels: Schema.Array(Text), checksum: Sha256Hex })),
  signature: optional(object({ keyId: KeyId, publicKey: PublicKeyHex, signature: SignatureHex }))
})

const decodeMetadata = Schema.decodeUnknownEither(AdapterMetadataSchema, {
  onExcessProperty: "preserve",
  errors: "first"
})

const fieldPath = (keys: ReadonlyArray<PropertyKey>) =>
  keys.reduce<string>(
    (text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`),
    ""
  )

/** Validates adapter.json's content; the problem is one line naming the field. */
export const parseAdapterMetadata = (json: unknown): Either.Either<AdapterMetadata, string> => {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return Either.left("must be a JSON object")
  return Either.mapLeft(decodeMetadata(json), (error) => {
    const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
    if (issue === undefined) return "is not adapter metadata"
    return `${fieldPath(issue.path)} ${issue._tag === "Missing" ? "is missing" : issue.message}`.trim()
  })
}

const invalid = (file: string, problem: string) => new AdapterFileError({ path: file, kind: "Invalid", problem })

const fileSystem = (file: string, cause: unknown) =>
  new AdapterFileError({
    path: file,
    kind: "FileSystem",
    problem: cause instanceof Error ? cause.message.split("\n")[0]! : String(cause)
  })

/** The safetensors bytes of an adapter's factors, F32 (exact) or F16 (half the size). */
export const encodeAdapterWeights = (weights: LoraWeights, dtype: "F32" | "F16" = "F32"): Uint8Array =>
  writeSafetensors(
    Object.entries(weights.modules).flatMap(([module, { inFeatures, outFeatures, A, B }]) => [
      [`${module}.lora_A`, { dtype, shape: [weights.rank, inFeatures], data: A }] as const,
      [`${module}.lora_B`, { dtype, shape: [outFeatures, weights.rank], data: B }] as const
    ])
  )

/**
 * Pairs factor tensors into modules: `factorOf` names each tensor's module and factor (A [rank, in] or
 * B [out, rank]), or refuses it with a reason. Every module needs both factors, all of one rank.
 */
export const loraModulesFrom = (
  tensors: ReadonlyMap<string, SafetensorsTensor>,
  factorOf: (key: string) => { readonly module: string; readonly factor: "A" | "B" } | string,
  rank: number
): Either.Either<Record<string, LoraModule>, string> => {
  const factors = new Map<string, { A?: SafetensorsTensor; B?: SafetensorsTensor }>()
  for (const [key, tensor] of tensors) {
    const named = factorOf(key)
    if (typeof named === "string") return Either.left(named)
    const pair = factors.get(named.module) ?? {}
    pair[named.factor] = tensor
    factors.set(named.module, pair)
  }
  if (factors.size === 0) return Either.left("holds no LoRA factors")
  const modules: Array<readonly [string, LoraModule]> = []
  for (const [module, { A, B }] of factors) {
    if (A === undefined || B === undefined) {
      const [have, missing] = A === undefined ? ["B", "A"] : ["A", "B"]
      return Either.left(`module ${module} has lora_${have} but no lora_${missing}`)
    }
    if (A.shape.length !== 2 || B.shape.length !== 2) {
      return Either.left(
        `module ${module}: lora_A and lora_B must be matrices, not [${A.shape.join(", ")}] and [${B.shape.join(", ")}]`
      )
    }
    const [rankOfA, inFeatures] = A.shape as [number, number]
    const [outFeatures, rankOfB] = B.shape as [number, number]
    if (rankOfA !== rank || rankOfB !== rank) {
      return Either.left(
        `module ${module}: lora_A [${A.shape.join(", ")}] and lora_B [${
          B.shape.join(", ")
        }] are not rank ${rank} ([rank, in] and [out, rank])`
      )
    }
    modules.push([module, { inFeatures, outFeatures, A: A.data, B: B.data }])
  }
  // fromEntries defines own properties: a module named like an Object.prototype member stays a module.
  return Either.right(Object.fromEntries(modules))
}

const ourFactor = (key: string) => {
  const match = /^(.+)\.lora_([AB])$/.exec(key)
  return match === null
    ? `tensor "${key}" is not <module>.lora_A or <module>.lora_B`
    : { module: match[1]!, factor: match[2] as "A" | "B" }
}

/** The adapter's weights from adapter.safetensors bytes, with rank and alpha from its metadata. */
export const decodeAdapterWeights = (
  bytes: Uint8Array,
  rank: number,
  alpha: number
): Either.Either<LoraWeights, string> => {
  let tensors: ReadonlyMap<string, SafetensorsTensor>
  try {
    tensors = readSafetensors(bytes).tensors
  } catch (cause) {
    if (cause instanceof SafetensorsError) return Either.left(cause.reason)
    throw cause
  }
  return Either.map(loraModulesFrom(tensors, ourFactor, rank), (modules) => ({ rank, alpha, modules }))
}

/** The text the signature covers: canonical JSON of the metadata without `signature`. */
export const adapterSignedBody = (metadata: AdapterMetadata): string => {
  const { signature: _, ...body } = metadata
  return canonicalize(body)
}

export const signAdapter = (metadata: AdapterMetadata, signer: ManifestSigner): AdapterMetadata => ({
  ...metadata,
  signature: { keyId: signer.keyId, publicKey: signer.publicKey, signature: signer.sign(adapterSignedBody(metadata)) }
})

export interface VerifyAdapterOptions {
  /** Refuse an unsigned adapter. */
  readonly requireSignature?: boolean
  /** Accept only signatures by these keys (implies requireSignature). */
  readonly trust?: TrustPolicy
}

/**
 * Checks the signature: it must verify against the public key it names and, given a trust policy, that
 * key must be trusted (under the key id it names, or as a trusted key under another id, as manifests do).
 */
export const verifyAdapterSignature = (
  metadata: AdapterMetadata,
  options: VerifyAdapterOptions,
  file: string
): Either.Either<void, AdapterFileError> => {
  const signature = metadata.signature
  const subject = `adapter ${metadata.id}@${metadata.version}`
  if (signature === undefined) {
    return options.requireSignature === true || options.trust !== undefined
      ? Either.left(new AdapterFileError({ path: file, kind: "Unsigned", problem: `${subject} is not signed` }))
      : Either.void
  }
  const trust = options.trust
  const trusted = trust === undefined
    ? signature.publicKey
    : trust.keys.get(signature.keyId) ??
      ([...trust.keys.values()].includes(signature.publicKey) ? signature.publicKey : undefined)
  if (trusted === undefined) {
    return Either.left(
      new AdapterFileError({
        path: file,
        kind: "UntrustedKey",
        problem: `${subject} is signed by untrusted key ${signature.keyId}`
      })
    )
  }
  if (!verifySignature(trusted, adapterSignedBody(metadata), signature.signature)) {
    return Either.left(
      new AdapterFileError({
        path: file,
        kind: "BadSignature",
        problem: `${subject}: the signature by key ${signature.keyId} does not verify`
      })
    )
  }
  return Either.void
}

/** What the caller says about an adapter; rank, alpha, target modules and checksum come from the weights. */
export type AdapterDescription = Omit<
  AdapterMetadata,
  "rank" | "alpha" | "targetModules" | "checksum" | "classifier" | "signature"
>

/** A classification adapter's head and its class names, one name per class. */
export interface AdapterClassifier {
  readonly head: ClassifierHead
  readonly labels: ReadonlyArray<string>
}

export interface SaveAdapterOptions {
  readonly signer?: ManifestSigner
  /** Storage of the factors (default F32). */
  readonly dtype?: "F32" | "F16"
  /** A classification adapter's head, written to classifier.safetensors. */
  readonly classifier?: AdapterClassifier | undefined
}

export interface Adapter {
  readonly metadata: AdapterMetadata
  readonly weights: LoraWeights
  readonly classifier?: AdapterClassifier
}

/**
 * Writes `directory/adapter.safetensors`, then `directory/adapter.json` (weights first, so metadata
 * never names weights that are not there yet), each atomically. Returns the metadata written.
 */
export const saveAdapter = Effect.fn("AdapterFile.saveAdapter")(function*(
  directory: string,
  description: AdapterDescription,
  weights: LoraWeights,
  options: SaveAdapterOptions = {}
) {
  const weightsFile = path.join(directory, adapterWeightsFile)
  const bytes = yield* Effect.try({
    try: () => encodeAdapterWeights(weights, options.dtype),
    catch: (cause) => invalid(weightsFile, cause instanceof SafetensorsError ? cause.reason : String(cause))
  })
  const classifier = options.classifier
  if (classifier !== undefined && classifier.labels.length !== classifier.head.classes) {
    return yield* invalid(
      path.join(directory, classifierHeadFile),
      `${classifier.labels.length} label(s) for ${classifier.head.classes} classes`
    )
  }
  const headBytes = classifier === undefined ? undefined : encodeClassifierHead(classifier.head, classifier.labels)
  // A full metadata object passed as the description must not carry its old signature (or head) along.
  const { signature: _, classifier: _head, ...described } = description as
    & AdapterDescription
    & Pick<AdapterMetadata, "signature" | "classifier">
  const unsigned: AdapterMetadata = {
    ...described,
    rank: weights.rank,
    alpha: weights.alpha,
    targetModules: Object.keys(weights.modules),
    checksum: toHex(sha256(bytes)),
    ...(classifier === undefined
      ? {}
      : { classifier: { labels: [...classifier.labels], checksum: toHex(sha256(headBytes!)) } })
  }
  const metadataFile = path.join(directory, adapterMetadataFile)
  const problem = parseAdapterMetadata(unsigned)
  if (Either.isLeft(problem)) return yield* invalid(metadataFile, problem.left)
  const metadata = options.signer === undefined ? unsigned : signAdapter(unsigned, options.signer)
  yield* Effect.tryPromise({
    try: async () => {
      await fsp.mkdir(directory, { recursive: true })
      await writeFileAtomically(weightsFile, bytes)
      if (headBytes !== undefined) await writeFileAtomically(path.join(directory, classifierHeadFile), headBytes)
      await writeFileAtomically(metadataFile, JSON.stringify(metadata, null, 2) + "\n")
    },
    catch: (cause) => fileSystem(directory, cause)
  })
  return metadata
})

const sameModules = (metadata: AdapterMetadata, weights: LoraWeights) => {
  const listed = [...metadata.targetModules].sort()
  const held = Object.keys(weights.modules).sort()
  return listed.length === held.length && listed.every((module, i) => module === held[i])
}

/**
 * Reads an adapter directory: metadata validated, the weights' SHA-256 checked against `checksum`,
 * their modules and rank against the metadata, and the signature when present (or when required).
 */
export const loadAdapter = Effect.fn("AdapterFile.loadAdapter")(
  function*(directory: string, options: VerifyAdapterOptions = {}) {
    const metadataFile = path.join(directory, adapterMetadataFile)
    const weightsFile = path.join(directory, adapterWeightsFile)
    const text = yield* Effect.tryPromise({
      try: () => fsp.readFile(metadataFile, "utf8"),
      catch: (cause) => fileSystem(metadataFile, cause)
    })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (cause) => invalid(metadataFile, `is not JSON (${cause instanceof Error ? cause.message : String(cause)})`)
    })
    const metadata = yield* Either.mapLeft(parseAdapterMetadata(json), (problem) => invalid(metadataFile, problem))
    yield* verifyAdapterSignature(metadata, options, metadataFile)
    const buffer = yield* Effect.tryPromise({
      try: () => fsp.readFile(weightsFile),
      catch: (cause) => fileSystem(weightsFile, cause)
    })
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
    const checksum = toHex(sha256(bytes))
    if (checksum !== metadata.checksum) {
      return yield* new AdapterFileError({
        path: weightsFile,
        kind: "Checksum",
        problem: `has sha256 ${checksum}, but ${adapterMetadataFile} says ${metadata.checksum}`
      })
    }
    const weights = yield* Either.mapLeft(
      decodeAdapterWeights(bytes, metadata.rank, metadata.alpha),
      (problem) => invalid(weightsFile, problem)
    )
    if (!sameModules(metadata, weights)) {
      return yield* invalid(
        weightsFile,
        `holds modules ${Object.keys(weights.modules).sort().join(", ")}, but targetModules lists ${
          [...metadata.targetModules].sort().join(", ")
        }`
      )
    }
    if (metadata.classifier === undefined) {
      return { metadata, weights } satisfies Adapter
    }
    const headFile = path.join(directory, classifierHeadFile)
    const headBuffer = yield* Effect.tryPromise({
      try: () => fsp.readFile(headFile),
      catch: (cause) => fileSystem(headFile, cause)
    })
    const headBytes = new Uint8Array(headBuffer.buffer, headBuffer.byteOffset, headBuffer.byteLength)
    const headChecksum = toHex(sha256(headBytes))
    if (headChecksum !== metadata.classifier.checksum) {
      return yield* new AdapterFileError({
        path: headFile,
        kind: "Checksum",
        problem: `has sha256 ${headChecksum}, but ${adapterMetadataFile} says ${metadata.classifier.checksum}`
      })
    }
    const decoded = yield* Effect.try({
      try: () => decodeClassifierHead(headBytes),
      catch: (cause) => invalid(headFile, cause instanceof SafetensorsError ? cause.reason : String(cause))
    })
    if (typeof decoded === "string") return yield* invalid(headFile, decoded)
    return { metadata, weights, classifier: decoded } satisfies Adapter
  }
)

/** SHA-256 (hex) of a file, streamed. */
const fileDigest = (file: string) =>
  Effect.tryPromise({
    try: async () => {
      const hash = createSha256()
      for await (
        const chunk of fs.createReadStream(file, { highWaterMark: 4 * 1024 * 1024 }) as AsyncIterable<Buffer>
      ) hash.update(chunk)
      return toHex(hash.digest())
    },
    catch: (cause) => fileSystem(file, cause)
  })

/** Refuses to apply an adapter to any model file but the one whose SHA-256 it names. */
export const checkBaseModel = Effect.fn("AdapterFile.checkBaseModel")(
  function*(metadata: AdapterMetadata, modelFile: string) {
    const digest = yield* fileDigest(modelFile)
    if (digest !== metadata.baseModelDigest) {
      return yield* new AdapterFileError({
        path: modelFile,
        kind: "BaseModelMismatch",
        problem:
          `adapter ${metadata.id} was made for base model ${metadata.baseModel} with sha256 ${metadata.baseModelDigest}, but this file has sha256 ${digest}`
      })
    }
    return digest
  }
)
