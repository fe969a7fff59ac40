/**
 * Inference on worker threads, checked against the in-process Promise facade on the same cache: the
 * same greedy text, the same pieces streamed and seen by `onToken`, the same embeddings, the same one-line
 * errors; a pool that spreads its requests over its threads, replaces a crashed thread with its models
 * and serves on; and workers that refuse work once terminated.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Stream } from "effect"
import * as path from "node:path"
import { BlobStore } from "../../src/content/BlobStore.js"
import { ModelWorkers } from "../../src/sdk/ModelWorkerService.js"
import {
  type InferenceSession,
  ModelLoader,
  ModelWorker,
  ModelWorkerError,
  ModelWorkerPool
} from "../../src/sdk/Promise.js"
import { cacheReferenceModel } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

const PROMPTS = ["The whale rose from the sea and", "Once upon a time", "The captain said"]
const TEXTS = ["a young dog", "a small puppy plays in the garden", "edge networks serve models"]
const GREEDY = { maxTokens: 12, temperature: 0 }

let root: string
let options: { cacheDir: string; configFile: string; registry: false }
let loader: ModelLoader
let lm: InferenceSession
let encoder: InferenceSession
let worker: ModelWorker

const collect = async (pieces: AsyncIterable<string>) => {
  const all: Array<string> = []
  for await (const piece of pieces) all.push(piece)
  return all
}

const rejection = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error)

beforeAll(async () => {
  root = tempDir("sdk-worker-")
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        yield* cacheReferenceModel("tiny-lm")
        yield* cacheReferenceModel("tiny-encoder")
      }).pipe(Effect.provide(Layer.fresh(BlobStore.layer({ root }))))
    )
  )
  options = { cacheDir: root, configFile: path.join(root, "absent.yaml"), registry: false }
  loader = new ModelLoader(options)
  ;[lm, encoder, worker] = await Promise.all([
    loader.load("tiny-lm"),
    loader.load("tiny-encoder"),
    ModelWorker.create(options)
  ])
  await worker.load("tiny-lm")
  await worker.load("tiny-encoder")
}, 60_000)

afterAll(async () => {
  await worker?.terminate()
  await loader?.close()
})

describe("ModelWorker", () => {
  it("generates, streams and chats as the in-process facade does; onToken sees the pieces", async () => {
    for (const prompt of PROMPTS) {
      expect(await worker.generate(prompt, GREEDY)).toBe(await lm.generate(prompt, GREEDY))
    }
    const expected = await collect(lm.generateStream(PROMPTS[0]!, GREEDY))
    expect(expected.length).toBeGreaterThan(1)
    expect(await collect(worker.stream(PROMPTS[0]!, GREEDY))).toEqual(expected)

    const heard: Array<string> = []
    const stop = worker.onToken((piece) => heard.push(piece))
    const text = await worker.generate(PROMPTS[0]!, GREEDY)
    stop()
    expect(heard).toEqual(expected)
    expect(heard.join("")).toBe(text)
    await worker.generate(PROMPTS[1]!, GREEDY)
    expect(heard).toEqual(expected)

    const question = [{ role: "user" as const, content: "What is the capital of France?" }]
    expect(await worker.chat(question, GREEDY)).toBe(await lm.chat(question, GREEDY))
  })

  it("embeds as the in-process facade does, to 1e-6, in buffers of their own", async () => {
    const expected = await encoder.embedBatch(TEXTS)
    const vectors = await worker.embedBatch(TEXTS)
    expect(vectors).toHaveLength(TEXTS.length)
    vectors.forEach((vector, i) => {
      expect(vector.length).toBe(expected[i]!.length)
      expect(vector.buffer.byteLength).toBe(vector.byteLength)
      vector.forEach((value, j) => expect(Math.abs(value - expected[i]![j]!)).toBeLessThan(1e-6))
    })
    const one = await worker.embed(TEXTS[1]!)
    one.forEach((value, j) => expect(Math.abs(value - expected[1]![j]!)).toBeLessThan(1e-6))
  })

  it("runs a batch of prompts, the texts in order", async () => {
    const expected = await Promise.all(PROMPTS.map((prompt) => lm.generate(prompt, GREEDY)))
    expect(await worker.batch(PROMPTS, GREEDY)).toEqual(expected)
  })

  it("rejects with the in-process facade's one-line errors, and serves on", async () => {
    const inWorker = await rejection(worker.load("absent"))
    const inProcess = await rejection(loader.load("absent"))
    expect(inWorker).toBeInstanceOf(ModelWorkerError)
    expect((inWorker as Error).message).toBe((inProcess as Error).message)
    expect((inWorker as Error).message).toMatch(/^absent is not in the cache at .*, and no registry is set/)

    const empty = await rejection(worker.embed("   "))
    expect((empty as Error).message).toBe(((await rejection(encoder.embed("   "))) as Error).message)
    expect((await rejection(worker.generate("x", { model: "other" })) as Error).message).toMatch(
      /^other is not loaded in this worker/
    )
    expect(await worker.generate(PROMPTS[1]!, GREEDY)).toBe(await lm.generate(PROMPTS[1]!, GREEDY))
  })

  it("stops a stream left early, and answers the next request", async () => {
    for await (const _ of worker.stream(PROMPTS[0]!, { maxTokens: 400, temperature: 0 })) break
    expect(worker.stats().outstanding).toBeLessThanOrEqual(1)
    expect(await worker.generate(PROMPTS[2]!, GREEDY)).toBe(await lm.generate(PROMPTS[2]!, GREEDY))
  })
})

describe("ModelWorkerPool", () => {
  it(
    "spreads requests over its workers, restarts a crashed one with its models, refuses work once terminated",
    async () => {
      const pool = await ModelWorkerPool.create({ ...options, size: 2 })
      try {
        expect(pool.size).toBe(2)
        await pool.load("tiny-lm")
        await pool.load("tiny-encoder")
        const before = pool.stats()
        expect(new Set(before.map((stats) => stats.threadId)).size).toBe(2)

        const expected = await encoder.embedBatch(TEXTS)
        const vectors = await Promise.all([...TEXTS, ...TEXTS].map((text) => pool.embed(text)))
        vectors.forEach((vector, i) =>
          vector.forEach((value, j) => expect(Math.abs(value - expected[i % 3]![j]!)).toBeLessThan(1e-6))
        )
        const served = pool.stats().map((stats, i) => stats.requests - before[i]!.requests)
        expect(served).toEqual([3, 3])
        expect(await pool.batch(PROMPTS, GREEDY)).toEqual(
          await Promise.all(PROMPTS.map((prompt) => lm.generate(prompt, GREEDY)))
        )

        // A long generation on one worker, whose thread then crashes mid-way: it rejects in one line.
        const pieces: Array<string> = []
        const interrupted = rejection((async () => {
          for await (const piece of pool.stream(PROMPTS[0]!, { maxTokens: 2_000, temperature: 0 })) {
            pieces.push(piece)
            if (pieces.length === 1) pool.crash(pool.stats().findIndex((stats) => stats.outstanding > 0))
          }
        })())
        const crashed = await interrupted
        expect(crashed).toBeInstanceOf(ModelWorkerError)
        expect((crashed as Error).message).toMatch(
          /^the model worker's thread exited \(code 1: .*crashed on purpose.*\) before answering generate; restarting it$/
        )
        const index = pool.stats().findIndex((stats) => stats.restarts === 1)
        expect(index).toBeGreaterThanOrEqual(0)

        // Later requests are served by both workers, the new thread with the models loaded again.
        const again = await Promise.all(PROMPTS.slice(0, 2).map((prompt) => pool.generate(prompt, GREEDY)))
        expect(again).toEqual(await Promise.all(PROMPTS.slice(0, 2).map((prompt) => lm.generate(prompt, GREEDY))))
        const after = pool.stats()
        expect(after[index]!.threadId).not.toBe(before[index]!.threadId)
        expect(after[index]!.threadId).toBeDefined()
        const embedded = await pool.embed(TEXTS[0]!)
        embedded.forEach((value, j) => expect(Math.abs(value - expected[0]![j]!)).toBeLessThan(1e-6))
      } finally {
        await pool.terminate()
      }
      const refused = await rejection(pool.generate(PROMPTS[0]!, GREEDY))
      expect(refused).toBeInstanceOf(ModelWorkerError)
      expect((refused as Error).message).toBe("the model worker was terminated")
      expect(pool.stats().every((stats) => stats.threadId === undefined)).toBe(true)
    },
    60_000
  )

  it("a terminated worker rejects the request it was running and every later call, in one line", async () => {
    const single = await ModelWorker.create(options)
    await single.load("tiny-lm")
    const started = new Promise((resolve) => single.onToken(resolve))
    const running = rejection(single.generate(PROMPTS[0]!, { maxTokens: 2_000, temperature: 0 }))
    await started
    await single.terminate()
    expect(((await running) as Error).message).toBe("the model worker was terminated before answering generate")
    for (const call of [single.embed("x"), single.load("tiny-lm"), single.batch(PROMPTS)]) {
      expect(((await rejection(call)) as Error).message).toBe("the model worker was terminated")
    }
  }, 30_000)
})

describe("ModelWorkers (the Effect service)", () => {
  it.effect(
    "generates as the facade does, and a stream taken in part stops its generation",
    () =>
      Effect.gen(function*() {
        const workers = yield* ModelWorkers
        const expected = yield* Effect.promise(() => collect(lm.generateStream(PROMPTS[0]!, GREEDY)))
        expect(yield* workers.generate(PROMPTS[0]!, GREEDY)).toBe(expected.join(""))
        const firstTwo = yield* Stream.runCollect(Stream.take(workers.generateStream(PROMPTS[0]!, GREEDY), 2))
        expect(Chunk.toReadonlyArray(firstTwo)).toEqual(expected.slice(0, 2))
        expect(yield* workers.batch(PROMPTS.slice(0, 2), GREEDY)).toEqual(
          yield* Effect.promise(() => Promise.all(PROMPTS.slice(0, 2).map((prompt) => lm.generate(prompt, GREEDY))))
        )
        const refused = yield* Effect.flip(workers.embed("x", { model: "tiny-encoder" }))
        expect(refused).toBeInstanceOf(ModelWorkerError)
        expect(refused.message).toMatch(/^tiny-encoder is not loaded in this worker/)
      }).pipe(Effect.provide(ModelWorkers.layer({ ...options, size: 1, models: ["tiny-lm"] }))),
    30_000
  )
})
