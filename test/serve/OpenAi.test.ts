/**
 * A real node process serving inference to the official `openai` client: the reference models
 * published to its registry, embeddings equal to the library's on the same files (float and base64),
 * completions and chat (whole and streamed, alike), a stored adapter chosen per request, OpenAI's
 * error shape for every bad request, and 429 when the queue is full.
 */
import { Effect, FiberRef, Layer, type Scope } from "effect"
import * as path from "node:path"
import OpenAI from "openai"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Inference } from "../../src/compute/inference/Inference.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { pushToRegistry } from "../../src/content/Publish.js"
import { CurrentSigner, signingClientLayer } from "../../src/rpc/CommandSigning.js"
import * as InferenceSession from "../../src/sdk/InferenceSession.js"
import type { ModelLoader } from "../../src/sdk/ModelLoader.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { cacheReferenceModel, loaderLayer, storeRandomAdapter } from "../support/SdkModels.js"
import { DEV_NETWORK, operatorKeyOf } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

let node: RunningNode
let client: OpenAI
let dataDir: string
/** The library's own cache with the same models and adapters, to compare against. */
const local = tempDir("openai-local-")

const withLibrary = <A, E>(use: Effect.Effect<A, E, ModelLoader | Inference | BlobStore | Scope.Scope>) =>
  Effect.runPromise(Effect.scoped(Effect.provide(use, loaderLayer(local))))

const ADAPTER_RANK = 4
const ADAPTER_SEED = 11

beforeAll(async () => {
  dataDir = tempDir("openai-node-")
  node = await startNode(dataDir, undefined, {
    EDGE_NET_INFERENCE_CONCURRENCY: "1",
    EDGE_NET_INFERENCE_QUEUE: "1",
    EDGE_NET_TASK_ENCODER: "tiny-encoder"
  })
  client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 })
  await Effect.runPromise(
    Effect.gen(function*() {
      for (const name of ["tiny-lm", "tiny-encoder"] as const) {
        yield* pushToRegistry(node.url, yield* cacheReferenceModel(name))
      }
    }).pipe(Effect.provide(BlobStore.layer({ root: local })))
  )
  // The node's loader keeps adapters in its cache root, the node's blob store: <data>/content/adapters.
  for (const root of [path.join(dataDir, "content"), local]) {
    await Effect.runPromise(storeRandomAdapter(root, "tiny-lm", "random-a", ADAPTER_RANK, ADAPTER_SEED))
    await Effect.runPromise(storeRandomAdapter(root, "tiny-encoder", "encoder-a", ADAPTER_RANK, ADAPTER_SEED))
  }
}, 60_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

const question = [{ role: "user" as const, content: "What is the capital of France?" }]

