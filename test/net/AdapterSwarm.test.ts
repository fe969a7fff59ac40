/**
 * The adapter swarm between three nodes in memory (each with its own journal, registry and blob store,
 * wired to the others by an in-memory gossip and request/response): announcements through the sharing
 * gates, a pull spread over two holders with a corrupted chunk refused and fetched again elsewhere, a
 * liar caught by the signed digests, and signed reports that move the score on every node alike.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer } from "effect"
import { base58btc } from "multiformats/bases/base58"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { SharingRules } from "../../src/actors/registry/AdapterSharing.js"
import { Registry } from "../../src/actors/registry/RegistryService.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import type { ManifestSigner } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { buildManifest } from "../../src/content/Publish.js"
import { ed25519 } from "../../src/domain/Ed25519.js"
import { registryHoldings } from "../../src/net/AdapterHoldings.js"
import type { AdapterHoldings, AdapterSwarm, SharingGatePort } from "../../src/net/AdapterSwarm.js"
import { announceVerdict, makeAdapterSwarm, reportVerdict } from "../../src/net/AdapterSwarm.js"
import * as Wire from "../../src/net/AdapterWire.js"
import { memoryKernel } from "../support/Layers.js"
import { tempDir } from "../support/TempDir.js"

const peerIdOf = (seed: Uint8Array) =>
  base58btc.baseEncode(
    Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20, ...Buffer.from(ed25519.publicKeyOf(seed), "hex")])
  )

const publisherPair = keyPairFromSeed(new Uint8Array(32).fill(11))
const publisher: ManifestSigner = {
  keyId: "alice",
  publicKey: publisherPair.publicKey,
  sign: (message) => publisherPair.sign(message)
}

interface TestNode {
  readonly name: string
  readonly peerId: string
  readonly seed: Uint8Array
  readonly registry: Registry
  readonly store: Context.Tag.Service<BlobStore>
  swarm: AdapterSwarm
}

/** Three nodes (or more) whose swarms gossip and answer requests in memory. */
const network = (
  names: ReadonlyArray<string>,
  options: {
    readonly gate?: SharingGatePort
    readonly gates?: Readonly<Record<string, SharingGatePort | undefined>>
    readonly faults?: Readonly<Record<string, number>>
    readonly holdings?: Readonly<Record<string, (real: AdapterHoldings) => AdapterHoldings>>
  } = {}
) =>
  Effect.gen(function*() {
    const nodes = new Map<string, TestNode>()
    for (const name of names) {
      const context = yield* Layer.build(
        Layer.mergeAll(Registry.Default, BlobStore.layer({ root: tempDir(`swarm-${name}-`), maxBytes: 1 << 30 })).pipe(
          Layer.provideMerge(memoryKernel())
        )
      )
      const seed = crypto.createHash("sha256").update(name).digest()
      const peerId = peerIdOf(seed)
      const real = yield* Effect.provide(registryHoldings, context)
      const holdings = options.holdings?.[name]?.(real) ?? real
      const node: TestNode = {
        name,
        peerId,
        seed,
        registry: Context.get(context, Registry),
        store: Context.get(context, BlobStore),
        swarm: undefined as never
      }
      const others = () => [...nodes.values()].filter((other) => other.peerId !== peerId)
      node.swarm = yield* makeAdapterSwarm(holdings, {
        peerId,
        publishAnnounce: (bytes) =>
          Effect.forEach(others(), (other) =>
            announceVerdict(bytes, Date.now(), 120_000) === "accept"
              ? other.swarm.onAnnounce(bytes, peerId)
              : Effect.void, { discard: true }),
        publishReport: (bytes) =>
          Effect.forEach(others(), (other) =>
            reportVerdict(bytes, Date.now()) === "accept" ? other.swarm.onReport(bytes) : Effect.void, {
            discard: true
          }),
        request: (target, bytes) => {
          const other = nodes.get(target)
          return other === undefined ? Effect.fail(`no route to ${target}`) : other.swarm.serve(bytes)
        }
      }, {
        seed,
        gate: options.gates !== undefined && name in options.gates ? options.gates[name] : options.gate,
        faultCorruptServedChunks: options.faults?.[name]
      })
      nodes.set(peerId, node)
    }
    return Object.fromEntries([...nodes.values()].map((node) => [node.name, node]))
  })

/** Publishes on `node` an adapter of about `size` bytes, signed by the publisher; returns its manifest. */
const shareOn = (node: TestNode, id: string, size: number, quality = 0.9) =>
  Effect.gen(function*() {
    const dir = tempDir("adapter-files-")
    const weights = path.join(dir, "adapter.safetensors")
    fs.writeFileSync(weights, crypto.randomBytes(size))
    const metadata = path.join(dir, "adapter.json")
    fs.writeFileSync(metadata, JSON.stringify({ id, note: "metadata as a file beside the weights" }))
    const manifest = yield* buildManifest({
      files: [weights, metadata],
      id,
      name: id,
      version: "1.0.0",
      type: "adapter",
      license: "MIT",
      adapter: { baseModel: "tiny-lm", rank: 4, domain: "code", quality },
      expiresInDays: 30,
      signer: publisher
    }).pipe(Effect.provideService(BlobStore, node.store))
    yield* node.registry.publishAdapter(manifest)
    return manifest
  })

