/**
 * A node told to run models on its own thread (`EDGE_NET_INFERENCE_WORKERS=0`) serves as one with
 * model workers does: embeddings equal to the library's, concurrent requests run together with a bad
 * one failing alone, a completion and its stream alike, an adapter per request, the wrong kind of model
 * refused. (test/serve/OpenAi.test.ts runs the default, model worker threads.)
 */
import { Effect, type Scope } from "effect"
import * as path from "node:path"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Inference } from "../../src/compute/inference/Inference.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { pushToRegistry } from "../../src/content/Publish.js"
import * as InferenceSession from "../../src/sdk/InferenceSession.js"
import type { ModelLoader } from "../../src/sdk/ModelLoader.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { cacheReferenceModel, loaderLayer, storeRandomAdapter } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

let node: RunningNode
let client: OpenAI
const local = tempDir("in-process-serving-local-")

const withLibrary = <A, E>(use: Effect.Effect<A, E, ModelLoader | Inference | BlobStore | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(Effect.provide(use, loaderLayer(local))))

beforeAll(async () => {
  const dataDir = tempDir("in-process-serving-node-")
  node = await startNode(dataDir, undefined, { EDGE_NET_INFERENCE_WORKERS: "0" })
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 })
  await Effect.runPromise(
    Effect.gen(function*() {
      for (const name of ["tiny-lm", "tiny-encoder"] as const) {
        yield* pushToRegistry(node.url, yield* cacheReferenceModel(name))
      }
    }).pipe(Effect.provide(BlobStore.layer({ root: local })))
  )
  for (const root of [path.join(dataDir, "content"), local]) {
    await Effect.runPromise(storeRandomAdapter(root, "tiny-lm", "random-a", 4, 7))
  }
}, 60_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

describe("inference served on the node's own thread", () => {
  it("embeds as the library does; concurrent requests each get their own vectors, a bad one fails alone", async () => {
    const texts = ["the cat sat on the mat", "edge networks serve models", "a whale", "storms at sea"]
    const expected = await withLibrary(
      Effect.flatMap(InferenceSession.create("tiny-encoder"), (session) => session.embedBatch(texts))
    )
    const embed = (input: string) =>
      fetch(`${node.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny-encoder", input, encoding_format: "float" })
      })
    const [bad, ...good] = await Promise.all([embed(""), ...texts.map(embed)])
    expect(bad!.status).toBe(400)
    for (const [i, response] of good.entries()) {
      const reply = (await response.json()) as { data: Array<{ embedding: Array<number> }> }
      reply.data[0]!.embedding.forEach((value, j) => expect(Math.abs(value - expected[i]![j]!)).toBeLessThan(1e-5))
    }
    const refused = await client.embeddings.create({ model: "tiny-lm", input: "x" }).catch((error: unknown) => error)
    expect(refused).toMatchObject({ status: 400, code: "model_not_supported" })
  })

  it("completes as the library does, whole and streamed, with and without an adapter", async () => {
    for (const adapter of [undefined, "random-a"]) {
      const expected = await withLibrary(
        Effect.flatMap(
          InferenceSession.create("tiny-lm", adapter === undefined ? {} : { adapter }),
          (session) => session.generate("Once upon a time", { maxTokens: 12, temperature: 0 })
        )
      )
      const model = adapter === undefined ? "tiny-lm" : `tiny-lm:${adapter}`
      const whole = await client.completions.create({
        model,
        prompt: "Once upon a time",
        max_tokens: 12,
        temperature: 0
      })
      expect(whole.choices[0]!.text).toBe(expected)
      const stream = await client.completions.create({
        model,
        prompt: "Once upon a time",
        max_tokens: 12,
        temperature: 0,
        stream: true
      })
      let streamed = ""
      for await (const chunk of stream) streamed += chunk.choices[0]!.text
      expect(streamed).toBe(expected)
    }
  })
})
