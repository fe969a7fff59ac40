/**
 * Reputation-gated adapter sharing (seed 10.2) on the real registry, reputation and parameters
 * services: a node shares only above 0.7 reputation, at most ten adapters an hour, each with a quality
 * score of at least 0.5; governance can move the bars; a resend of a shared version is not a new share.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, TestClock } from "effect"
import * as crypto from "node:crypto"
import { NetworkParameters } from "../../../src/actors/economy/NetworkParameters.js"
import { Reputation } from "../../../src/actors/economy/ReputationService.js"
import { sharingProblem } from "../../../src/actors/registry/AdapterSharing.js"
import { Registry } from "../../../src/actors/registry/RegistryService.js"
import { parseManifest } from "../../../src/content/Manifest.js"
import type { ManifestSigner } from "../../../src/content/ManifestSigning.js"
import { signAsPublisher } from "../../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../../src/content/NodeKey.js"
import { accountIdOf } from "../../../src/domain/Ed25519.js"
import { economyAdapterSharingGate } from "../../../src/layers/Economy.js"
import { memoryKernel } from "../../support/Layers.js"

const signerOf = (keyId: string, seedByte: number): ManifestSigner => {
  const pair = keyPairFromSeed(new Uint8Array(32).fill(seedByte))
  return { keyId, publicKey: pair.publicKey, sign: (message) => pair.sign(message) }
}
const alice = signerOf("alice", 1)
/** Alice's account in the economy: derived from her key, so another key named "alice" is not her. */
const aliceAccount = accountIdOf(alice.publicKey)

const adapter = (id: string, quality?: number, version = "1.0.0") =>
  signAsPublisher(
    Either.getOrThrow(parseManifest({
      id,
      name: id,
      version,
      type: "adapter",
      license: "MIT",
      artifacts: {
        adapter: {
          filename: "adapter.safetensors",
          size: 10,
          sha256: crypto.hash("sha256", id, "hex"),
          cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        }
      },
      adapter: { baseModel: "tiny-lm", rank: 4, domain: "code", ...(quality === undefined ? {} : { quality }) },
      publishedAt: "2026-01-03T00:00:00Z",
      publishedBy: "alice",
      expiresAt: "2099-01-01T00:00:00Z"
    })),
    alice
  )

const gatedRegistry = () =>
  Registry.Default.pipe(
    Layer.provide(economyAdapterSharingGate),
    Layer.provideMerge(Reputation.Default.pipe(Layer.provideMerge(NetworkParameters.Default))),
    Layer.provideMerge(memoryKernel())
  )

const refusal = <A, E extends { readonly message: string }>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (error) => error.message)

describe("sharingProblem", () => {
  const rules = { minReputationPpm: 700_000n, sharesPerHour: 10, minQualityPpm: 500_000n }
  it("allows a reputable node's good adapter within the hourly limit, and says which bar a refusal missed", () => {
    expect(sharingProblem(rules, { reputationPpm: 750_000n, sharesInWindow: 9, quality: 0.5 })).toBeUndefined()
    expect(sharingProblem(rules, { reputationPpm: 700_000n, sharesInWindow: 0, quality: 0.9 })).toBe(
      "reputation 0.70 is not above 0.70"
    )
    expect(sharingProblem(rules, { reputationPpm: 800_000n, sharesInWindow: 10, quality: 0.9 })).toBe(
      "already shared 10 adapters in the last hour (at most 10)"
    )
    expect(sharingProblem(rules, { reputationPpm: 800_000n, sharesInWindow: 0, quality: 0.49 })).toBe(
      "quality 0.49 is below 0.50"
    )
    expect(sharingProblem(rules, { reputationPpm: 800_000n, sharesInWindow: 0, quality: undefined })).toMatch(
      /no adapter.quality score/
    )
  })
})

describe("Registry with the sharing gate", () => {
  it.effect("refuses below 0.7 reputation, then shares ten an hour with quality >= 0.5, and follows governance", () =>
    Effect.gen(function*() {
      const registry = yield* Registry
      const reputation = yield* Reputation
      expect(yield* refusal(registry.publishAdapter(adapter("a0", 0.9)))).toBe(
        "alice may not share adapter a0: reputation 0.50 is not above 0.70"
      )
      for (let task = 0; task < 5; task++) yield* reputation.recordSuccess(aliceAccount, 1, `task-${task}`)
      expect(yield* reputation.score(aliceAccount)).toBe(750_000n)
      // A key that calls itself alice does not borrow her reputation.
      const impostor = signerOf("alice", 2)
      expect(yield* refusal(registry.publishAdapter(signAsPublisher(adapter("fake", 0.9), impostor))))
        .toBe("alice may not share adapter fake: reputation 0.50 is not above 0.70")

      expect(yield* refusal(registry.publishAdapter(adapter("low", 0.3)))).toMatch(/quality 0.30 is below 0.50$/)
      for (let n = 0; n < 10; n++) yield* registry.publishAdapter(adapter(`a${n}`, 0.9))
      // Sending a shared version again is answered as a duplicate, not counted or refused as a share.
      expect((yield* registry.publishAdapter(adapter("a3", 0.9))).duplicate).toBe(true)
      expect(yield* refusal(registry.publishAdapter(adapter("a10", 0.9)))).toMatch(
        /already shared 10 adapters in the last hour \(at most 10\)$/
      )

      // A governance change of the limit applies to the next share.
      yield* (yield* NetworkParameters).set("adapterSharesPerHour", 11n, { proposalId: "p-1" })
      yield* registry.publishAdapter(adapter("a10", 0.9))
      expect(yield* refusal(registry.publishAdapter(adapter("a11", 0.9)))).toMatch(/at most 11/)

      // An hour later the window is empty again (reputation decays 1% an hour meanwhile: still above 0.7).
      yield* TestClock.adjust("61 minutes")
      yield* registry.publishAdapter(adapter("a11", 0.9))
      expect((yield* registry.listAdapters()).length).toBe(12)
    }).pipe(Effect.provide(gatedRegistry())))
})
