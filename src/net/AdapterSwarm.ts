/**
 * Adapters shared between peers without a registry (model-distribution seed 9.2 and 10.2): who holds
 * which adapter, learnt from signed announcements that pass the sharing gates; adapters pulled chunk by
 * chunk from every holder at once; signed quality reports that move an adapter's score.
 *
 * Trust: an announcement is signed by the peer that announces it and carries the publisher's signed
 * manifest, whose artifact digests are what a pull is checked against (the download and its checks:
 * AdapterDownload.ts). Nothing is stored until every artifact hashes to the manifest's digest.
 * Transport-agnostic: the node wires it to libp2p (net/PeerNode.ts), tests to each other in memory.
 */
import { Clock, Effect, Either, Schema } from "effect"
import type { QualityReport, QualityScore } from "../actors/registry/AdapterReports.js"
import type { SharingRules } from "../actors/registry/AdapterSharing.js"
import { SHARE_WINDOW_MS, sharingProblem } from "../actors/registry/AdapterSharing.js"
import { publisherSignature } from "../actors/registry/Registry.js"
import type { ModelManifest } from "../content/Manifest.js"
import { compareVersions, manifestDigest, parseManifestText } from "../content/Manifest.js"
import { verifyEmbeddedSignatures } from "../content/ManifestSigning.js"
import { toHex } from "../content/Sha256.js"
import { accountIdOf } from "../domain/Ed25519.js"
import { bundleLayout, downloadBundle, RefusedChunk } from "./AdapterDownload.js"
import type { AdapterAnnounce, AdapterReport } from "./AdapterWire.js"
import * as Wire from "./AdapterWire.js"
import type { Verdict } from "./Libp2pHost.js"
import { publicKeyOfPeerId } from "./PeerBook.js"

/** What the node holds: its registry's adapters whose artifacts are all in its blob store. */
export interface AdapterHoldings {
  readonly held: Effect.Effect<ReadonlyArray<ModelManifest>>
  /** The adapter's bytes (its artifacts, in `bundleLayout` order), or undefined when not held. */
  readonly bundle: (id: string, version: string) => Effect.Effect<Uint8Array | undefined>
  /** Stores verified bytes and records the manifest; fails with one line. */
  readonly store: (manifest: ModelManifest, bundle: Uint8Array) => Effect.Effect<void, string>
  /** Records a report checked here; undefined when no such adapter is held. */
  readonly recordReport: (id: string, report: QualityReport) => Effect.Effect<QualityScore | undefined>
  readonly score: (id: string) => Effect.Effect<QualityScore | undefined>
  /** The standing report of each reporter on a held adapter, as recorded (signatures included). */
  readonly standing: (id: string) => Effect.Effect<ReadonlyArray<QualityReport>>
}

export interface SwarmTransport {
  readonly peerId: string
  readonly publishAnnounce: (bytes: Uint8Array) => Effect.Effect<void>
  readonly publishReport: (bytes: Uint8Array) => Effect.Effect<void>
  readonly request: (peerId: string, bytes: Uint8Array) => Effect.Effect<Uint8Array, string>
}

export interface SharingGatePort {
  readonly rules: Effect.Effect<SharingRules>
  readonly reputationPpm: (account: string) => Effect.Effect<bigint>
}

export interface SwarmOptions {
  /** The node key's seed: announcements are signed with it (the peer id names its public key). */
  readonly seed: Uint8Array
  readonly gate?: SharingGatePort | undefined
  /** An announcement not renewed within this time is forgotten (default 2 minutes). */
  readonly announceTtlMs?: number | undefined
  /** Strikes after which a peer is asked for nothing more (default 3). */
  readonly maxStrikes?: number | undefined
  /** FAULT INJECTION, for tests only: corrupt this many of the first chunks served (their hash kept). */
  readonly faultCorruptServedChunks?: number | undefined
}

