import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as crypto from "node:crypto"
import {
  AdapterPublished,
  Adapters,
  ModelPublished,
  Models,
  signYank,
  VersionYanked
} from "../../../src/actors/registry/Registry.js"
import { Registry, RegistryPublishers } from "../../../src/actors/registry/RegistryService.js"
import type { ModelManifest } from "../../../src/content/Manifest.js"
import { manifestDigest, parseManifest } from "../../../src/content/Manifest.js"
import type { ManifestSigner } from "../../../src/content/ManifestSigning.js"
import { signAsPublisher, signManifest } from "../../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../../src/content/NodeKey.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import { memoryKernel } from "../../support/Layers.js"

const signerOf = (keyId: string, seedByte: number): ManifestSigner => {
  const pair = keyPairFromSeed(new Uint8Array(32).fill(seedByte))
  return { keyId, publicKey: pair.publicKey, sign: (message) => pair.sign(message) }
}
const alice = signerOf("alice", 1)
const mallory = signerOf("mallory", 4)

const CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

const manifestOf = (id: string, version: string, extra: Record<string, unknown> = {}): ModelManifest =>
  Either.getOrThrow(
    parseManifest({
      id,
      name: `${id} model`,
      version,
      type: "text-generation",
      license: "MIT",
      artifacts: {
        model: {
          filename: "model.onnx",
          size: 1000,
          sha256: crypto.hash("sha256", `${id}@${version}`, "hex"),
          cid: CID
        }
      },
      publishedAt: "2026-01-03T00:00:00Z",
      publishedBy: "team",
      expiresAt: "2099-01-01T00:00:00Z",
      ...extra
    })
  )

const adapterOf = (id: string, version: string, baseModel: string, domain: string) =>
  manifestOf(id, version, { type: "adapter", adapter: { baseModel, rank: 8, alpha: 16, domain, quality: 0.9 } })

/** The manifest naming `by` as its publisher (the decider trusts the service to have checked the signature). */
const by = (manifest: ModelManifest, publisher: ManifestSigner): ModelManifest => ({
  ...manifest,
  publisherKey: publisher.publicKey
})

const publish = (manifest: ModelManifest, by: ManifestSigner, allowOlder = false) =>
  ({ _tag: "Publish", manifest, keyId: by.keyId, publicKey: by.publicKey, allowOlder }) as const

const published = (manifest: ModelManifest, by: ManifestSigner) =>
  ModelPublished.make({
    id: manifest.id,
    version: manifest.version,
    manifest,
    digest: manifestDigest(manifest),
    keyId: by.keyId,
    publicKey: by.publicKey
  })

const spec = DeciderSpecification.for(Models.decider)
const v1 = by(manifestOf("tiny-lm", "1.0.0"), alice)
const v2 = by(manifestOf("tiny-lm", "2.0.0"), alice)
const v09 = by(manifestOf("tiny-lm", "0.9.0"), alice)

