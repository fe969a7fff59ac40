import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { readManifest, saveManifest } from "../../src/content/LocalModels.js"
import type { ModelManifest } from "../../src/content/Manifest.js"
import {
  compareVersions,
  InvalidVersion,
  manifestDigest,
  parseManifest,
  parseManifestText,
  signedBody,
  versionsAmong
} from "../../src/content/Manifest.js"
import type { ManifestSigner } from "../../src/content/ManifestSigning.js"
import {
  signManifest,
  trustPolicy,
  verifyEmbeddedSignatures,
  verifyManifest
} from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed, verifySignature } from "../../src/content/NodeKey.js"
import { TrustStore } from "../../src/content/TrustStore.js"
import { tempDir } from "../support/TempDir.js"

const signerOf = (keyId: string, seedByte: number): ManifestSigner => {
  const pair = keyPairFromSeed(new Uint8Array(32).fill(seedByte))
  return { keyId, publicKey: pair.publicKey, sign: (message) => pair.sign(message) }
}
const alice = signerOf("alice", 1)
const bob = signerOf("bob", 2)
const carol = signerOf("carol", 3)
const mallory = signerOf("mallory", 4)

const CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
const NOW = new Date("2026-06-01T00:00:00Z")

const rawManifest = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  $schema: "https://edge-net.ruvector.dev/schemas/model-manifest-v1.json",
  id: "tiny-lm",
  name: "Tiny LM",
  version: "1.0.0",
  type: "text-generation",
  family: "tiny",
  architecture: { type: "transformer", layers: 2, hiddenSize: 64, vocabSize: 256, contextLength: 128 },
  optimization: { quantization: "INT4", format: "RTN", groupSize: 32 },
  artifacts: {
    model: { filename: "model.onnx", size: 4096, sha256: "a".repeat(64), cid: CID },
    tokenizer: { filename: "tokenizer.json", size: 100, sha256: "b".repeat(64), cid: CID }
  },
  license: "MIT",
  publishedAt: "2026-01-03T00:00:00Z",
  publishedBy: "tiny-team",
  expiresAt: "2027-01-01T00:00:00Z",
  ...overrides
})

const parsed = (raw: unknown): ModelManifest => Either.getOrThrow(parseManifest(raw))
const problem = (raw: unknown) =>
  Either.match(parseManifest(raw), { onLeft: (error) => error.message, onRight: () => "accepted" })
const rejection = (result: ReturnType<typeof verifyManifest>) =>
  Either.match(result, { onLeft: (error) => error, onRight: () => undefined })

