/**
 * The user's publisher keys, one file each in a directory (by default ~/.edge-net/keys/, resolved by
 * the caller): trusted public keys, their own signing keys, and the highest version trusted per id.
 */
import { Effect, Option, Schema } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Json } from "../domain/CanonicalJson.js"
import { writeFileAtomicallySync } from "../node/AtomicFile.js"
import { compareVersions, isVersion, KeyId, PublicKeyHex, SemVer } from "./Manifest.js"
import type { ManifestSigner, TrustPolicy } from "./ManifestSigning.js"
import { keyPairFromSeed } from "./NodeKey.js"

export class TrustStoreError extends Schema.TaggedError<TrustStoreError>()("TrustStoreError", {
  path: Schema.String,
  problem: Schema.String
}) {
  override get message() {
    return `${this.path}: ${this.problem}`
  }
}

export interface TrustedKey {
  readonly keyId: string
  readonly publicKey: string
  /** This store also holds the matching private key (`<keyId>.key`). */
  readonly canSign: boolean
}

const PublicKeyFile = Schema.Struct({ type: Schema.Literal("ed25519"), keyId: KeyId, publicKey: PublicKeyHex })
const PrivateKeyFile = Schema.Struct({
  type: Schema.Literal("ed25519"),
  keyId: Schema.optional(KeyId),
  publicKey: Schema.optional(PublicKeyHex),
  seed: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/))
})
// A floor that is not a version would compare with nothing: the file is refused rather than read leniently.
const TrustedVersions = Schema.Record({ key: Schema.String, value: SemVer })

const decodePublicKeyFile = Schema.decodeUnknownEither(Schema.parseJson(PublicKeyFile))
const decodePrivateKeyFile = Schema.decodeUnknownEither(Schema.parseJson(PrivateKeyFile))
const decodeTrustedVersions = Schema.decodeUnknownEither(Schema.parseJson(TrustedVersions))
const isKeyId = Schema.is(KeyId)
const isPublicKey = Schema.is(PublicKeyHex)

const reason = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** Writes `file` whole or not at all: a reader sees the old content or the new, never half of it. */
const writeAtomically = (file: string, body: Json, mode: number) => {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  writeFileAtomicallySync(file, JSON.stringify(body, null, 2) + "\n", { mode })
}

// PKCS8 DER of an Ed25519 key is a fixed 16-byte prefix and the 32-byte seed.
const seedFromPem = (pem: string): Uint8Array => {
  const key = crypto.createPrivateKey(pem)
  if (key.asymmetricKeyType !== "ed25519") {
    throw new Error(`a ${key.asymmetricKeyType ?? "unknown"} key, not an Ed25519 private key`)
  }
  return key.export({ format: "der", type: "pkcs8" }).subarray(-32)
}

/** The seed of key file text (our JSON key file, as NodeKey and `keys generate` write, or a PKCS8 PEM) and the key id it names. */
export const seedFromKeyText = (text: string): { readonly seed: Uint8Array; readonly keyId: string | undefined } => {
  if (text.trimStart().startsWith("-----BEGIN")) return { seed: seedFromPem(text), keyId: undefined }
  const parsed = decodePrivateKeyFile(text)
  if (parsed._tag === "Left") throw new Error("not an edge-net ed25519 key file or a PEM private key")
  const seed = Buffer.from(parsed.right.seed, "hex")
  if (parsed.right.publicKey !== undefined && parsed.right.publicKey !== keyPairFromSeed(seed).publicKey) {
    throw new Error("public key does not match the seed")
  }
  return { seed, keyId: parsed.right.keyId }
}

/** A signer from key file text: our JSON key file (as NodeKey writes, plus keyId) or a PKCS8 PEM. */
export const signerFromKeyText = (text: string, fallbackKeyId: string, explicitKeyId?: string): ManifestSigner => {
  const { keyId: fileKeyId, seed } = seedFromKeyText(text)
  const keyId = explicitKeyId ?? fileKeyId ?? fallbackKeyId
  if (!isKeyId(keyId)) {
    throw new Error(`cannot use "${keyId}" as a key id: pass one explicitly (letters, digits, _ . @ -)`)
  }
  const pair = keyPairFromSeed(seed)
  return { keyId, publicKey: pair.publicKey, sign: (message) => pair.sign(message) }
}