describe("Registry decider", () => {
  it.effect("the first publisher of an id owns it", () =>
    spec.given([]).when(publish(v1, alice)).then([published(v1, alice)]))

  it.effect("the owner publishes newer versions", () =>
    spec.given([published(v1, alice)]).when(publish(v2, alice)).then([published(v2, alice)]))

  it.effect("another key cannot publish the id, whatever it calls itself", () =>
    spec
      .given([published(v1, alice)])
      .when(publish(by(v2, mallory), { ...mallory, keyId: "alice" }))
      .thenFails((error) =>
        error._tag === "OwnershipViolation" &&
        error.message === "tiny-lm belongs to key alice: key alice cannot publish or yank its versions"
      ))

  it.effect("only the key the manifest names as publisher publishes it, even on an id nobody owns", () =>
    Effect.gen(function*() {
      yield* spec.given([]).when(publish(manifestOf("tiny-lm", "1.0.0"), alice)).thenFails((error) =>
        error._tag === "PublisherUnnamed" &&
        error.message ===
          "manifest tiny-lm@1.0.0 names no publisherKey: a registry gives an id only to the key named as its publisher"
      )
      yield* spec.given([]).when(publish(v1, mallory)).thenFails((error) =>
        error._tag === "PublisherNotSigned" &&
        error.message === `manifest tiny-lm@1.0.0 is not signed by its publisher key ${alice.publicKey.slice(0, 16)}…`
      )
    }))

  it.effect("a version is published once", () =>
    spec.given([published(v1, alice)]).when(publish(v1, alice)).thenFails((error) => error._tag === "VersionExists"))

  it.effect("a lower version is refused unless the command allows it", () =>
    Effect.gen(function*() {
      yield* spec.given([published(v1, alice)]).when(publish(v09, alice)).thenFails((error) =>
        error._tag === "VersionNotNewer"
      )
      yield* spec.given([published(v1, alice)]).when(publish(v09, alice, true)).then([published(v09, alice)])
    }))

  it.effect("the owner yanks a version, once; others cannot; unknown versions are reported", () =>
    Effect.gen(function*() {
      const yank = (by: ManifestSigner, version = "1.0.0") =>
        ({
          _tag: "Yank",
          id: "tiny-lm",
          version,
          reason: "broken tokenizer",
          keyId: by.keyId,
          publicKey: by.publicKey
        }) as const
      const yanked = VersionYanked.make({ id: "tiny-lm", version: "1.0.0", reason: "broken tokenizer" })
      yield* spec.given([published(v1, alice)]).when(yank(alice)).then([yanked])
      yield* spec.given([published(v1, alice), yanked]).when(yank(alice)).thenNothing()
      yield* spec.given([published(v1, alice)]).when(yank(mallory)).thenFails((error) =>
        error._tag === "OwnershipViolation"
      )
      yield* spec.given([published(v1, alice)]).when(yank(alice, "3.0.0")).thenFails((error) =>
        error._tag === "UnknownVersion"
      )
      // A yanked version still blocks its number and counts as the highest.
      yield* spec.given([published(v1, alice), yanked]).when(publish(v1, alice)).thenFails((error) =>
        error._tag === "VersionExists"
      )
      yield* spec.given([published(v1, alice), yanked]).when(publish(v09, alice)).thenFails((error) =>
        error._tag === "VersionNotNewer"
      )
    }))

  it.effect("adapters are published as adapters, with their summary", () =>
    Effect.gen(function*() {
      const adapter = by(adapterOf("coder-lora", "1.0.0", "tiny-lm", "coding"), alice)
      yield* DeciderSpecification.for(Adapters.decider)
        .given([])
        .when(publish(adapter, alice))
        .then([
          AdapterPublished.make({
            id: "coder-lora",
            version: "1.0.0",
            manifest: adapter,
            digest: manifestDigest(adapter),
            keyId: "alice",
            publicKey: alice.publicKey,
            name: "coder-lora model",
            baseModel: "tiny-lm",
            rank: 8,
            domain: "coding",
            quality: 0.9
          })
        ])
      yield* spec.given([]).when(publish(adapter, alice)).thenFails((error) => error._tag === "KindMismatch")
      yield* DeciderSpecification.for(Adapters.decider).given([]).when(publish(v1, alice)).thenFails((error) =>
        error._tag === "KindMismatch"
      )
    }))
})

const registryLayer = () => Registry.Default.pipe(Layer.provideMerge(memoryKernel()))