describe("OpenAI-compatible inference on a node", () => {
  it("lists the registry's models to OpenAI's client, and the seed's array to everyone else", async () => {
    const models = await client.models.list()
    expect(models.data.map((model) => model.id).sort()).toEqual(["tiny-encoder", "tiny-lm"])
    expect(models.data[0]).toMatchObject({ object: "model", owned_by: "reference" })
    expect(typeof models.data[0]!.created).toBe("number")
    const plain = (await (await fetch(`${node.url}/v1/models`)).json()) as Array<{ id: string; version: string }>
    expect(Array.isArray(plain)).toBe(true)
    expect(plain.map((model) => model.id).sort()).toEqual(["tiny-encoder", "tiny-lm"])
    const asked = (await (await fetch(`${node.url}/v1/models?format=openai`)).json()) as { object: string }
    expect(asked.object).toBe("list")
  })

  it("embeds as the library does, in floats and in base64", async () => {
    const texts = ["the cat sat on the mat", "edge networks serve models"]
    const expected = await withLibrary(
      Effect.flatMap(InferenceSession.create("tiny-encoder"), (session) => session.embedBatch(texts))
    )
    const asFloats = await client.embeddings.create({ model: "tiny-encoder", input: texts, encoding_format: "float" })
    // The client asks for base64 by default and decodes it into numbers itself.
    const asBase64 = await client.embeddings.create({ model: "tiny-encoder", input: texts })
    const raw = (await (await fetch(`${node.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny-encoder", input: texts[0], encoding_format: "base64" })
    })).json()) as { data: Array<{ embedding: string }> }
    expect(typeof raw.data[0]!.embedding).toBe("string")
    for (const response of [asFloats, asBase64]) {
      expect(response.object).toBe("list")
      expect(response.usage.prompt_tokens).toBeGreaterThan(0)
      expect(response.data.map((item) => item.index)).toEqual([0, 1])
      response.data.forEach((item, i) => {
        expect(item.embedding).toHaveLength(expected[i]!.length)
        item.embedding.forEach((value, j) => expect(Math.abs(value - expected[i]![j]!)).toBeLessThan(1e-5))
      })
    }
  })

  it("answers concurrent embeddings requests, run together, each with its own vectors; a bad one fails alone", async () => {
    const texts = ["the cat sat on the mat", "edge networks serve models", "a whale", "storms at sea", "white deck"]
    const expected = await withLibrary(
      Effect.flatMap(InferenceSession.create("tiny-encoder"), (session) => Effect.forEach(texts, session.embed))
    )
    // The queue holds two here (EDGE_NET_INFERENCE_QUEUE=1): a refused request tries again.
    const embed = async (input: string): Promise<Response> => {
      const response = await fetch(`${node.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny-encoder", input, encoding_format: "float" })
      })
      if (response.status !== 429) return response
      await new Promise((resolve) => setTimeout(resolve, 5))
      return embed(input)
    }
    const [bad, ...good] = await Promise.all([embed("   "), ...texts.map(embed)])
    expect(bad!.status).toBe(400)
    expect(await bad!.json()).toMatchObject({ error: { type: "invalid_request_error", message: "text is empty" } })
    for (const [i, response] of good.entries()) {
      expect(response.status).toBe(200)
      const reply = (await response.json()) as {
        data: Array<{ embedding: Array<number> }>
        usage: { prompt_tokens: number }
      }
      expect(reply.data).toHaveLength(1)
      expect(reply.usage.prompt_tokens).toBeGreaterThan(0)
      reply.data[0]!.embedding.forEach((value, j) => expect(Math.abs(value - expected[i]![j]!)).toBeLessThan(1e-5))
    }
  })

  it("completes a prompt as the library does (greedy)", async () => {
    const expected = await withLibrary(
      Effect.flatMap(
        InferenceSession.create("tiny-lm"),
        (session) => session.generateDetailed("Once upon a time", { maxTokens: 12, temperature: 0 })
      )
    )
    const completion = await client.completions.create({
      model: "tiny-lm",
      prompt: "Once upon a time",
      max_tokens: 12,
      temperature: 0
    })
    expect(completion.object).toBe("text_completion")
    expect(completion.choices[0]!.text).toBe(expected.text)
    expect(completion.choices[0]!.finish_reason).toBe(expected.finishReason === "length" ? "length" : "stop")
    expect(completion.usage).toEqual({
      prompt_tokens: expected.promptTokens,
      completion_tokens: expected.tokenIds.length,
      total_tokens: expected.promptTokens + expected.tokenIds.length
    })
  })

  it("chats, and a streamed reply's deltas add up to the whole reply", async () => {
    const expected = await withLibrary(
      Effect.flatMap(
        InferenceSession.create("tiny-lm"),
        (session) => session.chat(question, { maxTokens: 20, temperature: 0 })
      )
    )
    const whole = await client.chat.completions.create({
      model: "tiny-lm",
      messages: question,
      max_tokens: 20,
      temperature: 0
    })
    expect(whole.object).toBe("chat.completion")
    expect(whole.choices[0]!.message).toMatchObject({ role: "assistant", content: expected })
    expect(["stop", "length"]).toContain(whole.choices[0]!.finish_reason)
    expect(whole.usage!.total_tokens).toBeGreaterThan(whole.usage!.prompt_tokens)

    const stream = await client.chat.completions.create({
      model: "tiny-lm",
      messages: question,
      max_tokens: 20,
      temperature: 0,
      stream: true
    })
    let text = ""
    const finishes: Array<string | null> = []
    for await (const chunk of stream) {
      expect(chunk.object).toBe("chat.completion.chunk")
      text += chunk.choices[0]!.delta.content ?? ""
      finishes.push(chunk.choices[0]!.finish_reason)
    }
    expect(text).toBe(expected)
    expect(finishes[finishes.length - 1]).toBe(whole.choices[0]!.finish_reason)

    const completionStream = await client.completions.create({
      model: "tiny-lm",
      prompt: "Once upon a time",
      max_tokens: 12,
      temperature: 0,
      stream: true
    })
    let streamed = ""
    for await (const chunk of completionStream) streamed += chunk.choices[0]!.text
    const completion = await client.completions.create({
      model: "tiny-lm",
      prompt: "Once upon a time",
      max_tokens: 12,
      temperature: 0
    })
    expect(streamed).toBe(completion.choices[0]!.text)
  })

  it("runs a stored adapter named by `adapter` or by `model: base:adapter`, as the library does", async () => {
    const [plain, adapted] = await withLibrary(
      Effect.gen(function*() {
        const session = yield* InferenceSession.create("tiny-lm")
        const plain = yield* session.chat(question, { maxTokens: 20, temperature: 0 })
        yield* session.loadAdapter("random-a")
        return [plain, yield* session.chat(question, { maxTokens: 20, temperature: 0 })] as const
      })
    )
    expect(adapted).not.toBe(plain)
    // `adapter` is this node's extension: the client passes unknown body fields through.
    const withField = {
      model: "tiny-lm",
      adapter: "random-a@1.0.0",
      messages: question,
      max_tokens: 20,
      temperature: 0
    }
    const byField = await client.chat.completions.create(withField)
    expect(byField.choices[0]!.message.content).toBe(adapted)
    const stream = await client.chat.completions.create({
      model: "tiny-lm:random-a",
      messages: question,
      max_tokens: 20,
      temperature: 0,
      stream: true
    })
    let text = ""
    for await (const chunk of stream) text += chunk.choices[0]!.delta.content ?? ""
    expect(text).toBe(adapted)
    const embedded = await withLibrary(
      Effect.gen(function*() {
        const session = yield* InferenceSession.create("tiny-encoder", { adapter: "encoder-a" })
        return yield* session.embed("adapted text")
      })
    )
    const remote = await client.embeddings.create({ model: "tiny-encoder:encoder-a", input: "adapted text" })
    remote.data[0]!.embedding.forEach((value, j) => expect(Math.abs(value - embedded[j]!)).toBeLessThan(1e-5))
  })

  it("refuses bad requests in OpenAI's error shape with a 4xx", async () => {
    const refusal = async (run: () => Promise<unknown>) => {
      const error = await run().then(() => undefined, (cause: unknown) => cause)
      expect(error).toBeInstanceOf(OpenAI.APIError)
      const apiError = error as InstanceType<typeof OpenAI.APIError>
      expect(apiError.error).toMatchObject({ message: expect.any(String), type: expect.any(String) })
      return apiError
    }
    const unknownModel = await refusal(() => client.chat.completions.create({ model: "absent", messages: question }))
    expect(unknownModel.status).toBe(404)
    expect(unknownModel.code).toBe("model_not_found")
    const unknownAdapter = await refusal(() =>
      client.chat.completions.create({ model: "tiny-lm:absent", messages: question })
    )
    expect(unknownAdapter.status).toBe(404)
    const otherBase = await refusal(() =>
      client.chat.completions.create({ model: "tiny-lm:encoder-a", messages: question })
    )
    expect(otherBase.status).toBe(400)
    expect(otherBase.message).toMatch(/made for base model tiny-encoder/)
    const wrongKind = await refusal(() => client.embeddings.create({ model: "tiny-lm", input: "x" }))
    expect(wrongKind.status).toBe(400)
    const severalChoices = await refusal(() =>
      client.chat.completions.create({ model: "tiny-lm", messages: question, n: 2 })
    )
    expect(severalChoices.status).toBe(400)
    expect(severalChoices.param).toBe("n")
    const tools = await refusal(() =>
      client.chat.completions.create({
        model: "tiny-lm",
        messages: question,
        tools: [{ type: "function", function: { name: "f" } }]
      })
    )
    expect(tools.param).toBe("tools")
    const wrongType = { model: "tiny-lm", messages: question, max_tokens: "many" }
    const typed = await refusal(() => client.chat.completions.create(wrongType as never))
    expect(typed.status).toBe(400)
    expect(typed.param).toBe("max_tokens")

    const post = (route: string, body: string) =>
      fetch(`${node.url}${route}`, { method: "POST", headers: { "content-type": "application/json" }, body })
    const notJson = await post("/v1/chat/completions", "{not json")
    expect(notJson.status).toBe(400)
    expect(await notJson.json()).toEqual({
      error: {
        message: "the request body is not JSON",
        type: "invalid_request_error",
        param: null,
        code: "invalid_json"
      }
    })
    const huge = await post("/v1/embeddings", JSON.stringify({ model: "tiny-encoder", input: "x".repeat(1_100_000) }))
    expect(huge.status).toBe(413)
    expect(await huge.json()).toMatchObject({ error: { message: "request body over 1048576 bytes", param: null } })
    const usage = await post(
      "/v1/chat/completions",
      JSON.stringify({ model: "tiny-lm", messages: question, stream: true, stream_options: { include_usage: true } })
    )
    expect(usage.status).toBe(400)
    expect(await usage.json()).toMatchObject({ error: { param: "stream_options", code: "unsupported_parameter" } })
    const missing = await post("/v1/completions", JSON.stringify({ model: "tiny-lm" }))
    expect(missing.status).toBe(400)
    expect(await missing.json()).toMatchObject({ error: { param: "prompt", code: "missing_required_parameter" } })
  })

  it("answers 429 in OpenAI's shape when the queue is full", async () => {
    // One request runs and one waits (EDGE_NET_INFERENCE_CONCURRENCY=1, EDGE_NET_INFERENCE_QUEUE=1).
    const outcomes = await Promise.all(
      Array.from(
        { length: 6 },
        () =>
          client.completions.create({ model: "tiny-lm", prompt: "Once upon a time", max_tokens: 48, temperature: 0 })
            .then(() => 200, (error: unknown) => (error instanceof OpenAI.APIError ? error : undefined))
      )
    )
    const refused = outcomes.filter((outcome) => outcome instanceof OpenAI.APIError)
    expect(outcomes.filter((outcome) => outcome === 200).length).toBeGreaterThanOrEqual(2)
    expect(refused.length).toBeGreaterThanOrEqual(1)
    for (const error of refused) {
      expect(error.status).toBe(429)
      expect(error.error).toMatchObject({ type: "rate_limit_error", code: "queue_full" })
    }
    // Once the queue drains, the node serves again.
    const after = await client.completions.create({ model: "tiny-lm", prompt: "Hello", max_tokens: 2 })
    expect(after.choices).toHaveLength(1)
  })

  const admittedReaches = async (count: number) => {
    const line = `edge_net_inference_admitted ${count}`
    for (let attempt = 0; attempt < 500; attempt++) {
      const scrape = await (await fetch(`${node.url}/metrics`)).text()
      if (scrape.split("\n").includes(line)) return
      await new Promise((resolve) => setTimeout(resolve, 2))
    }
    throw new Error(`/metrics never showed ${line}`)
  }

  it("refuses embeddings with 429 while generations hold the queue, and serves them once it drains", async () => {
    const embed = () =>
      fetch(`${node.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "tiny-encoder", input: "a whale" })
      })
    // One streamed generation runs (its first chunk read), a second waits for the permit: the queue is
    // full once /metrics counts both admitted. Both run to the model's context length, so the first
    // still holds its permit when the embedding comes.
    const running = new AbortController()
    const first = await client.completions.create(
      { model: "tiny-lm", prompt: "Once upon a time", max_tokens: 2_000, stream: true },
      { signal: running.signal }
    )
    const chunks = first[Symbol.asyncIterator]()
    await chunks.next()
    const waiting = client.completions.create({ model: "tiny-lm", prompt: "Hello", max_tokens: 2_000 })
    await admittedReaches(2)
    const refused = await embed()
    expect(refused.status).toBe(429)
    expect(await refused.json()).toMatchObject({ error: { type: "rate_limit_error", code: "queue_full" } })
    running.abort()
    await chunks.return?.().catch(() => undefined)
    expect((await waiting).choices).toHaveLength(1)
    expect((await embed()).status).toBe(200)
  })

  it("guards /v1/embeddings as every route: Host and Origin checked, in OpenAI's shape", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${node.url}/v1/embeddings`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ model: "tiny-encoder", input: "a whale" })
      })
    const crossOrigin = await post({ origin: "http://evil.example" })
    expect(crossOrigin.status).toBe(403)
    expect(await crossOrigin.json()).toMatchObject({ error: { type: "invalid_request_error" } })
    const crossSite = await post({ "sec-fetch-site": "cross-site" })
    expect(crossSite.status).toBe(403)
    const notJson = await fetch(`${node.url}/v1/embeddings`, { method: "POST", body: "{" })
    expect(notJson.status).toBe(400)
    expect(await notJson.json()).toMatchObject({ error: { code: "invalid_json" } })
  })

  it("lets the adapter pool choose the resident adapter nearest the request's task, made for its model", async () => {
    const [task, plain, adapted] = await withLibrary(
      Effect.gen(function*() {
        const encoder = yield* InferenceSession.create("tiny-encoder")
        const task = yield* encoder.embed(question[0]!.content)
        const session = yield* InferenceSession.create("tiny-lm")
        const plain = yield* session.chat(question, { maxTokens: 20, temperature: 0 })
        yield* session.loadAdapter("random-a")
        return [Array.from(task), plain, yield* session.chat(question, { maxTokens: 20, temperature: 0 })] as const
      })
    )
    const pool = <A, E>(use: (rpc: Effect.Effect.Success<typeof nodeRpcClient>) => Effect.Effect<A, E>) =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const rpc = yield* nodeRpcClient.pipe(Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer)))
        yield* FiberRef.set(CurrentSigner, { key: operatorKeyOf(dataDir), network: DEV_NETWORK })
        return yield* use(rpc)
      })))
    // The encoder's adapter is nearest the task, but made for another model: passed over.
    const nudged = task.map((value, i) => (i === 0 ? value + 0.5 : value))
    await pool((rpc) =>
      Effect.gen(function*() {
        yield* rpc.PoolLoad({ adapterId: "encoder-a", version: "1.0.0", bytes: 1_000, embedding: task })
        yield* rpc.PoolLoad({ adapterId: "random-a", version: "1.0.0", bytes: 1_000, embedding: nudged })
      })
    )
    const lastUsed = (view: { residents: ReadonlyArray<{ key: string; lastUsed: number }> }) =>
      view.residents.find((resident) => resident.key === "random-a@1.0.0")?.lastUsed
    const before = lastUsed(await pool((rpc) => rpc.PoolState()))

    const { data, response } = await client.chat.completions.create({
      model: "tiny-lm",
      messages: question,
      max_tokens: 20,
      temperature: 0
    }).withResponse()
    expect(response.headers.get("x-edge-net-adapter")).toBe("random-a@1.0.0")
    expect(data.choices[0]!.message.content).toBe(adapted)
    expect(lastUsed(await pool((rpc) => rpc.PoolState()))).toBeGreaterThan(before!)

    const base = { model: "tiny-lm", adapter: "none", messages: question, max_tokens: 20, temperature: 0 }
    const unadapted = await client.chat.completions.create(base).withResponse()
    expect(unadapted.response.headers.get("x-edge-net-adapter")).toBeNull()
    expect(unadapted.data.choices[0]!.message.content).toBe(plain)
  })
})