export const AdapterHolderView = Schema.Struct({
  id: Schema.String,
  version: Schema.String,
  name: Schema.String,
  baseModel: Schema.String,
  rank: Schema.Number,
  domain: Schema.String,
  publisherKey: Schema.String,
  /** The quality score as the newest announcement states it. */
  announcedQuality: Schema.Number,
  holders: Schema.Array(Schema.String),
  heldHere: Schema.Boolean
})
export const AdapterSwarmView = Schema.Struct({
  adapters: Schema.Array(AdapterHolderView),
  strikes: Schema.Array(Schema.Struct({ peerId: Schema.String, strikes: Schema.Number })),
  /** Announcements refused lately, newest last: who, what, why. */
  refused: Schema.Array(Schema.String)
})
export type AdapterSwarmView = typeof AdapterSwarmView.Type

export const AdapterPullReceipt = Schema.Struct({
  id: Schema.String,
  version: Schema.String,
  bytes: Schema.Number,
  chunks: Schema.Number,
  /** Chunks taken from each peer. */
  sources: Schema.Array(Schema.Struct({ peerId: Schema.String, chunks: Schema.Number })),
  refused: Schema.Array(RefusedChunk),
  alreadyHeld: Schema.Boolean
})
export type AdapterPullReceipt = typeof AdapterPullReceipt.Type

export const AdapterReportReceipt = Schema.Struct({
  id: Schema.String,
  reporter: Schema.String,
  /** The adapter's score here after the report (absent when this node does not hold it). */
  score: Schema.optional(Schema.Number),
  reports: Schema.optional(Schema.Number)
})
export type AdapterReportReceipt = typeof AdapterReportReceipt.Type

const ANNOUNCE_SKEW_MS = 5 * 60_000
const MAX_TEXT = 1024
const MAX_MANIFEST_BYTES = 256 * 1024
const REFUSALS_KEPT = 32

/** The weights artifact, whose digest is the announcement's `checksum` (the seed's "SHA-256 of weights"). */
export const weightsDigestOf = (manifest: ModelManifest): string => {
  const entries = Object.entries(manifest.artifacts)
  const weights = entries.find(([, artifact]) => artifact.filename === "adapter.safetensors") ??
    entries.sort(([left], [right]) => (left < right ? -1 : 1))[0]!
  return weights[1].sha256
}

const hexBytes = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"))

const announceCheck = (announce: AdapterAnnounce, nowMs: number, ttlMs: number): Verdict => {
  const key = publicKeyOfPeerId(announce.peerId)
  if (key === undefined || !Wire.announceSignedBy(key, announce)) return "reject"
  if (announce.timestamp > nowMs + ANNOUNCE_SKEW_MS) return "reject"
  return announce.timestamp < nowMs - ttlMs ? "ignore" : "accept"
}

/** The gossip validator's part: shape, freshness and the announcer's signature (the rest needs the node's state). */
export const announceVerdict = (bytes: Uint8Array, nowMs: number, ttlMs: number): Verdict =>
  Either.match(Wire.decodeAnnounce(bytes), {
    onLeft: () => "reject",
    onRight: (announce) => announceCheck(announce, nowMs, ttlMs)
  })

/** Why a report is not one to record, or undefined. */
export const reportProblem = (report: AdapterReport, nowMs: number): string | undefined => {
  if (report.adapterId === "" || report.adapterId.length > MAX_TEXT) return "names no adapter"
  if (!(report.qualityScore >= 0 && report.qualityScore <= 1)) return `score ${report.qualityScore} is not in 0..1`
  if (report.feedback.length > MAX_TEXT) return `feedback longer than ${MAX_TEXT} characters`
  if (report.timestamp > nowMs + ANNOUNCE_SKEW_MS) return "dated in the future"
  if (!Wire.reportSigned(report)) return "its signature does not verify by the key reporter_id names"
  return undefined
}

export const reportVerdict = (bytes: Uint8Array, nowMs: number): Verdict => {
  const decoded = Wire.decodeReport(bytes)
  return Either.isRight(decoded) && reportProblem(decoded.right, nowMs) === undefined ? "accept" : "reject"
}

interface Announced {
  readonly manifest: ModelManifest
  readonly announce: AdapterAnnounce
  /** Holder peer id -> when its newest announcement was made. */
  readonly holders: Map<string, number>
}