describe("Registry service", () => {
  it.effect("publishes signed manifests, lists them by type and quantization, and follows later publications", () =>
    Effect.gen(function*() {
      const registry = yield* Registry
      const quantized = (id: string, type: string, quantization: string) =>
        signAsPublisher(manifestOf(id, "1.0.0", { type, optimization: { quantization, format: "RTN" } }), alice)
      yield* registry.publish(quantized("tiny-lm", "text-generation", "INT4"))
      yield* registry.publish(JSON.stringify(quantized("embedder", "embedding", "INT8")))
      expect((yield* registry.list()).map((model) => model.id)).toEqual(["embedder", "tiny-lm"])
      expect((yield* registry.list({ type: "embedding" })).map((model) => model.id)).toEqual(["embedder"])
      expect((yield* registry.list({ quantization: "int4" })).map((model) => model.id)).toEqual(["tiny-lm"])
      // Published after the projection was first read: the next list catches up.
      yield* registry.publish(quantized("vision-net", "vision", "INT4"))
      yield* registry.publish(
        signAsPublisher(manifestOf("tiny-lm", "1.1.0", { optimization: { quantization: "FP16" } }), alice)
      )
      const int4 = yield* registry.list({ quantization: "INT4" })
      expect(int4.map((model) => model.id)).toEqual(["vision-net"])
      expect(yield* registry.list({ type: "text-generation" })).toMatchObject([{
        id: "tiny-lm",
        version: "1.1.0",
        quantization: "FP16",
        size: 1000
      }])
    }).pipe(Effect.provide(registryLayer())))

  it.effect("keeps the first publisher's ownership, verifies signatures, and serves versions", () =>
    Effect.gen(function*() {
      const registry = yield* Registry
      const unknownField = { ...signAsPublisher(manifestOf("tiny-lm", "1.0.0", { "x-note": "kept" }), alice) }
      const receipt = yield* registry.publish(unknownField)
      expect(receipt).toMatchObject({
        kind: "model",
        id: "tiny-lm",
        version: "1.0.0",
        keyId: "alice",
        duplicate: false
      })
      expect((yield* registry.publish(unknownField)).duplicate).toBe(true)
      const stolen = yield* Effect.flip(registry.publish(signAsPublisher(manifestOf("tiny-lm", "2.0.0"), mallory)))
      expect(stolen._tag).toBe("OwnershipViolation")
      // Co-signed by mallory, whose signature comes first: alice, the named publisher, publishes.
      const cosigned = signManifest(signManifest(by(manifestOf("tiny-lm", "2.0.0"), alice), mallory), alice)
      expect(cosigned.signatures?.[0]?.keyId).toBe("mallory")
      expect((yield* registry.publish(cosigned)).keyId).toBe("alice")
      const forged = { ...signAsPublisher(manifestOf("tiny-lm", "3.0.0"), alice), name: "forged" }
      expect((yield* Effect.flip(registry.publish(forged))).message).toBe(
        "manifest tiny-lm@3.0.0: signature by key alice does not verify"
      )
      expect((yield* Effect.flip(registry.publish(manifestOf("tiny-lm", "3.0.0"))))._tag).toBe("ManifestRejected")
      expect((yield* Effect.flip(registry.publish({ id: "x" })))._tag).toBe("ManifestError")
      expect((yield* registry.get("tiny-lm")).version).toBe("2.0.0")
      const first = yield* registry.get("tiny-lm", "1.0.0")
      expect((first.manifest as Record<string, unknown>)["x-note"]).toBe("kept")
      expect(first.digest).toBe(receipt.digest)
      expect(yield* registry.listsArtifact(first.manifest.artifacts["model"]!.sha256)).toBe(true)
      expect(yield* registry.artifactSizes(first.manifest.artifacts["model"]!.sha256)).toEqual([1000])
      expect(yield* registry.listsArtifact("f".repeat(64))).toBe(false)

      const forgedYank = {
        ...signYank(mallory, "model", "tiny-lm", "2.0.0", "broken"),
        keyId: "alice",
        publicKey: alice.publicKey
      }
      expect((yield* Effect.flip(registry.yank(forgedYank)))._tag).toBe("YankNotSigned")
      expect((yield* Effect.flip(registry.yank(signYank(mallory, "model", "tiny-lm", "2.0.0", "broken"))))._tag).toBe(
        "OwnershipViolation"
      )
      expect(yield* registry.yank(signYank(alice, "model", "tiny-lm", "2.0.0", "broken"))).toMatchObject({
        version: "2.0.0",
        yanked: "broken"
      })
      expect((yield* registry.get("tiny-lm")).version).toBe("1.0.0")
      expect((yield* registry.versions("tiny-lm")).map((version) => [version.version, version.yanked ?? null])).toEqual(
        [["1.0.0", null], ["2.0.0", "broken"]]
      )
      expect((yield* registry.list())[0]?.version).toBe("1.0.0")
      expect((yield* Effect.flip(registry.get("nothing"))).message).toBe("no model nothing in the registry")
    }).pipe(Effect.provide(registryLayer())))

  it.effect("a co-signer who puts their signature first gains nothing on a fresh registry; unnamed or unsigned publishers write nothing", () =>
    Effect.gen(function*() {
      const registry = yield* Registry
      const genuine = signAsPublisher(manifestOf("tiny-lm", "1.0.0"), alice)
      const squat = { ...genuine, signatures: [...signManifest(genuine, mallory).signatures!].reverse() }
      expect(squat.signatures.map((signature) => signature.keyId)).toEqual(["mallory", "alice"])
      expect(yield* registry.publish(squat)).toMatchObject({ keyId: "alice", duplicate: false })
      const yank = yield* Effect.flip(registry.yank(signYank(mallory, "model", "tiny-lm", "1.0.0", "mine now")))
      expect(yank.message).toBe("tiny-lm belongs to key alice: key mallory cannot publish or yank its versions")
      expect(yield* registry.publish(signAsPublisher(manifestOf("tiny-lm", "1.1.0"), alice))).toMatchObject({
        keyId: "alice"
      })

      // Alice's genuine manifest, without alice's signature: mallory cannot publish it in alice's name.
      const named = by(manifestOf("fresh-lm", "1.0.0"), alice)
      const notSigned = yield* Effect.flip(registry.publish(signManifest(named, mallory)))
      expect(notSigned.message).toBe(
        `manifest fresh-lm@1.0.0 is not signed by its publisher key ${alice.publicKey.slice(0, 16)}…`
      )
      expect((yield* Effect.flip(registry.publish(signManifest(manifestOf("fresh-lm", "1.0.0"), alice))))._tag).toBe(
        "PublisherUnnamed"
      )
      expect((yield* Effect.flip(registry.get("fresh-lm")))._tag).toBe("RegistryNotFound")
      expect((yield* registry.versions("tiny-lm")).map((version) => version.keyId)).toEqual(["alice", "alice"])
    }).pipe(Effect.provide(registryLayer())))

  it.effect("a registry with a list of publishers publishes, and takes uploads, for those keys only", () =>
    Effect.gen(function*() {
      const registry = yield* Registry
      const refused = yield* Effect.flip(registry.publish(signAsPublisher(manifestOf("phi-chat", "1.0.0"), mallory)))
      expect(refused.message).toBe(
        `key mallory (${
          mallory.publicKey.slice(0, 16)
        }…) may not publish on this registry: it is not on its list of publishers`
      )
      const published = yield* registry.publish(signAsPublisher(manifestOf("tiny-lm", "1.0.0"), alice))
      expect(published.keyId).toBe("alice")
      expect(yield* registry.artifactSizes(crypto.hash("sha256", "tiny-lm@1.0.0", "hex"))).toEqual([1000])
      expect(yield* registry.artifactSizes(crypto.hash("sha256", "phi-chat@1.0.0", "hex"))).toEqual([])
    }).pipe(
      Effect.provide(
        Registry.Default.pipe(
          Layer.provide(RegistryPublishers.layer([alice.publicKey])),
          Layer.provideMerge(memoryKernel())
        )
      )
    ))

  it.effect("publishes and lists adapters by base model and domain", () =>
    Effect.gen(function*() {
      const registry = yield* Registry
      yield* registry.publishAdapter(signAsPublisher(adapterOf("coder-lora", "1.0.0", "tiny-lm", "coding"), alice))
      yield* registry.publish(signAsPublisher(adapterOf("chat-lora", "1.0.0", "tiny-lm", "chat"), alice))
      yield* registry.publish(signAsPublisher(adapterOf("phi-chat", "1.0.0", "phi-1.5-q4", "chat"), mallory))
      expect((yield* Effect.flip(registry.publishAdapter(signAsPublisher(manifestOf("tiny-lm", "1.0.0"), alice))))._tag)
        .toBe("KindMismatch")
      expect((yield* registry.listAdapters({ baseModel: "tiny-lm" })).map((adapter) => adapter.id)).toEqual([
        "chat-lora",
        "coder-lora"
      ])
      expect(yield* registry.listAdapters({ domain: "chat" })).toMatchObject([{ id: "chat-lora" }, {
        id: "phi-chat",
        keyId: "mallory",
        rank: 8
      }])
      expect(yield* registry.list()).toEqual([])
      expect((yield* registry.get("coder-lora", undefined, "adapter")).kind).toBe("adapter")
    }).pipe(Effect.provide(registryLayer())))
})
