/**
 * Models named by their manifest on worker threads, as a node serves them (ServedModel): embeddings
 * and their token counts, generations as pieces then the result, an adapter per request on one open
 * model, a model of the other kind or an empty text refused as such, and a pool that replaces a
 * crashed thread while its other worker answers, all checked against the in-process library.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as path from "node:path"
import type { GenerationEvent } from "../../src/compute/inference/Inference.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import type { ModelManifest } from "../../src/content/Manifest.js"
import type { ServedEmbeddings, ServedModel } from "../../src/sdk/ModelWorker.js"
import { type InferenceSession, ModelLoader, ModelWorkerError, ModelWorkerPool } from "../../src/sdk/Promise.js"
import { cacheReferenceModel, storeRandomAdapter } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

const PROMPT = "The whale rose from the sea and"
const TEXTS = ["a young dog", "a small puppy plays in the garden", "edge networks serve models"]
const GREEDY = { maxTokens: 12, temperature: 0 }
const RANK = 4

let root: string
let lm: ModelManifest
let encoder: ModelManifest
let loader: ModelLoader
let pool: ModelWorkerPool

const rejection = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error)

const eventsOf = async (events: AsyncIterable<GenerationEvent>) => {
  const all: Array<GenerationEvent> = []
  for await (const event of events) all.push(event)
  return all
}

const expectClose = (actual: ReadonlyArray<Float32Array>, expected: ReadonlyArray<Float32Array>) => {
  expect(actual.length).toBe(expected.length)
  actual.forEach((vector, i) =>
    vector.forEach((value, j) => expect(Math.abs(value - expected[i]![j]!)).toBeLessThan(1e-5))
  )
}

beforeAll(async () => {
  root = tempDir("sdk-worker-serve-")
  ;[lm, encoder] = await Effect.runPromise(
    Effect.scoped(
      Effect.all([cacheReferenceModel("tiny-lm"), cacheReferenceModel("tiny-encoder")]).pipe(
        Effect.provide(Layer.fresh(BlobStore.layer({ root })))
      )
    )
  )
  await Effect.runPromise(storeRandomAdapter(root, "tiny-lm", "lm-a", RANK, 3))
  await Effect.runPromise(storeRandomAdapter(root, "tiny-encoder", "encoder-a", RANK, 5))
  const options = { cacheDir: root, configFile: path.join(root, "absent.yaml"), registry: false } as const
  loader = new ModelLoader(options)
  pool = await ModelWorkerPool.create({ ...options, size: 2, threads: 1 })
}, 60_000)

afterAll(async () => {
  await pool?.terminate()
  await loader?.close()
})

const served = (manifest: ModelManifest, kind: "encoder" | "decoder", adapter?: string): ServedModel => ({
  manifest,
  kind,
  adapterRank: adapter === undefined ? undefined : RANK,
  adapter
})

describe("ModelWorkerPool serving models named by manifest", () => {
  it("embeds with token counts, with and without an adapter, as the library does", async () => {
    const plain: InferenceSession = await loader.load("tiny-encoder")
    const adapted: InferenceSession = await loader.load("tiny-encoder", { adapter: "encoder-a" })
    const [base, withAdapter, baseAgain] = await Promise.all([
      pool.serveEmbed(served(encoder, "encoder"), TEXTS),
      pool.serveEmbed(served(encoder, "encoder", "encoder-a@1.0.0"), TEXTS),
      pool.serveEmbed(served(encoder, "encoder"), TEXTS)
    ])
    expectClose(base.vectors, await plain.embedBatch(TEXTS))
    expectClose(baseAgain.vectors, await plain.embedBatch(TEXTS))
    expectClose(withAdapter.vectors, await adapted.embedBatch(TEXTS))
    expect(base.tokens).toHaveLength(3)
    expect(base.tokens.every((count) => count > 2)).toBe(true)
    expect(base.tokens[1]).toBeGreaterThan(base.tokens[0]!)
    await plain.dispose()
    await adapted.dispose()
  }, 60_000)

  it("generates pieces then the result, the adapter per request, as the library does", async () => {
    const plain = await loader.load("tiny-lm")
    const adapted = await loader.load("tiny-lm", { adapter: "lm-a" })
    for (const [session, adapter] of [[plain, undefined], [adapted, "lm-a@1.0.0"], [plain, undefined]] as const) {
      const expected = await session.generateDetailed(PROMPT, GREEDY)
      const events = await eventsOf(pool.serveEvents(served(lm, "decoder", adapter), { prompt: PROMPT }, GREEDY))
      const last = events[events.length - 1]
      expect(last?._tag).toBe("Done")
      const pieces = events.flatMap((event) => (event._tag === "Piece" ? [event.text] : []))
      expect(pieces.join("")).toBe(expected.text)
      if (last?._tag === "Done") {
        expect(last.result.tokenIds).toEqual(expected.tokenIds)
        expect(last.result.finishReason).toBe(expected.finishReason)
        expect(last.result.promptTokens).toBe(expected.promptTokens)
      }
    }
    const messages = [{ role: "user", content: "Tell me about the sea" }] as const
    const chat = await eventsOf(pool.serveEvents(served(lm, "decoder"), { messages }, GREEDY))
    expect(chat.flatMap((event) => (event._tag === "Piece" ? [event.text] : [])).join("")).toBe(
      await plain.chat([...messages], GREEDY)
    )
    await plain.dispose()
    await adapted.dispose()
  }, 60_000)

  it("refuses a model of the other kind and an empty text as such, and serves on", async () => {
    const wrongKind = await rejection(pool.serveEmbed(served(lm, "encoder"), TEXTS))
    expect(wrongKind).toBeInstanceOf(ModelWorkerError)
    expect((wrongKind as ModelWorkerError).refusal).toBe("kind")
    const empty = await rejection(pool.serveEmbed(served(encoder, "encoder"), ["a text", ""]))
    expect((empty as ModelWorkerError).refusal).toBe("input")
    const fine = await pool.serveEmbed(served(encoder, "encoder"), TEXTS)
    expect(fine.vectors).toHaveLength(3)
  }, 60_000)

  it("replaces a crashed thread while the other worker answers", async () => {
    const expected = await pool.serveEmbed(served(encoder, "encoder"), TEXTS)
    let meanwhile: Promise<ServedEmbeddings> | undefined
    const long = rejection((async () => {
      let seen = 0
      for await (const _ of pool.serveEvents(served(lm, "decoder"), { prompt: PROMPT }, { maxTokens: 2_000 })) {
        if (++seen > 1) continue
        pool.crash(pool.stats().findIndex((stats) => stats.outstanding > 0))
        // Sent while the generating worker still counts its request: the other worker takes it.
        meanwhile = pool.serveEmbed(served(encoder, "encoder"), TEXTS)
      }
    })())
    const crashed = await long
    expectClose((await meanwhile)?.vectors ?? [], expected.vectors)
    expect(crashed).toBeInstanceOf(ModelWorkerError)
    expect((crashed as Error).message).toMatch(/before answering serveGenerate; restarting it$/)
    // Both workers serve again: the restarted one opens its models on its first request.
    const again = await Promise.all([0, 1, 2, 3].map(() => pool.serveEmbed(served(encoder, "encoder"), TEXTS)))
    again.forEach((answer) => expectClose(answer.vectors, expected.vectors))
    expect(pool.stats().reduce((sum, stats) => sum + stats.restarts, 0)).toBe(1)
    expect(pool.stats().every((stats) => stats.threadId !== undefined)).toBe(true)
  }, 60_000)
})