export const makeAdapterSwarm = (holdings: AdapterHoldings, transport: SwarmTransport, options: SwarmOptions) =>
  Effect.gen(function*() {
    const ttl = options.announceTtlMs ?? 120_000
    const maxStrikes = options.maxStrikes ?? 3
    const table = new Map<string, Announced>()
    const strikes = new Map<string, number>()
    const refusals: Array<string> = []
    /** Per announcing peer: when it first announced each adapter version (the hourly share limit). */
    const shares = new Map<string, Map<string, number>>()
    let faultsLeft = options.faultCorruptServedChunks ?? 0

    const keyOf = (id: string, version: string) => `${id}@${version}`
    const refuse = (line: string) => {
      refusals.push(line)
      if (refusals.length > REFUSALS_KEPT) refusals.shift()
    }
    const strike = (peerId: string) => strikes.set(peerId, (strikes.get(peerId) ?? 0) + 1)

    /** The sharing gates (seed 10.2) on one peer's announcement of one adapter, as the registry applies them. */
    const gateProblem = (manifest: ModelManifest, announcer: string, nowMs: number) =>
      Effect.gen(function*() {
        if (options.gate === undefined) return undefined
        const publisher = yield* Either.match(publisherSignature(manifest), {
          onLeft: (error) => Effect.fail(error.message),
          onRight: (signature) => Effect.succeed(signature)
        })
        const announced = shares.get(announcer) ?? new Map<string, number>()
        const key = keyOf(manifest.id, manifest.version)
        const inWindow = [...announced.entries()].filter(([other, at]) => other !== key && at > nowMs - SHARE_WINDOW_MS)
        const score = yield* holdings.score(manifest.id)
        return sharingProblem(yield* options.gate.rules, {
          reputationPpm: yield* options.gate.reputationPpm(accountIdOf(publisher.publicKey)),
          sharesInWindow: announced.has(key) ? 0 : inWindow.length,
          quality: score?.score ?? manifest.adapter?.quality
        })
      }).pipe(Effect.merge)

    const countShare = (announcer: string, manifest: ModelManifest, nowMs: number) => {
      const announced = shares.get(announcer) ?? new Map<string, number>()
      const key = keyOf(manifest.id, manifest.version)
      if (!announced.has(key)) announced.set(key, nowMs)
      for (const [other, at] of announced) if (at <= nowMs - SHARE_WINDOW_MS) announced.delete(other)
      shares.set(announcer, announced)
    }

    /** Takes a verified announcement into the table, or says why not. */
    const accept = (announce: AdapterAnnounce, from: string) =>
      Effect.gen(function*() {
        const nowMs = yield* Clock.currentTimeMillis
        const who = `${announce.peerId.slice(-8)} announcing ${announce.adapterId}@${announce.version}`
        if (announceCheck(announce, nowMs, ttl) !== "accept") return refuse(`${who}: not signed or stale`)
        if (from !== announce.peerId) return refuse(`${who}: relayed as its own by ${from}`)
        if (announce.manifest.length > MAX_MANIFEST_BYTES) return refuse(`${who}: manifest too large`)
        const parsed = parseManifestText(new TextDecoder().decode(announce.manifest))
        if (Either.isLeft(parsed)) return refuse(`${who}: ${parsed.left.message}`)
        const manifest = parsed.right
        const verified = verifyEmbeddedSignatures(manifest, new Date(nowMs))
        if (Either.isLeft(verified)) return refuse(`${who}: ${verified.left.message}`)
        const adapter = manifest.adapter
        if (manifest.type !== "adapter" || adapter === undefined) {
          return refuse(`${who}: the manifest is not an adapter's`)
        }
        const mismatch = manifest.id !== announce.adapterId || manifest.version !== announce.version ||
          adapter.baseModel !== announce.baseModel || adapter.rank !== announce.rank ||
          adapter.domain !== announce.domain || manifest.name !== announce.name ||
          weightsDigestOf(manifest) !== toHex(announce.checksum)
        if (mismatch) return refuse(`${who}: its fields or checksum differ from the signed manifest`)
        const problem = yield* gateProblem(manifest, announce.peerId, nowMs)
        if (problem !== undefined) return refuse(`${who}: ${problem}`)
        const key = keyOf(manifest.id, manifest.version)
        const known = table.get(key)
        if (known !== undefined && manifestDigest(known.manifest) !== manifestDigest(manifest)) {
          return refuse(`${who}: another manifest than the one announced before for ${key}`)
        }
        countShare(announce.peerId, manifest, nowMs)
        const entry = known ?? { manifest, announce, holders: new Map<string, number>() }
        entry.holders.set(announce.peerId, announce.timestamp)
        table.set(key, { ...entry, announce })
      })

    const onAnnounce = (bytes: Uint8Array, from: string) =>
      Either.match(Wire.decodeAnnounce(bytes), {
        onLeft: (problem) => Effect.sync(() => refuse(`from ${from}: ${problem}`)),
        onRight: (announce) => accept(announce, from)
      })

    /** Announces every adapter held here that passes the gates. */
    const announceHeld = Effect.gen(function*() {
      const nowMs = yield* Clock.currentTimeMillis
      for (const manifest of yield* holdings.held) {
        const problem = yield* gateProblem(manifest, transport.peerId, nowMs)
        if (problem !== undefined) {
          refuse(`not announcing ${manifest.id}@${manifest.version}: ${problem}`)
          continue
        }
        countShare(transport.peerId, manifest, nowMs)
        const adapter = manifest.adapter!
        const score = yield* holdings.score(manifest.id)
        const announce = Wire.signAnnounce(options.seed, {
          adapterId: manifest.id,
          name: manifest.name,
          baseModel: adapter.baseModel,
          rank: adapter.rank,
          domain: adapter.domain,
          qualityScore: score?.score ?? adapter.quality ?? 0,
          checksum: hexBytes(weightsDigestOf(manifest)),
          signature: new Uint8Array(0),
          peerId: transport.peerId,
          timestamp: nowMs,
          version: manifest.version,
          manifest: new TextEncoder().encode(JSON.stringify(manifest))
        })
        yield* transport.publishAnnounce(Wire.encodeAnnounce(announce))
      }
    })

    /** Answers a chunk request from what this node holds. */
    const serve = (bytes: Uint8Array) =>
      Effect.gen(function*() {
        const request = Either.getOrUndefined(Wire.decodeRequest(bytes))
        const notHeld = (id: string, version: string) =>
          Wire.encodeChunk({
            adapterId: id,
            version,
            chunkIndex: 0,
            totalChunks: 0,
            data: new Uint8Array(0),
            chunkHash: new Uint8Array(0)
          })
        if (request === undefined) return notHeld("", "")
        const bundle = yield* holdings.bundle(request.adapterId, request.version)
        if (bundle === undefined || request.chunkIndex >= Wire.totalChunksOf(bundle.length)) {
          return notHeld(request.adapterId, request.version)
        }
        const chunk = Wire.chunkOf(request.adapterId, request.version, bundle, request.chunkIndex)
        if (faultsLeft > 0) {
          // FAULT INJECTION (tests only, off unless configured): a flipped byte under the true hash.
          faultsLeft--
          const data = chunk.data.slice()
          data[0] = data[0]! ^ 0xff
          return Wire.encodeChunk({ ...chunk, data })
        }
        return Wire.encodeChunk(chunk)
      })

    const holdersOf = (entry: Announced, nowMs: number) =>
      [...entry.holders.entries()]
        .filter(([peerId, at]) => peerId !== transport.peerId && at > nowMs - ttl)
        .map(([peerId]) => peerId)
        .filter((peerId) => (strikes.get(peerId) ?? 0) < maxStrikes)

    const pull = (id: string, version?: string) =>
      Effect.gen(function*() {
        const nowMs = yield* Clock.currentTimeMillis
        const candidates = [...table.values()].filter((entry) =>
          entry.manifest.id === id && (version === undefined || entry.manifest.version === version) &&
          holdersOf(entry, nowMs).length > 0
        )
        const entry = candidates.sort((left, right) =>
          compareVersions(left.manifest.version, right.manifest.version)
        )[candidates.length - 1]
        if (entry === undefined) {
          return yield* Effect.fail(`no peer announces adapter ${id}${version === undefined ? "" : `@${version}`}`)
        }
        const { manifest } = entry
        const size = bundleLayout(manifest).reduce((sum, part) =>
          sum + part.size, 0)
        const total = Wire.totalChunksOf(size)
        const base = { id, version: manifest.version, bytes: size, chunks: total }
        if ((yield* holdings.bundle(id, manifest.version)) !== undefined) {
          return { ...base, sources: [], refused: [], alreadyHeld: true } satisfies AdapterPullReceipt
        }
        const { bundle, pieces, refused } = yield* downloadBundle(manifest, holdersOf(entry, nowMs), {
          self: transport.peerId,
          request: transport.request,
          struck: (peerId) => (strikes.get(peerId) ?? 0) >= maxStrikes,
          strike
        })
        yield* holdings.store(manifest, bundle)
        const counts = new Map<string, number>()
        for (const piece of pieces) counts.set(piece.peerId, (counts.get(piece.peerId) ?? 0) + 1)
        yield* announceHeld
        return {
          ...base,
          sources: [...counts].map(([peerId, chunks]) => ({ peerId, chunks })),
          refused,
          alreadyHeld: false
        } satisfies AdapterPullReceipt
      })

    const record = (report: AdapterReport) =>
      holdings.recordReport(report.adapterId, {
        reporter: report.reporterId,
        score: report.qualityScore,
        feedback: report.feedback,
        timestamp: report.timestamp,
        signature: toHex(report.signature)
      })

    /** Checks a report signed by its reporter, records it here and publishes it to every peer. */
    const report = (bytes: Uint8Array) =>
      Effect.gen(function*() {
        const decoded = Wire.decodeReport(bytes)
        if (Either.isLeft(decoded)) return yield* Effect.fail(decoded.left)
        const problem = reportProblem(decoded.right, yield* Clock.currentTimeMillis)
        if (problem !== undefined) return yield* Effect.fail(`report on ${decoded.right.adapterId}: ${problem}`)
        const score = yield* record(decoded.right)
        yield* transport.publishReport(bytes)
        return {
          id: decoded.right.adapterId,
          reporter: decoded.right.reporterId,
          ...(score?.score === undefined ? {} : { score: score.score, reports: score.reports })
        } satisfies AdapterReportReceipt
      })

    const onReport = (bytes: Uint8Array) =>
      Effect.gen(function*() {
        const decoded = Wire.decodeReport(bytes)
        if (Either.isLeft(decoded)) return
        if (reportProblem(decoded.right, yield* Clock.currentTimeMillis) !== undefined) return
        yield* record(decoded.right)
      })

    /**
     * Publishes again the standing reports on every adapter held here, so a node that came to hold one
     * after a report was gossiped records it too (recording is idempotent: the latest report stands).
     */
    const republishReports = Effect.gen(function*() {
      for (const manifest of yield* holdings.held) {
        for (const standing of yield* holdings.standing(manifest.id)) {
          yield* transport.publishReport(Wire.encodeReport({
            adapterId: manifest.id,
            reporterId: standing.reporter,
            qualityScore: standing.score,
            feedback: standing.feedback,
            timestamp: standing.timestamp,
            signature: hexBytes(standing.signature)
          }))
        }
      }
    })

    const view = Effect.gen(function*() {
      const nowMs = yield* Clock.currentTimeMillis
      const held = new Set((yield* holdings.held).map((manifest) => keyOf(manifest.id, manifest.version)))
      return {
        adapters: [...table.values()].map(({ announce, holders, manifest }) => ({
          id: manifest.id,
          version: manifest.version,
          name: manifest.name,
          baseModel: announce.baseModel,
          rank: announce.rank,
          domain: announce.domain,
          publisherKey: manifest.publisherKey ?? "",
          announcedQuality: announce.qualityScore,
          holders: [...holders.entries()].filter(([, at]) => at > nowMs - ttl).map(([peerId]) => peerId).sort(),
          heldHere: held.has(keyOf(manifest.id, manifest.version))
        })),
        strikes: [...strikes].map(([peerId, count]) => ({ peerId, strikes: count })),
        refused: [...refusals]
      } satisfies AdapterSwarmView
    })

    return { onAnnounce, announceHeld, serve, pull, report, onReport, republishReports, view } as const
  })

export type AdapterSwarm = Effect.Effect.Success<ReturnType<typeof makeAdapterSwarm>>
