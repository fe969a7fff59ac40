/**
 * The SDK's ModelLoader and InferenceSession on a real cache and onnxruntime-node: models by id from
 * the cache, results equal to the inference service on the same files, a memory limit that evicts
 * the least recently used idle model and never one in use, adapters swapped per session, cache
 * management, and one-line errors for what cannot be done.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, type Scope, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { Inference } from "../../src/compute/inference/Inference.js"
import { readModelFolder } from "../../src/compute/inference/ModelFolder.js"
import { readModel, writeModel } from "../../src/compute/onnx/OnnxModel.js"
import { rewriteWeights } from "../../src/compute/quantize/Rewrite.js"
import type { BlobStore } from "../../src/content/BlobStore.js"
import { saveManifest } from "../../src/content/LocalModels.js"
import { buildManifest } from "../../src/content/Publish.js"
import * as InferenceSession from "../../src/sdk/InferenceSession.js"
import { ModelLoader } from "../../src/sdk/ModelLoader.js"
import { cacheReferenceModel, loaderLayer, publisher, REFERENCE, storeRandomAdapter } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

const withLoader = <A, E>(
  use: (root: string) => Effect.Effect<A, E, ModelLoader | Inference | BlobStore | Scope.Scope>,
  options: Parameters<typeof loaderLayer>[1] = {}
) => {
  const root = tempDir("sdk-cache-")
  return Effect.scoped(Effect.provide(use(root), loaderLayer(root, options)))
}

describe("ModelLoader", () => {
  it.effect("loads cached models by id; the session's results equal the inference service's on the same files", () =>
    withLoader(() =>
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-encoder")
        yield* cacheReferenceModel("tiny-lm")
        const loader = yield* ModelLoader
        expect(yield* loader.isCached("tiny-lm")).toBe(true)
        expect(yield* loader.isCached("tiny-lm", "2.0.0")).toBe(false)
        expect(yield* loader.isCached("absent")).toBe(false)
        expect((yield* loader.getCachedModels()).map((model) => `${model.id}@${model.version} ${model.type}`)).toEqual([
          "tiny-encoder@1.0.0 embedding",
          "tiny-lm@1.0.0 text-generation"
        ])

        const inference = yield* Inference
        const direct = yield* inference.loadModel(yield* readModelFolder(path.join(REFERENCE, "tiny-encoder")))
        const expected = yield* inference.embedBatch(direct, ["a young dog", "the price of tea"])
        const phases: Array<string> = []
        const embedder = yield* InferenceSession.create("tiny-encoder", { onProgress: (p) => phases.push(p.phase) })
        expect(phases).toEqual(["open", "ready"])
        expect(embedder.kind).toBe("encoder")
        const vectors = yield* embedder.embedBatch(["a young dog", "the price of tea"])
        expect(Array.from(vectors[0]!)).toEqual(Array.from(expected[0]!))
        expect(Array.from(yield* embedder.embed("the price of tea"))).toEqual(Array.from(expected[1]!))
        const similarity = yield* embedder.similarity("a young dog", "the price of tea")
        expect(similarity).toBeCloseTo(expected[0]!.reduce((sum, x, i) => sum + x * expected[1]![i]!, 0), 6)

        const lmDirect = yield* inference.loadModel(yield* readModelFolder(path.join(REFERENCE, "tiny-lm")))
        const prompt = "The whale rose from the sea and"
        const want = yield* inference.generate(lmDirect, prompt, { maxNewTokens: 10, temperature: 0 })
        const lm = yield* InferenceSession.create("tiny-lm@1.0.0")
        expect(yield* lm.generate(prompt, { maxTokens: 10, temperature: 0 })).toBe(want.text)
        const pieces = yield* Stream.runCollect(lm.generateStream(prompt, { maxTokens: 10, temperature: 0 }))
        expect([...pieces].join("")).toBe(want.text)
        const stopped = yield* lm.generateDetailed(prompt, { maxTokens: 10, stopSequences: [want.text.slice(3, 6)] })
        expect(stopped.finishReason).toBe("stop")
        expect(yield* lm.getMemoryInfo()).toEqual({
          modelBytes: fs.statSync(path.join(REFERENCE, "tiny-lm", "onnx", "model.onnx")).size,
          adapterBytes: 0,
          kvCacheBytes: 0
        })
      })
    ))

  it.effect("keeps at most maxModels open: the least recently used idle one goes, one in use stays", () =>
    withLoader(() =>
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-encoder")
        yield* cacheReferenceModel("tiny-lm")
        const loader = yield* ModelLoader
        const resident = Effect.map(loader.resident(), (models) => models.map((m) => `${m.id}:${m.users}`).sort())
        const encoder = yield* InferenceSession.create("tiny-encoder")
        // Both in use: over the limit for now, since a model in use is never closed under its session.
        const lm = yield* InferenceSession.create("tiny-lm")
        expect(yield* resident).toEqual(["tiny-encoder:1", "tiny-lm:1"])
        yield* encoder.dispose()
        expect(yield* resident).toEqual(["tiny-lm:1"])
        const refused = yield* Effect.flip(encoder.embed("anything"))
        expect(refused.message).toBe("the session on tiny-encoder was disposed")
        yield* lm.dispose()
        expect(yield* resident).toEqual(["tiny-lm:0"])
        // Loaded again while resident: nothing is read.
        const phases: Array<string> = []
        yield* InferenceSession.create("tiny-lm", { onProgress: (p) => phases.push(p.phase) })
        expect(phases).toEqual(["ready"])
      }), { maxModels: 1 }))

  it.effect("swaps adapters in place when the branches fit and opens the model again when they do not", () =>
    withLoader((root) =>
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-lm")
        yield* storeRandomAdapter(root, "tiny-lm", "small", 2, 1, 3)
        yield* storeRandomAdapter(root, "tiny-lm", "large", 4, 2, 1)
        yield* storeRandomAdapter(root, "tiny-encoder", "foreign", 2, 3, 2)
        const prompt = "The whale rose from the sea and"
        const config = { maxTokens: 10, temperature: 0 }
        const session = yield* InferenceSession.create("tiny-lm")
        const base = yield* session.generate(prompt, config)
        expect(yield* session.loadAdapter("small")).toEqual({ reloaded: true })
        const small = yield* session.generate(prompt, config)
        expect(small).not.toBe(base)
        expect(yield* session.activeAdapter()).toBe("small@1.0.0")
        expect(yield* session.loadAdapter("large")).toEqual({ reloaded: true })
        const large = yield* session.generate(prompt, config)
        expect(large).not.toBe(small)
        // Rank 4 branches now: the rank-2 adapter swaps in place and gives what it gave before.
        expect(yield* session.loadAdapter("small@1.0.0")).toEqual({ reloaded: false })
        expect(yield* session.generate(prompt, config)).toBe(small)
        yield* session.unloadAdapter()
        expect(yield* session.generate(prompt, config)).toBe(base)
        expect((yield* session.getMemoryInfo()).adapterBytes).toBe(0)

        const foreign = yield* Effect.flip(session.loadAdapter("foreign"))
        expect(foreign.message).toMatch(
          /^adapter foreign@1\.0\.0 was made for base model tiny-encoder \(sha256 [0-9a-f]{64}\), not tiny-lm@1\.0\.0$/
        )
        const absent = yield* Effect.flip(session.loadAdapter("nothing"))
        expect(absent.message).toBe("no adapter nothing here (edge-net-models adapters list shows what there is)")
      })
    ))

  it.effect("runs an adapter made for the FP32 model on its INT4 variant, when the variant's manifest names its base", () =>
    withLoader((root) =>
      Effect.gen(function*() {
        const fp32 = yield* cacheReferenceModel("tiny-lm")
        yield* storeRandomAdapter(root, "tiny-lm", "fp32-made", 2, 5, 2)
        const fp32Bytes = fs.readFileSync(path.join(REFERENCE, "tiny-lm", "onnx", "model.onnx"))
        const folder = tempDir("sdk-int4-")
        fs.writeFileSync(
          path.join(folder, "model.onnx"),
          writeModel(rewriteWeights(readModel(new Uint8Array(fp32Bytes)), { defaultFormat: "INT4" }).model)
        )
        const files = [
          path.join(folder, "model.onnx"),
          ...["tokenizer.json", "config.json"].map((file) => path.join(REFERENCE, "tiny-lm", file))
        ]
        const variant = (id: string, baseModel?: { sha256: string; id: string }) =>
          Effect.flatMap(
            buildManifest({
              files,
              id,
              name: id,
              version: "1.0.0",
              type: "text-generation",
              optimization: { quantization: "INT4", ...(baseModel === undefined ? {} : { baseModel }) },
              license: "MIT",
              expiresInDays: 30,
              signer: publisher
            }),
            (manifest) => saveManifest(root, manifest)
          )
        const fp32Digest = fp32.artifacts.model!.sha256
        yield* variant("tiny-lm-int4", { sha256: fp32Digest, id: "tiny-lm" })
        yield* variant("tiny-lm-int4-unnamed")

        const prompt = "The whale rose from the sea and"
        const config = { maxTokens: 10, temperature: 0 }
        const int4 = yield* InferenceSession.create("tiny-lm-int4")
        const plain = yield* int4.generate(prompt, config)
        expect(yield* int4.loadAdapter("fp32-made")).toEqual({ reloaded: true })
        expect(yield* int4.generate(prompt, config)).not.toBe(plain)
        // On FP32 the same adapter moves the output the same way (INT4 rounding aside): same first tokens.
        const onFp32 = yield* InferenceSession.create("tiny-lm", { adapter: "fp32-made" })
        const adapted = yield* int4.generateDetailed(prompt, config)
        const reference = yield* onFp32.generateDetailed(prompt, config)
        expect(adapted.tokenIds.slice(0, 2)).toEqual(reference.tokenIds.slice(0, 2))

        const unnamed = yield* InferenceSession.create("tiny-lm-int4-unnamed")
        const refused = yield* Effect.flip(unnamed.loadAdapter("fp32-made"))
        expect(refused.message).toMatch(
          /^adapter fp32-made@1\.0\.0 was made for base model tiny-lm \(sha256 [0-9a-f]{64}\), not tiny-lm-int4-unnamed@1\.0\.0$/
        )
      })
    ))

  it.effect("createTrainer trains an adapter on the session's model from examples; saved, the session runs it", () =>
    withLoader(() =>
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-lm")
        const session = yield* InferenceSession.create("tiny-lm")
        const trainer = yield* session.createTrainer({
          rank: 2,
          learningRate: 5e-3,
          maxSteps: 8,
          batchSize: 4,
          window: 24
        })
        const nothing = yield* Effect.flip(trainer.getAdapter())
        expect(nothing.message).toBe("nothing trained yet: call train(examples) first")
        const examples = Array.from({ length: 30 }, (_, i) => ({
          input: `Write a note about ship ${i}`,
          output: `The ship ${i} sailed at dawn with the captain and the crew on deck.`
        }))
        const steps: Array<number> = []
        const summary = yield* trainer.train(examples, { onProgress: (progress) => steps.push(progress.step) })
        expect(summary.task).toBe("causal-lm")
        expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
        // Held-out windows the adapter never trained on: its loss is below the base model's.
        expect(summary.after).toBeLessThan(summary.before)
        const adapter = yield* trainer.getAdapter()
        expect(yield* adapter.save("ships")).toMatchObject({ id: "ships", version: "1.0.0" })
        const prompt = "Write a note about ship 3\n"
        const plain = yield* session.generate(prompt, { maxTokens: 8, temperature: 0 })
        yield* session.loadAdapter("ships")
        expect(yield* session.generate(prompt, { maxTokens: 8, temperature: 0 })).not.toBe(plain)

        const mixed = yield* Effect.flip(trainer.train([{ text: "a", label: 1 }, { text: "b" }]))
        expect(mixed.message).toBe("1 of 2 examples have a label: label all of them or none")
        expect((yield* Effect.flip(trainer.train([]))).message).toBe("no training examples")
      })
    ))

  it.effect("clears one model's cache (blobs another model shares stay) and refuses while it is in use", () =>
    withLoader(() =>
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-encoder")
        yield* cacheReferenceModel("tiny-encoder", "1.1.0")
        yield* cacheReferenceModel("tiny-lm")
        const loader = yield* ModelLoader
        const session = yield* InferenceSession.create("tiny-encoder")
        const busy = yield* Effect.flip(loader.clearCache("tiny-encoder"))
        expect(busy.message).toBe("tiny-encoder@1.1.0 is in use by 1 session(s): dispose them before clearing it")
        yield* session.dispose()
        const report = yield* loader.clearCache("tiny-encoder")
        expect(report.versions).toEqual(["1.0.0", "1.1.0"])
        expect(yield* loader.isCached("tiny-encoder")).toBe(false)
        expect(yield* loader.isCached("tiny-lm")).toBe(true)
        const compatible = yield* loader.checkCompatibility("tiny-lm")
        expect(compatible).toEqual({ id: "tiny-lm", version: "1.0.0", compatible: true, reasons: [] })
        const all = yield* loader.clearAllCache()
        expect(all.versions).toEqual(["tiny-lm@1.0.0"])
        expect(yield* loader.getCachedModels()).toEqual([])
        const missing = yield* Effect.flip(InferenceSession.create("tiny-lm"))
        expect(missing.message).toMatch(/^tiny-lm is not in the cache at .*, and no registry is set to pull it from$/)
      })
    ))
})