export class TrustStore extends Effect.Service<TrustStore>()("edge-net/TrustStore", {
  effect: (directory: string) =>
    Effect.gen(function*() {
      const versionsLock = yield* Effect.makeSemaphore(1)
      const publicFile = (keyId: string) => path.join(directory, `${keyId}.pub`)
      const privateFile = (keyId: string) => path.join(directory, `${keyId}.key`)
      const versionsFile = path.join(directory, "trusted-versions.json")

      const attempt = <A>(file: string, run: () => A) =>
        Effect.try({
          try: run,
          catch: (
            cause
          ) => (cause instanceof TrustStoreError ? cause : new TrustStoreError({ path: file, problem: reason(cause) }))
        })

      const fail = (file: string, problem: string) => new TrustStoreError({ path: file, problem })

      const checkKeyId = (keyId: string) =>
        isKeyId(keyId)
          ? Effect.void
          : Effect.fail(
            fail(directory, `"${keyId}" is not a key id (letters, digits, _ . @ -, starting with a letter or digit)`)
          )

      const readPublic = (file: string) => {
        const parsed = decodePublicKeyFile(fs.readFileSync(file, "utf8"))
        if (parsed._tag === "Left") throw fail(file, "not an edge-net ed25519 public key file")
        // The file name is the key id the policy uses: a file naming another key would trust it under a false name.
        if (`${parsed.right.keyId}.pub` !== path.basename(file)) {
          throw fail(file, `holds key ${parsed.right.keyId}, not the key its name says`)
        }
        return parsed.right
      }

      const list = Effect.fn("TrustStore.list")(function*() {
        return yield* attempt(directory, () => {
          if (!fs.existsSync(directory)) {
            return []
          }
          return fs
            .readdirSync(directory)
            .filter((name) => name.endsWith(".pub"))
            .sort()
            .map((name): TrustedKey => {
              const key = readPublic(path.join(directory, name))
              return { keyId: key.keyId, publicKey: key.publicKey, canSign: fs.existsSync(privateFile(key.keyId)) }
            })
        })
      })

      /** Trusts `publicKey` under `keyId`; refuses to silently replace a different key of the same name. */
      const trust = Effect.fn("TrustStore.trust")(function*(keyId: string, publicKey: string) {
        yield* checkKeyId(keyId)
        if (!isPublicKey(publicKey)) {
          return yield* Effect.fail(fail(publicFile(keyId), "a public key is 64 lowercase hex characters"))
        }
        const file = publicFile(keyId)
        return yield* attempt(file, (): TrustedKey => {
          if (fs.existsSync(file) && readPublic(file).publicKey !== publicKey) {
            throw fail(file, `key ${keyId} is already trusted with a different public key (untrust it first)`)
          }
          writeAtomically(file, { type: "ed25519", keyId, publicKey }, 0o644)
          return { keyId, publicKey, canSign: fs.existsSync(privateFile(keyId)) }
        })
      })

      /** Stops trusting `keyId`; a signing key of that name stays. True when a key was removed. */
      const untrust = Effect.fn("TrustStore.untrust")(function*(keyId: string) {
        yield* checkKeyId(keyId)
        const file = publicFile(keyId)
        return yield* attempt(file, () => {
          if (!fs.existsSync(file)) return false
          fs.rmSync(file)
          return true
        })
      })

      /** Creates a signing key (`<keyId>.key`, mode 0600) and trusts its public key. */
      const generate = Effect.fn("TrustStore.generate")(function*(keyId: string) {
        yield* checkKeyId(keyId)
        const file = privateFile(keyId)
        const pair = yield* attempt(file, () => {
          if (fs.existsSync(file)) throw fail(file, `a signing key ${keyId} already exists`)
          if (fs.existsSync(publicFile(keyId))) {
            throw fail(publicFile(keyId), `a key ${keyId} is already trusted (pick another key id)`)
          }
          const seed = crypto.randomBytes(32)
          const pair = keyPairFromSeed(seed)
          writeAtomically(
            file,
            { type: "ed25519", keyId, publicKey: pair.publicKey, seed: seed.toString("hex") },
            0o600
          )
          return pair
        })
        return yield* trust(keyId, pair.publicKey)
      })

      /**
       * A signer from this store's `<keyId>.key`, or else from a key file path (our JSON or a PKCS8 PEM,
       * as the seed's `sign --key ./private-key.pem` passes); its key id is `keyId`, the file's own, or
       * the file name without extension.
       */
      const signer = Effect.fn("TrustStore.signer")(function*(keyIdOrPath: string, keyId?: string) {
        const stored = isKeyId(keyIdOrPath) ? privateFile(keyIdOrPath) : undefined
        const file = stored !== undefined && fs.existsSync(stored) ? stored : path.resolve(keyIdOrPath)
        return yield* attempt(file, () => {
          if (!fs.existsSync(file)) {
            throw fail(
              stored ?? file,
              stored === undefined ? "no such key file" : `no signing key ${keyIdOrPath} in this store and no such file`
            )
          }
          const fallback = path.basename(file).replace(/\.(pem|key|json)$/, "")
          return signerFromKeyText(fs.readFileSync(file, "utf8"), fallback, keyId)
        })
      })

      /** Every trusted key, with a threshold of distinct keys (and optional per-id thresholds). */
      const policy = Effect.fn("TrustStore.policy")(
        function*(threshold = 1, thresholds: Readonly<Record<string, number>> = {}) {
          const keys = yield* list()
          return {
            keys: new Map(keys.map((key) => [key.keyId, key.publicKey] as const)),
            threshold,
            thresholds: new Map(Object.entries(thresholds))
          } satisfies TrustPolicy
        }
      )

      const readVersions = () => {
        if (!fs.existsSync(versionsFile)) return {}
        const parsed = decodeTrustedVersions(fs.readFileSync(versionsFile, "utf8"))
        if (parsed._tag === "Left") throw fail(versionsFile, "not a map of manifest ids to versions")
        return parsed.right
      }

      /** The highest version of `id` trusted so far, the floor below which a manifest is a rollback. */
      const highestTrusted = Effect.fn("TrustStore.highestTrusted")(function*(id: string) {
        const versions = yield* attempt(versionsFile, readVersions)
        return Option.fromNullable(Object.hasOwn(versions, id) ? versions[id] : undefined)
      })

      /** Remembers that `version` of `id` was trusted; the floor only rises. Returns the new floor. */
      const recordTrusted = Effect.fn("TrustStore.recordTrusted")(function*(id: string, version: string) {
        return yield* versionsLock.withPermits(1)(
          attempt(versionsFile, () => {
            if (!isVersion(version)) {
              throw fail(
                versionsFile,
                `cannot trust ${id}@${version}: "${version}" is not a semantic version such as 1.0.0`
              )
            }
            const versions = readVersions()
            const current = Object.hasOwn(versions, id) ? versions[id] : undefined
            if (current !== undefined && compareVersions(current, version) >= 0) return current
            writeAtomically(versionsFile, { ...versions, [id]: version }, 0o644)
            return version
          })
        )
      })

      return { directory, list, trust, untrust, generate, signer, policy, highestTrusted, recordTrusted } as const
    })
}) {}
