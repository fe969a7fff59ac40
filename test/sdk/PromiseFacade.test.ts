/**
 * The Promise facade, used as a program without Effect would: a loader on a cache, sessions that
 * generate (whole and streamed), embed and swap adapters, errors that reject with their one line,
 * and a closed loader that refuses work.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { BlobStore } from "../../src/content/BlobStore.js"
import { InferenceSession, ModelLoader } from "../../src/sdk/Promise.js"
import { cacheReferenceModel, storeRandomAdapter } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

/** A cache with both reference models and one adapter, prepared (and closed) before the facade opens it. */
const preparedCache = async () => {
  const root = tempDir("sdk-promise-")
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-lm")
        yield* cacheReferenceModel("tiny-encoder")
        yield* storeRandomAdapter(root, "tiny-lm", "style", 2, 5)
      }).pipe(Effect.provide(Layer.fresh(BlobStore.layer({ root }))))
    )
  )
  return root
}

describe("Promise facade", () => {
  it("loads, generates, streams, embeds and swaps adapters without Effect", async () => {
    const root = await preparedCache()
    const loader = new ModelLoader({
      cacheDir: root,
      configFile: path.join(root, "absent.yaml"),
      registry: false,
      memory: { maxModels: 1 }
    })
    try {
      expect(await loader.isCached("tiny-lm")).toBe(true)
      expect((await loader.listModels({ type: "embedding" })).map((model) => model.id)).toEqual(["tiny-encoder"])
      expect((await loader.getManifest("tiny-lm")).version).toBe("1.0.0")

      const session = await loader.load("tiny-lm")
      const prompt = "The whale rose from the sea and"
      const text = await session.generate(prompt, { maxTokens: 8 })
      expect(text.length).toBeGreaterThan(0)
      let streamed = ""
      for await (const piece of session.generateStream(prompt, { maxTokens: 8 })) streamed += piece
      expect(streamed).toBe(text)
      expect(await session.loadAdapter("style")).toEqual({ reloaded: true })
      expect(await session.generate(prompt, { maxTokens: 8 })).not.toBe(text)
      expect((await session.getMemoryInfo()).adapterBytes).toBeGreaterThan(0)
      await session.dispose()

      const embedder = await InferenceSession.create("tiny-encoder", { loader })
      const [a, b] = await embedder.embedBatch(["a young dog", "a small puppy"])
      expect(a!.length).toBe(b!.length)
      expect(await embedder.similarity("a young dog", "a small puppy")).toBeCloseTo(
        a!.reduce((sum, x, i) => sum + x * b![i]!, 0),
        6
      )
      // One model at a time: the idle tiny-lm was closed when the encoder opened.
      expect((await loader.resident()).map((model) => model.id)).toEqual(["tiny-encoder"])

      await expect(loader.load("absent")).rejects.toThrow(
        `absent is not in the cache at ${root}, and no registry is set to pull it from`
      )
      await expect(embedder.loadAdapter("style")).rejects.toThrow(
        /^adapter style@1\.0\.0 was made for base model tiny-lm/
      )
      await embedder.dispose()
      await expect(embedder.embed("again")).rejects.toThrow("the session on tiny-encoder was disposed")
    } finally {
      await loader.close()
    }
  })

  it("trains a classifier adapter from labelled examples with createTrainer, as the seed's example does", async () => {
    const root = await preparedCache()
    const loader = new ModelLoader({ cacheDir: root, configFile: path.join(root, "absent.yaml"), registry: false })
    try {
      const session = await InferenceSession.create("tiny-encoder", { loader })
      const trainer = await session.createTrainer({ rank: 2, epochs: 2, maxSteps: 4, batchSize: 8, heldOut: 0.25 })
      const about = (topic: string, i: number) =>
        topic === "sea"
          ? `the ship ${i} sailed across the stormy sea with its crew`
          : `the price of bread and tea rose ${i} pence at the market`
      const examples = Array.from({ length: 32 }, (_, i) => ({
        text: about(i % 2 === 0 ? "sea" : "market", i),
        label: i % 2 === 0 ? "sea" : "market"
      }))
      const summary = await trainer.train(examples)
      expect(summary).toMatchObject({ task: "classification", metric: "heldOutAccuracy", steps: 4 })
      expect(summary.heldOutSamples).toBe(8)
      expect(summary.after).toBeGreaterThanOrEqual(0.5)
      const adapter = await trainer.getAdapter()
      expect(await adapter.save("topics", { domain: "test" })).toMatchObject({ id: "topics", version: "1.0.0" })
      expect(await session.loadAdapter("topics")).toEqual({ reloaded: true })
      await expect(trainer.train([{ text: "a", label: 1 }, { text: "b" }])).rejects.toThrow(
        "1 of 2 examples have a label: label all of them or none"
      )
    } finally {
      await loader.close()
    }
  })
})
