/**
 * Quality reports in the registry: given/when/then on the decider (one standing report per reporter,
 * the latest by its signed timestamp, in any arrival order), the score, and the score rebuilt from the
 * journal by a registry that starts again on the same file.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as path from "node:path"
import type { QualityReport } from "../../../src/actors/registry/AdapterReports.js"
import { AdapterQualityReported, qualityScore } from "../../../src/actors/registry/AdapterReports.js"
import { AdapterPublished, Adapters } from "../../../src/actors/registry/Registry.js"
import { Registry } from "../../../src/actors/registry/RegistryService.js"
import { parseManifest } from "../../../src/content/Manifest.js"
import { signManifest } from "../../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../../src/content/NodeKey.js"
import { DeciderSpecification } from "../../../src/events/DeciderSpecification.js"
import { sqliteKernel } from "../../support/Layers.js"
import { tempDir } from "../../support/TempDir.js"

const pair = keyPairFromSeed(new Uint8Array(32).fill(3))
const alice = { keyId: "alice", publicKey: pair.publicKey, sign: (message: string) => pair.sign(message) }
const manifest = signManifest(
  Either.getOrThrow(parseManifest({
    id: "coder",
    name: "coder",
    version: "1.0.0",
    type: "adapter",
    license: "MIT",
    artifacts: {
      weights: {
        filename: "adapter.safetensors",
        size: 10,
        sha256: "a".repeat(64),
        cid: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
      }
    },
    adapter: { baseModel: "tiny-lm", rank: 4, domain: "code", quality: 0.8 },
    publishedAt: "2026-01-03T00:00:00Z",
    publishedBy: "alice",
    publisherKey: alice.publicKey,
    expiresAt: "2099-01-01T00:00:00Z"
  })),
  alice
)
const published = AdapterPublished.make({
  id: "coder",
  version: "1.0.0",
  manifest,
  digest: "d",
  keyId: "alice",
  publicKey: alice.publicKey,
  name: "coder",
  baseModel: "tiny-lm",
  rank: 4,
  domain: "code",
  quality: 0.8
})
const report = (reporter: string, score: number, timestamp: number, signature = "00"): QualityReport => ({
  reporter,
  score,
  feedback: "",
  timestamp,
  signature
})
const reported = (r: QualityReport) => AdapterQualityReported.make({ id: "coder", ...r })
const spec = DeciderSpecification.for(Adapters.decider)

describe("adapter quality reports", () => {
  it.effect("a report on a published adapter is recorded; on an unknown one it is refused", () =>
    Effect.gen(function*() {
      yield* spec.given([published]).when({ _tag: "Report", id: "coder", report: report("k", 0.5, 10) }).then([
        reported(report("k", 0.5, 10))
      ])
      yield* spec.given([]).when({ _tag: "Report", id: "coder", report: report("k", 0.5, 10) }).thenFails((error) =>
        error._tag === "UnknownVersion"
      )
    }))

  it.effect("the latest report of a reporter stands; an older one, arriving after, records nothing", () =>
    Effect.gen(function*() {
      yield* spec.given([published, reported(report("k", 0.5, 10))])
        .when({ _tag: "Report", id: "coder", report: report("k", 0.9, 20) })
        .then([reported(report("k", 0.9, 20))])
      yield* spec.given([published, reported(report("k", 0.5, 20))])
        .when({ _tag: "Report", id: "coder", report: report("k", 0.9, 10) })
        .then([])
      yield* spec.given([published, reported(report("k", 0.5, 20))])
        .when({ _tag: "Report", id: "coder", report: report("k", 0.5, 20) })
        .then([])
    }))

  it("scores the mean of the standing reports and the declared quality", () => {
    expect(qualityScore(undefined, undefined)).toEqual({ score: undefined, reports: 0 })
    expect(qualityScore(undefined, 0.8)).toEqual({ score: 0.8, reports: 0 })
    expect(qualityScore({ k: report("k", 0.2, 1), l: report("l", 0.5, 1) }, 0.8)).toEqual({ score: 0.5, reports: 2 })
    expect(qualityScore({ k: report("k", 0.2, 1) }, undefined)).toEqual({ score: 0.2, reports: 1 })
  })

  it.live("keeps the score across a restart: it is rebuilt from the journal", () =>
    Effect.gen(function*() {
      const file = path.join(tempDir("reports-"), "journal.db")
      const registry = (use: (registry: Registry) => Effect.Effect<unknown, unknown>) =>
        Effect.flatMap(Registry, use).pipe(
          Effect.provide(Registry.Default.pipe(Layer.provideMerge(sqliteKernel(file)))),
          Effect.scoped
        )
      yield* registry((r) =>
        Effect.gen(function*() {
          yield* r.publishAdapter(manifest)
          yield* r.reportAdapter("coder", report("k", 0.2, 10))
          yield* r.reportAdapter("coder", report("l", 0.5, 10))
          yield* r.reportAdapter("coder", report("k", 0.4, 5)) // older: ignored
        })
      )
      yield* registry((r) =>
        Effect.gen(function*() {
          const score = yield* r.adapterScore("coder")
          expect([score.score, score.reports]).toEqual([(0.8 + 0.2 + 0.5) / 3, 2])
          expect((yield* r.listAdapters())[0]).toMatchObject({ score: (0.8 + 0.2 + 0.5) / 3, reports: 2 })
        })
      )
    }))
})