const reportBy = (seed: Uint8Array, adapterId: string, score: number, timestamp = Date.now()) =>
  Wire.encodeReport(Wire.signReport(seed, {
    adapterId,
    reporterId: ed25519.publicKeyOf(seed),
    qualityScore: score,
    feedback: "measured on my data",
    timestamp,
    signature: new Uint8Array(0)
  }))

const openGate = (rules: Partial<SharingRules> = {}, reputationPpm = 500_000n): SharingGatePort => ({
  rules: Effect.succeed({ minReputationPpm: 400_000n, sharesPerHour: 10, minQualityPpm: 500_000n, ...rules }),
  reputationPpm: () => Effect.succeed(reputationPpm)
})

describe("AdapterSwarm", () => {
  it.live("finds an adapter from its announcement and pulls it from two holders, refusing a corrupted chunk", () =>
    Effect.scoped(Effect.gen(function*() {
      const { a, b, d } = yield* network(["a", "b", "d"], { gate: openGate(), faults: { b: 1 } })
      const manifest = yield* shareOn(a!, "coder", 5 * Wire.CHUNK_SIZE + 123)
      yield* a!.swarm.announceHeld
      const first = yield* b!.swarm.pull("coder")
      expect(first.sources).toEqual([{ peerId: a!.peerId, chunks: 6 }])
      expect((yield* d!.swarm.view).adapters.map((row) => row.holders)).toEqual([[a!.peerId, b!.peerId].sort()])

      const receipt = yield* d!.swarm.pull("coder")
      expect(receipt.chunks).toBe(6)
      expect(receipt.refused).toHaveLength(1)
      expect(receipt.refused[0]!.peerId).toBe(b!.peerId)
      expect(receipt.refused[0]!.reason).toMatch(/hashes to .* not its chunk_hash/)
      const taken = Object.fromEntries(receipt.sources.map((source) => [source.peerId, source.chunks]))
      expect(taken[a!.peerId]! + taken[b!.peerId]!).toBe(6)
      expect(taken[b!.peerId]).toBeGreaterThan(0)
      expect(taken[a!.peerId]).toBeGreaterThan(taken[b!.peerId]!)
      // Stored byte for byte, and listed by D's own registry.
      for (const artifact of Object.values(manifest.artifacts)) {
        expect(crypto.hash("sha256", fs.readFileSync(d!.store.pathOf(artifact.sha256)), "hex")).toBe(artifact.sha256)
      }
      expect((yield* d!.registry.listAdapters()).map((row) => row.id)).toEqual(["coder"])
      expect((yield* d!.swarm.view).strikes).toEqual([{ peerId: b!.peerId, strikes: 1 }])
    })))

  it.live("catches a holder whose chunks match their own hashes but not the signed digests", () =>
    Effect.scoped(Effect.gen(function*() {
      const liar = (real: AdapterHoldings): AdapterHoldings => ({
        ...real,
        bundle: (id, version) =>
          Effect.map(real.bundle(id, version), (bytes) => {
            if (bytes === undefined) return undefined
            const forged = bytes.slice()
            forged[Wire.CHUNK_SIZE + 5] = forged[Wire.CHUNK_SIZE + 5]! ^ 0x55
            return forged
          })
      })
      const { a, b, d } = yield* network(["a", "b", "d"], { holdings: { b: liar } })
      yield* shareOn(a!, "coder", 3 * Wire.CHUNK_SIZE)
      yield* a!.swarm.announceHeld
      yield* b!.swarm.pull("coder")
      const receipt = yield* d!.swarm.pull("coder")
      expect(receipt.refused.map((row) => [row.peerId, row.chunk, row.reason])).toEqual([
        [b!.peerId, 1, "differs from another holder's copy"]
      ])
      expect(receipt.sources.find((source) => source.peerId === b!.peerId)?.chunks ?? 0).toBeLessThan(receipt.chunks)
      expect(yield* d!.swarm.pull("coder")).toMatchObject({ alreadyHeld: true })
    })))

  it.live("applies the sharing gates to announcements, received and sent", () =>
    Effect.scoped(Effect.gen(function*() {
      // The publisher's reputation 0.5 is not above 0.7: nobody takes the announcement.
      const strict = yield* network(["a", "d"], { gate: openGate({ minReputationPpm: 700_000n }) })
      yield* shareOn(strict.a!, "coder", 1000)
      yield* strict.a!.swarm.announceHeld
      expect((yield* strict.d!.swarm.view).adapters).toEqual([])
      expect((yield* strict.a!.swarm.view).refused).toEqual([
        "not announcing coder@1.0.0: reputation 0.50 is not above 0.70"
      ])
      expect(yield* Effect.flip(strict.d!.swarm.pull("coder"))).toBe("no peer announces adapter coder")
      // A node without gates announces; a receiver with them refuses the announcement.
      const mixed = yield* network(["a", "d"], { gates: { a: undefined, d: openGate({ minReputationPpm: 700_000n }) } })
      yield* shareOn(mixed.a!, "coder", 1000)
      yield* mixed.a!.swarm.announceHeld
      expect((yield* mixed.d!.swarm.view).adapters).toEqual([])
      expect((yield* mixed.d!.swarm.view).refused).toEqual([
        `${mixed.a!.peerId.slice(-8)} announcing coder@1.0.0: reputation 0.50 is not above 0.70`
      ])

      // A quality of at least 0.5.
      const picky = yield* network(["a", "d"], { gate: openGate() })
      yield* shareOn(picky.a!, "poor", 1000, 0.3)
      yield* shareOn(picky.a!, "good", 1000, 0.6)
      yield* picky.a!.swarm.announceHeld
      expect((yield* picky.d!.swarm.view).adapters.map((row) => row.id)).toEqual(["good"])
      expect((yield* picky.a!.swarm.view).refused).toEqual(["not announcing poor@1.0.0: quality 0.30 is below 0.50"])

      // One share per hour.
      const limited = yield* network(["a", "d"], { gate: openGate({ sharesPerHour: 1 }) })
      yield* shareOn(limited.a!, "first", 1000)
      yield* shareOn(limited.a!, "second", 1000)
      yield* limited.a!.swarm.announceHeld
      expect((yield* limited.d!.swarm.view).adapters.map((row) => row.id)).toEqual(["first"])
      expect((yield* limited.a!.swarm.view).refused).toEqual([
        "not announcing second@1.0.0: already shared 1 adapters in the last hour (at most 1)"
      ])
      // Announcing the same adapter again is no new share.
      yield* limited.a!.swarm.announceHeld
      expect((yield* limited.d!.swarm.view).adapters.map((row) => row.id)).toEqual(["first"])
    })))

  it.live("moves the score on every node by signed reports, the latest per reporter standing", () =>
    Effect.scoped(Effect.gen(function*() {
      const { a, b, d, e } = yield* network(["a", "b", "d", "e"])
      yield* shareOn(a!, "coder", 1000, 0.9)
      yield* a!.swarm.announceHeld
      yield* b!.swarm.pull("coder")
      yield* d!.swarm.pull("coder")
      const reporter = crypto.randomBytes(32)
      const receipt = yield* d!.swarm.report(reportBy(reporter, "coder", 0.25, 1_000))
      expect(receipt.score).toBeCloseTo((0.9 + 0.25) / 2, 6)
      for (const node of [a!, b!, d!]) {
        expect(yield* node.registry.adapterScore("coder")).toMatchObject({ reports: 1 })
        expect((yield* node.registry.adapterScore("coder")).score).toBeCloseTo(0.575, 6)
      }
      // A later report replaces it everywhere; an older one, arriving after, changes nothing.
      yield* d!.swarm.report(reportBy(reporter, "coder", 0.5, 2_000))
      yield* b!.swarm.onReport(reportBy(reporter, "coder", 0.0, 1_500))
      const other = crypto.randomBytes(32)
      yield* a!.swarm.report(reportBy(other, "coder", 1, 1_000))
      for (const node of [a!, b!, d!]) {
        const { reports, score } = yield* node.registry.adapterScore("coder")
        expect([reports, score]).toEqual([2, (0.9 + 0.5 + 1) / 3])
        expect((yield* node.registry.listAdapters())[0]).toMatchObject({ score, reports: 2 })
      }
      // A node that comes to hold the adapter after the reports records them when they are published again.
      yield* e!.swarm.pull("coder")
      expect(yield* e!.registry.adapterScore("coder")).toMatchObject({ reports: 0 })
      yield* b!.swarm.republishReports
      expect(yield* e!.registry.adapterScore("coder")).toMatchObject({ score: (0.9 + 0.5 + 1) / 3, reports: 2 })
      // Forged: signed by another key than reporter_id names.
      const forged = Wire.encodeReport({
        ...Either.getOrThrow(Wire.decodeReport(reportBy(other, "coder", 0, 3_000))),
        reporterId: ed25519.publicKeyOf(reporter)
      })
      expect(reportVerdict(forged, Date.now())).toBe("reject")
      expect(yield* Effect.flip(d!.swarm.report(forged))).toMatch(/^report on coder: its signature does not verify/)
    })))
})
