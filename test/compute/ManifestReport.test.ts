/**
 * What the optimizer measured becomes the manifest's `optimization` and `benchmarks`: mapped from a
 * result, carried by a publish request into a signed manifest that parses and verifies.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { manifestReport } from "../../src/compute/optimize/ManifestReport.js"
import type { OptimizeResult } from "../../src/compute/optimize/Optimize.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { parseManifest } from "../../src/content/Manifest.js"
import { trustPolicy, verifyManifest } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { buildManifest } from "../../src/content/Publish.js"
import { tempDir } from "../support/TempDir.js"

const latencyRuntime = "onnxruntime-web"

const autoResult: OptimizeResult = {
  bytes: new Uint8Array(0),
  runtime: latencyRuntime,
  report: {
    originalBytes: 9_726_575,
    optimizedBytes: 2_552_160,
    sizeRatio: 0.2624,
    latencyMs: 4.8,
    baselineLatencyMs: 3.2,
    latencyRatio: 1.5,
    cosine: 0.9999,
    maxError: Number.POSITIVE_INFINITY,
    top1: 0.9,
    quantizationSeconds: 0.2,
    perplexity: 71.09,
    baselinePerplexity: 71.18,
    perplexityDelta: -0.09,
    characterAccuracy: 0.93
  },
  rewrite: {
    quantized: [{ weight: "w.0", node: "/layers.0/MatMul", format: "INT4", elements: 4096 }, {
      weight: "w.1",
      node: "/layers.1/MatMul",
      format: "INT8",
      elements: 4096
    }],
    keptFp32: [
      { node: "/layers.1/attention_output/MatMul", opType: "MatMul", reason: "assigned FP32" },
      {
        node: "/layers.1/MatMul",
        opType: "MatMul",
        reason: "INT4 needs opset 11 (the model has 10); stored as INT8 weight-only instead"
      }
    ]
  },
  assignment: {
    bits: { "w.0": 4, "w.1": 8, "w.2": 32 },
    estimatedBytes: 2_000_000,
    budgetBytes: 2_400_000,
    estimatedDamage: 0.001
  }
}

describe("manifest report", () => {
  it("maps an optimize result to the manifest's optimization and benchmarks", () => {
    const { optimization, benchmarks } = manifestReport(autoResult, {
      quantization: "auto",
      blockSize: 64,
      pruning: { method: "magnitude", sparsity: 0.3 },
      optimizerJob: "optimize-abc"
    })
    expect(optimization).toEqual({
      quantization: "INT4",
      format: "auto",
      groupSize: 64,
      originalSize: "9.73 MB",
      optimizedSize: "2.55 MB",
      sizeRatio: 0.2624,
      pruning: { method: "magnitude", sparsity: 0.3 },
      // Size and speed live elsewhere; a figure that is not finite (a NaN output) is left out.
      quality: {
        cosine: 0.9999,
        top1: 0.9,
        perplexity: 71.09,
        baselinePerplexity: 71.18,
        perplexityDelta: -0.09,
        characterAccuracy: 0.93
      },
      // A weight stored as INT8 instead of INT4 was quantized after all: not listed as FP32.
      keptFp32: ["/layers.1/attention_output/MatMul"],
      precision: { "w.0": 4, "w.1": 8, "w.2": 32 },
      optimizerJob: "optimize-abc"
    })
    expect(benchmarks).toEqual({
      perplexity: 71.09,
      latencyMs: { [latencyRuntime]: 4.8 },
      baselineLatencyMs: { [latencyRuntime]: 3.2 }
    })
    const int8 = manifestReport({
      ...autoResult,
      rewrite: { quantized: [autoResult.rewrite.quantized[1]!], keptFp32: [] }
    }, { quantization: "INT8_DYNAMIC" })
    expect(int8.optimization).toMatchObject({ quantization: "INT8", format: "DynamicQuantizeLinear" })
    expect(int8.optimization).not.toHaveProperty("groupSize")
    expect(int8.optimization).not.toHaveProperty("keptFp32")
  })

  it.effect("a publish request carries it into a signed manifest that parses and verifies", () =>
    Effect.gen(function*() {
      const dir = tempDir("manifest-report-")
      const file = path.join(dir, "model.onnx")
      fs.writeFileSync(file, "weights")
      const pair = keyPairFromSeed(new Uint8Array(32).fill(7))
      const signer = { keyId: "alice", publicKey: pair.publicKey, sign: (message: string) => pair.sign(message) }
      const { optimization, benchmarks } = manifestReport(autoResult, { quantization: "auto" })
      const manifest = yield* buildManifest({
        files: [file],
        name: "Tiny LM",
        version: "1.0.0",
        type: "text-generation",
        license: "MIT",
        expiresInDays: 30,
        signer,
        optimization,
        benchmarks
      }).pipe(
        Effect.provide(BlobStore.layer({ root: path.join(dir, "store"), maxBytes: 1 << 20 }))
      )
      expect(manifest.optimization?.quality?.["cosine"]).toBe(0.9999)
      expect(manifest.benchmarks?.latencyMs?.[latencyRuntime]).toBe(4.8)
      const reparsed = parseManifest(JSON.parse(JSON.stringify(manifest)))
      expect(Either.isRight(reparsed)).toBe(true)
      expect(Either.isRight(verifyManifest(manifest, trustPolicy([["alice", pair.publicKey]]), new Date()))).toBe(true)
      // A non-finite figure someone else wrote is refused with its path.
      const bad = parseManifest({
        ...JSON.parse(JSON.stringify(manifest)),
        optimization: { ...optimization, quality: { cosine: "high" } }
      })
      expect(Either.isLeft(bad) && bad.left.message).toBe(
        "invalid manifest: optimization.quality.cosine must be a finite number"
      )
      // `quantization` given explicitly still wins, as before.
      const explicit = yield* buildManifest({
        files: [file],
        name: "Tiny LM",
        version: "1.0.1",
        type: "text-generation",
        license: "MIT",
        expiresInDays: 30,
        signer,
        quantization: "INT8",
        optimization
      }).pipe(
        Effect.provide(BlobStore.layer({ root: path.join(dir, "store"), maxBytes: 1 << 20 }))
      )
      expect(explicit.optimization).toMatchObject({ quantization: "INT8", format: "auto" })
    }))
})