describe("Manifest", () => {
  it("reads the seed's format, its per-artifact signature and our additions", () => {
    const manifest = parsed(
      rawManifest({
        artifacts: {
          model: { filename: "model.onnx", size: 1, sha256: "c".repeat(64), cid: CID, signature: "MEUCIQDx" }
        }
      })
    )
    expect(manifest.artifacts["model"]?.signature).toBe("MEUCIQDx")
    expect(manifest.optimization?.quantization).toBe("INT4")
  })

  it("names the offending field in one line", () => {
    const withArtifact = (patch: Record<string, unknown>) =>
      rawManifest({
        artifacts: { model: { filename: "model.onnx", size: 1, sha256: "c".repeat(64), cid: CID, ...patch } }
      })
    expect(problem(withArtifact({ sha256: "ABC" }))).toBe(
      "invalid manifest: artifacts.model.sha256 must be 64 lowercase hex characters"
    )
    expect(problem(withArtifact({ cid: "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG" }))).toBe(
      "invalid manifest: artifacts.model.cid must be an IPFS CIDv1 in base32 (bafk… or bafy…)"
    )
    expect(problem(withArtifact({ filename: "../model.onnx" }))).toMatch(
      /^invalid manifest: artifacts\.model\.filename must be a plain file name/
    )
    expect(problem(withArtifact({ size: -1 }))).toBe(
      "invalid manifest: artifacts.model.size must be a whole number, 0 or more"
    )
    const { expiresAt: _, ...withoutExpiry } = rawManifest()
    expect(problem(withoutExpiry)).toBe("invalid manifest: expiresAt is missing")
    expect(problem(rawManifest({ version: "1.0" }))).toBe(
      "invalid manifest: version must be a semantic version such as 1.0.0 or 1.0.0-rc.1"
    )
    expect(problem(rawManifest({ id: "Tiny LM" }))).toMatch(/^invalid manifest: id must be 1-128 lowercase letters/)
    expect(problem(rawManifest({ artifacts: {} }))).toBe("invalid manifest: artifacts must list at least one artifact")
    expect(problem(rawManifest({ artifacts: { "a/b": { filename: "x", size: 1, sha256: "c".repeat(64), cid: CID } } })))
      .toMatch(
        /^invalid manifest: artifacts\["a\/b"\] is not a valid artifact name/
      )
    expect(problem(rawManifest({ optimization: { quantization: "INT3" } }))).toBe(
      "invalid manifest: optimization.quantization must be one of FP32, FP16, INT8, INT4"
    )
    expect(problem(rawManifest({ signatures: [{ keyId: "alice", publicKey: "00", signature: "00" }] }))).toBe(
      "invalid manifest: signatures[0].publicKey must be an Ed25519 public key as 64 lowercase hex characters"
    )
    expect(problem(rawManifest({ type: "adapter" }))).toMatch(/^invalid manifest: adapter is missing/)
    expect(problem(rawManifest({ $schema: "https://edge-net.ruvector.dev/schemas/model-manifest-v2.json" }))).toMatch(
      /^invalid manifest: \$schema must be /
    )
    expect(problem(rawManifest({ expiresAt: "2025-01-01T00:00:00Z" }))).toBe(
      "invalid manifest: expiresAt must be later than publishedAt (2026-01-03T00:00:00Z)"
    )
    expect(problem([1, 2])).toBe("invalid manifest: must be a JSON object")
    expect(Either.getLeft(parseManifestText("{ nope")).pipe(Option.map((error) => error.message), Option.getOrThrow))
      .toMatch(/^invalid manifest: is not JSON/)
    for (const message of [problem(withArtifact({ sha256: 5 })), problem(rawManifest({ artifacts: 3 }))]) {
      expect(message).not.toContain("\n")
    }
  })

  it("signs the same canonical body whatever the key order", () => {
    const manifest = parsed(rawManifest())
    const reordered = parsed(Object.fromEntries(Object.entries(rawManifest()).reverse()))
    expect(signedBody(reordered)).toBe(signedBody(manifest))
    expect(manifestDigest(reordered)).toBe(manifestDigest(manifest))
    const signed = signManifest(manifest, alice)
    expect(signedBody(signed)).toBe(signedBody(manifest))
    expect(signedBody(manifest).startsWith("{\"$schema\":")).toBe(true)
  })

  it("a signature verifies against the trusted key; re-signing replaces it", () => {
    const signed = signManifest(signManifest(parsed(rawManifest()), alice), alice)
    expect(signed.signatures).toHaveLength(1)
    expect(signed.signatures?.[0]).toMatchObject({ keyId: "alice", publicKey: alice.publicKey })
    expect(verifySignature(alice.publicKey, signedBody(signed), signed.signatures![0]!.signature)).toBe(true)
    const verified = Either.getOrThrow(verifyManifest(signed, trustPolicy([["alice", alice.publicKey]]), NOW))
    expect(verified.verifiedBy).toEqual(["alice"])
    expect(verified.digest).toBe(manifestDigest(signed))
    expect(Either.isRight(verifyEmbeddedSignatures(signed, NOW))).toBe(true)
  })

  it("keeps unknown fields, which the signature covers, through JSON text", () => {
    const signed = signManifest(
      parsed(
        rawManifest({
          "x-vendor": { nested: [1, "two", null] },
          optimization: { quantization: "INT8", calibration: "wiki" }
        })
      ),
      alice
    )
    const reread = Either.getOrThrow(parseManifestText(JSON.stringify(signed)))
    expect((reread as Record<string, unknown>)["x-vendor"]).toEqual({ nested: [1, "two", null] })
    expect(reread.optimization).toMatchObject({ calibration: "wiki" })
    expect(Either.isRight(verifyManifest(reread, trustPolicy([["alice", alice.publicKey]]), NOW))).toBe(true)
    const stripped = Either.getOrThrow(parseManifest({ ...JSON.parse(JSON.stringify(signed)), "x-vendor": undefined }))
    expect(rejection(verifyManifest(stripped, trustPolicy([["alice", alice.publicKey]]), NOW))?.reason).toBe(
      "bad-signature"
    )
  })

  it("refuses a tampered manifest, an unsigned one and one signed by an untrusted key", () => {
    const trust = trustPolicy([["alice", alice.publicKey]])
    const signed = signManifest(parsed(rawManifest()), alice)
    const tampered = {
      ...signed,
      artifacts: { ...signed.artifacts, model: { ...signed.artifacts["model"]!, sha256: "d".repeat(64) } }
    }
    expect(rejection(verifyManifest(tampered, trust, NOW))?.message).toBe(
      "manifest tiny-lm@1.0.0: signature by key alice does not verify"
    )
    expect(rejection(verifyManifest(parsed(rawManifest()), trust, NOW))?.message).toBe(
      "manifest tiny-lm@1.0.0 is not signed"
    )
    const byMallory = signManifest(parsed(rawManifest()), mallory)
    expect(rejection(verifyManifest(byMallory, trust, NOW))).toMatchObject({
      reason: "untrusted-key",
      keyIds: ["mallory"]
    })
    expect(rejection(verifyManifest(byMallory, trust, NOW))?.message).toBe(
      "manifest tiny-lm@1.0.0 is signed only by untrusted key mallory"
    )
    // Mallory naming his key "alice" does not make it alice's.
    const impostor = signManifest(parsed(rawManifest()), { ...mallory, keyId: "alice" })
    expect(rejection(verifyManifest(impostor, trust, NOW))?.reason).toBe("bad-signature")
    expect(Either.isLeft(verifyEmbeddedSignatures(tampered, NOW))).toBe(true)
    // A trusted key signing under another name is still that key.
    const renamed = signManifest(parsed(rawManifest()), { ...alice, keyId: "alice-laptop" })
    expect(Either.getOrThrow(verifyManifest(renamed, trust, NOW)).verifiedBy).toEqual(["alice-laptop"])
  })

  it("refuses an expired manifest", () => {
    const signed = signManifest(
      parsed(rawManifest({ publishedAt: "2025-12-01T00:00:00Z", expiresAt: "2026-01-01T00:00:00Z" })),
      alice
    )
    const refused = rejection(verifyManifest(signed, trustPolicy([["alice", alice.publicKey]]), NOW))
    expect(refused?.reason).toBe("expired")
    expect(refused?.message).toBe("manifest tiny-lm@1.0.0 is expired (expired 2026-01-01T00:00:00Z)")
    expect(
      Either.isRight(
        verifyManifest(signed, trustPolicy([["alice", alice.publicKey]]), new Date("2025-12-31T23:59:59Z"))
      )
    ).toBe(true)
  })

  it("refuses a rollback unless asked to accept it", () => {
    const trust = trustPolicy([["alice", alice.publicKey]])
    const older = signManifest(parsed(rawManifest({ version: "0.9.0" })), alice)
    const refused = rejection(verifyManifest(older, trust, NOW, { highestTrusted: "1.0.0" }))
    expect(refused?.message).toBe(
      "manifest tiny-lm@0.9.0 is a rollback: 1.0.0 is already trusted (pass --allow-rollback to accept it)"
    )
    expect(Either.isRight(verifyManifest(older, trust, NOW, { highestTrusted: "1.0.0", allowRollback: true }))).toBe(
      true
    )
    expect(Either.isRight(verifyManifest(older, trust, NOW, { highestTrusted: "0.9.0" }))).toBe(true)
    // By precedence, not by text: 1.9.0 is older than 1.10.0, 1.10.0-rc.1 than 1.10.0 and newer than 1.9.0.
    const versioned = (version: string) => signManifest(parsed(rawManifest({ version })), alice)
    expect(rejection(verifyManifest(versioned("1.9.0"), trust, NOW, { highestTrusted: "1.10.0" }))?.reason).toBe(
      "rollback"
    )
    expect(rejection(verifyManifest(versioned("1.10.0-rc.1"), trust, NOW, { highestTrusted: "1.10.0" }))?.reason).toBe(
      "rollback"
    )
    expect(Either.isRight(verifyManifest(versioned("1.10.0-rc.1"), trust, NOW, { highestTrusted: "1.9.0" }))).toBe(true)
  })

  it("needs k distinct trusted keys: 2-of-3 passes with one bad signature, fails with two", () => {
    const trust = trustPolicy([["alice", alice.publicKey], ["bob", bob.publicKey], ["carol", carol.publicKey]], 2)
    const manifest = parsed(rawManifest())
    const badCarol = { ...carol, sign: () => "00".repeat(64) }
    const badBob = { ...bob, sign: () => "00".repeat(64) }
    const oneBad = [alice, bob, badCarol].reduce(signManifest, manifest)
    expect(Either.getOrThrow(verifyManifest(oneBad, trust, NOW)).verifiedBy).toEqual(["alice", "bob"])
    const twoBad = [alice, badBob, badCarol].reduce(signManifest, manifest)
    const refused = rejection(verifyManifest(twoBad, trust, NOW))
    expect(refused?.reason).toBe("threshold")
    expect(refused?.message).toBe(
      "manifest tiny-lm@1.0.0 has 1 valid signature from trusted keys, 2 required (not counted: bob, carol)"
    )
    // One key under two names counts once.
    const aliasTrust = trustPolicy([["alice", alice.publicKey], ["alice2", alice.publicKey]], 2)
    const twice = [alice, { ...alice, keyId: "alice2" }].reduce(signManifest, manifest)
    expect(rejection(verifyManifest(twice, aliasTrust, NOW))?.reason).toBe("threshold")
    // A per-id threshold overrides the default.
    const perId = trustPolicy([["alice", alice.publicKey], ["bob", bob.publicKey]], 1, [["tiny-lm", 2]])
    expect(rejection(verifyManifest(signManifest(manifest, alice), perId, NOW))?.reason).toBe("threshold")
  })

  it("orders versions by semver precedence", () => {
    const ordered = [
      "0.9.0",
      "1.0.0-alpha",
      "1.0.0-alpha.1",
      "1.0.0-alpha.beta",
      "1.0.0-beta",
      "1.0.0-beta.2",
      "1.0.0-beta.11",
      "1.0.0-rc.1",
      "1.0.0",
      "1.2.0",
      "1.10.0",
      "10.0.0"
    ]
    const shuffled = [...ordered].reverse().sort(compareVersions)
    expect(shuffled).toEqual(ordered)
    expect(compareVersions("9007199254740991.0.0", "9007199254740990.0.0")).toBe(1)
  })

  it("refuses to order text that is not a version, and lists only versions", () => {
    for (
      const text of [
        "1.0",
        "v1.0.0",
        "1.0.0+build.1",
        "01.0.0",
        "99999999999999999999.0.0",
        "1.0.0-99999999999999999999",
        "latest",
        ""
      ]
    ) {
      expect(() => compareVersions(text, "1.0.0"), text).toThrow(
        new InvalidVersion(`"${text}" is not a semantic version such as 1.0.0 or 1.0.0-rc.1`)
      )
      expect(() => compareVersions("1.0.0", text), text).toThrow(InvalidVersion)
      // What cannot be ordered cannot be a manifest's version either.
      expect(problem(rawManifest({ version: text })), text).toBe(
        "invalid manifest: version must be a semantic version such as 1.0.0 or 1.0.0-rc.1"
      )
    }
    expect(versionsAmong(["2.0.0", "notes", "1.10.0", "v3.0.0", "1.2.0", "1.10.0-rc.1"])).toEqual([
      "1.2.0",
      "1.10.0-rc.1",
      "1.10.0",
      "2.0.0"
    ])
  })

  it.effect("reads the highest pulled version of a model, by precedence, past files that are not versions", () =>
    Effect.gen(function*() {
      const root = tempDir("manifests-")
      for (const version of ["1.2.0", "1.10.0", "1.10.1-rc.1"]) {
        yield* saveManifest(root, parsed(rawManifest({ version })))
      }
      fs.writeFileSync(path.join(root, "manifests", "tiny-lm", "zzz-draft.json"), "{}")
      expect((yield* readManifest(root, "tiny-lm")).version).toBe("1.10.1-rc.1")
      expect((yield* readManifest(root, "tiny-lm", "1.2.0")).version).toBe("1.2.0")
      expect((yield* Effect.flip(readManifest(root, "tiny-lm", "zzz-draft"))).message).toMatch(
        /^tiny-lm@zzz-draft is not in the cache/
      )
    }))
})

describe("TrustStore", () => {
  it.effect("generates signing keys, trusts and untrusts public keys, and builds a policy", () =>
    Effect.gen(function*() {
      const store = yield* TrustStore
      const generated = yield* store.generate("me")
      expect(generated).toMatchObject({ keyId: "me", canSign: true })
      expect(fs.statSync(path.join(store.directory, "me.key")).mode & 0o777).toBe(0o600)
      yield* store.trust("bob", bob.publicKey)
      yield* store.trust("bob", bob.publicKey)
      const conflict = yield* Effect.flip(store.trust("bob", carol.publicKey))
      expect(conflict.message).toContain("already trusted with a different public key")
      expect((yield* store.list()).map((key) => key.keyId)).toEqual(["bob", "me"])
      const me = yield* store.signer("me")
      expect(me.publicKey).toBe(generated.publicKey)
      const signed = [me, bob].reduce(signManifest, parsed(rawManifest()))
      expect(Either.getOrThrow(verifyManifest(signed, yield* store.policy(2), NOW)).verifiedBy).toEqual(["me", "bob"])
      expect(yield* store.untrust("bob")).toBe(true)
      expect(rejection(verifyManifest(signed, yield* store.policy(2), NOW))?.reason).toBe("threshold")
      expect((yield* Effect.flip(store.signer("nobody"))).message).toContain("no signing key nobody")
    }).pipe(Effect.provide(TrustStore.Default(path.join(tempDir("keys-"), "keys")))))

  it.effect("loads the seed's PEM private keys, naming the key after the file", () =>
    Effect.gen(function*() {
      const store = yield* TrustStore
      const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519")
      const file = path.join(tempDir("pem-"), "private-key.pem")
      fs.writeFileSync(file, privateKey.export({ format: "pem", type: "pkcs8" }))
      const signer = yield* store.signer(file)
      expect(signer.keyId).toBe("private-key")
      expect(signer.publicKey).toBe(publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("hex"))
      expect((yield* store.signer(file, "release-2026")).keyId).toBe("release-2026")
      const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey
      fs.writeFileSync(file, rsa.export({ format: "pem", type: "pkcs8" }))
      expect((yield* Effect.flip(store.signer(file))).message).toContain("not an Ed25519 private key")
    }).pipe(Effect.provide(TrustStore.Default(tempDir("keys-")))))

  it.effect("remembers the highest trusted version per id, atomically and only upwards", () =>
    Effect.gen(function*() {
      const store = yield* TrustStore
      expect(yield* store.highestTrusted("tiny-lm")).toEqual(Option.none())
      yield* store.recordTrusted("tiny-lm", "1.0.0")
      expect(yield* store.recordTrusted("tiny-lm", "0.9.0")).toBe("1.0.0")
      yield* store.recordTrusted("other", "2.0.0-rc.1")
      expect(yield* store.highestTrusted("tiny-lm")).toEqual(Option.some("1.0.0"))
      const file = path.join(store.directory, "trusted-versions.json")
      expect(JSON.parse(fs.readFileSync(file, "utf8"))).toEqual({ "tiny-lm": "1.0.0", other: "2.0.0-rc.1" })
      expect(fs.readdirSync(store.directory).filter((name) => name.endsWith(".tmp"))).toEqual([])
      expect((yield* Effect.flip(store.recordTrusted("tiny-lm", "v2"))).message).toContain(
        `cannot trust tiny-lm@v2: "v2" is not a semantic version`
      )
      // A floor that is not a version is refused, not read as lower than every version.
      fs.writeFileSync(file, JSON.stringify({ "tiny-lm": "latest" }))
      expect((yield* Effect.flip(store.highestTrusted("tiny-lm"))).message).toContain(
        "not a map of manifest ids to versions"
      )
    }).pipe(Effect.provide(TrustStore.Default(tempDir("keys-")))))
})
