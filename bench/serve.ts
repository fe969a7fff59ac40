/**
 * Serving benchmark: what a node's OpenAI-compatible HTTP API and the SDK's model workers deliver next
 * to the library called in process, on the reference models (tiny-encoder, tiny-lm), in one run:
 *
 * - embeddings/s through `POST /v1/embeddings` from 8 concurrent clients (one text per request, base64
 *   vectors as OpenAI's clients ask by default) against `InferenceSession.embed` called in turn; and
 *   with 32 texts per request against `embedBatch` of 32, where the cost of a request is shared;
 * - generated tokens/s through `POST /v1/completions` from 8 concurrent clients (greedy, 32 tokens)
 *   against `InferenceSession.generateDetailed` in turn, and the time to the first token of a streamed
 *   completion (server-sent events) against the first piece of `generateStream`;
 * - a ModelWorkerPool's embeddings/s and tokens/s from 8 concurrent callers, with 1 worker (against
 *   the library in process) and with 2 (against 1). Here every model run uses one operator thread, in
 *   the workers and in the baseline alike: on these small models one is faster than onnxruntime's
 *   default of one per core, and two workers of one thread each fill the machine's two cores.
 *
 * The node is a real process (`edge-net node start`, from the sources as tests run it:
 * test/support/NodeProcess.ts) on loopback, with the default inference settings: models run on model
 * worker threads (one per core, at most 2, of one operator thread each on 2 cores), one request per
 * worker at a time, the others queue; the models are published to its registry. The clients run in
 * this process, on the same two cores as the node: 8 loops over one keep-alive `node:http` agent, as a
 * load generator (wrk, autocannon) keeps its own cost low so that it measures the server. `fetch`
 * spent about 1.3 ms of CPU per one-text embedding request here, against 0.3 to 0.4 ms for `node:http`:
 * a client tax taken from the node's cores that the in-process baseline never pays. The streamed
 * completion is read with `fetch` (its figure is a latency, not a rate). Each figure is the best of
 * three rounds, the baseline's rounds interleaved with ours; the one-text embeddings after four warm
 * rounds each side, the first of which is reported too (a new node's first requests after the 32
 * that load its model).
 *
 * The in-process baseline is the library called on this thread, one call at a time, with onnxruntime's
 * default operator threads (one per core): what a program gets by calling the SDK directly. The node
 * spreads requests over its workers instead, so each HTTP figure is also given against an equally
 * resourced baseline: the library's ModelWorkerPool with the node's workers and threads, called from
 * 8 concurrent callers in this process (no HTTP), measured in the same run.
 */
import { Effect, Layer } from "effect"
import * as http from "node:http"
import { availableParallelism } from "node:os"
import * as path from "node:path"
import { BlobStore } from "../src/content/BlobStore.js"
import { pushToRegistry } from "../src/content/Publish.js"
import { defaultInferenceWorkers } from "../src/layers/NodeConfig.js"
import { ModelLoader, ModelWorkerPool } from "../src/sdk/Promise.js"
import { startNode } from "../test/support/NodeProcess.js"
import { cacheReferenceModel } from "../test/support/SdkModels.js"
import { tempDir } from "../test/support/TempDir.js"
import { report } from "./Report.js"
import { peakRssMb, resetPeakRss } from "./support/PeakRss.js"

const CLIENTS = 8
const ROUNDS = 3
/** Rounds of one-text embeddings each side runs before its measured ones (the first is reported, cold). */
const WARM_ROUNDS = 4
const GENERATED_TOKENS = 32
const WORDS = ["whale", "ship", "sea", "captain", "harpoon", "storm", "sailor", "ocean", "white", "deck", "crew"]
const TEXTS = Array.from(
  { length: 256 },
  (_, i) => Array.from({ length: 4 + (i % 13) }, (_, j) => WORDS[(i * 7 + j * 3) % WORDS.length]).join(" ")
)
const PROMPTS = Array.from(
  { length: 24 },
  (_, i) => `The ${WORDS[i % WORDS.length]} and the ${WORDS[(i + 1 + Math.floor(i / WORDS.length)) % WORDS.length]}`
)

/** Runs `work` on every item from `clients` concurrent loops; returns the seconds it took. */
const concurrently = async <A>(items: ReadonlyArray<A>, clients: number, work: (item: A) => Promise<unknown>) => {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < items.length) await work(items[next++]!)
  }))
  return (performance.now() - started) / 1000
}

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const post = async (url: string, body: unknown) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body)
  })
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`)
  return response
}

/** The clients' connections: one keep-alive socket per client loop, reused for all its requests. */
const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS })

/** POSTs `body` as JSON over the shared agent; the reply's JSON, or an error naming the status. */
const postJson = (url: string, body: unknown) =>
  new Promise<unknown>((resolve, reject) => {
    const text = JSON.stringify(body)
    const request = http.request(url, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "content-length": Buffer.byteLength(text) }
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("error", reject)
      response.on("end", () => {
        const reply = Buffer.concat(chunks).toString("utf8")
        if (response.statusCode !== 200) reject(new Error(`${url}: ${response.statusCode} ${reply}`))
        else resolve(JSON.parse(reply))
      })
    })
    request.on("error", reject)
    request.end(text)
  })

/** Best of ROUNDS for each, ours and the baseline taking turns (the machine is shared and noisy). */
const bestOfInterleaved = async (ours: () => Promise<number>, baseline: () => Promise<number>) => {
  let best = 0
  let bestBaseline = 0
  for (let round = 0; round < ROUNDS; round++) {
    best = Math.max(best, await ours())
    bestBaseline = Math.max(bestBaseline, await baseline())
  }
  return { ours: best, baseline: bestBaseline }
}

export const run = async () => {
  const local = tempDir("bench-serve-cache-")
  const manifests = await Effect.runPromise(
    Effect.scoped(
      Effect.all([cacheReferenceModel("tiny-lm"), cacheReferenceModel("tiny-encoder")]).pipe(
        Effect.provide(Layer.fresh(BlobStore.layer({ root: local })))
      )
    )
  )
  const node = await startNode(tempDir("bench-serve-node-"))
  const loader = new ModelLoader({ cacheDir: local, configFile: path.join(local, "absent.yaml"), registry: false })
  try {
    await Effect.runPromise(
      Effect.forEach(manifests, (manifest) => pushToRegistry(node.url, manifest)).pipe(
        Effect.provide(BlobStore.layer({ root: local }))
      )
    )
    const encoder = await loader.load("tiny-encoder")
    const lm = await loader.load("tiny-lm")
    const greedy = { maxTokens: GENERATED_TOKENS, temperature: 0 }

    // The node's peak memory across (a) and (b), and this process's (the library in process, and the clients).
    resetPeakRss(node.process.pid!)
    resetPeakRss()
    // (a) embeddings
    const httpEmbed = async (text: string) => {
      const reply = (await postJson(`${node.url}/v1/embeddings`, {
        model: "tiny-encoder",
        input: text,
        encoding_format: "base64"
      })) as { data: Array<{ embedding: string }> }
      const bytes = Buffer.from(reply.data[0]!.embedding, "base64")
      return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    }
    // A node starts with its heap held small (src/node/IdleHeap.ts) and its serving code not yet
    // optimized: from cold, rounds of these 256 requests ran at 490–560, 550–660, 750–760, 710–810,
    // 670–910 and 810–930 texts/s, and later ones at 1,400. Both sides run WARM_ROUNDS rounds before
    // the best of three, as a load test runs for thousands of requests, not 256; the first of them,
    // cold, is reported on its own. (32 requests before it, each side: they load the model.)
    await concurrently(TEXTS.slice(0, 32), CLIENTS, httpEmbed)
    await concurrently(TEXTS.slice(0, 32), 1, (text) => encoder.embed(text))
    const coldEmbeddings = TEXTS.length / (await concurrently(TEXTS, CLIENTS, httpEmbed))
    const coldBaseline = TEXTS.length / (await concurrently(TEXTS, 1, (text) => encoder.embed(text)))
    for (let round = 1; round < WARM_ROUNDS; round++) {
      await concurrently(TEXTS, CLIENTS, httpEmbed)
      await concurrently(TEXTS, 1, (text) => encoder.embed(text))
    }
    const embeddings = await bestOfInterleaved(
      async () => TEXTS.length / (await concurrently(TEXTS, CLIENTS, httpEmbed)),
      async () => TEXTS.length / (await concurrently(TEXTS, 1, (text) => encoder.embed(text)))
    )

    const batches = Array.from({ length: TEXTS.length / 32 }, (_, i) => TEXTS.slice(i * 32, i * 32 + 32))
    const httpEmbedBatch = (texts: ReadonlyArray<string>) =>
      postJson(`${node.url}/v1/embeddings`, { model: "tiny-encoder", input: texts, encoding_format: "base64" })
    await concurrently(batches.slice(0, 2), CLIENTS, httpEmbedBatch)
    const batchedEmbeddings = await bestOfInterleaved(
      async () => TEXTS.length / (await concurrently(batches, CLIENTS, httpEmbedBatch)),
      async () => TEXTS.length / (await concurrently(batches, 1, (texts) => encoder.embedBatch(texts)))
    )

    // (b) completions, and the first token of a stream
    const tokensOf = new Map<string, number>()
    for (const prompt of PROMPTS) tokensOf.set(prompt, (await lm.generateDetailed(prompt, greedy)).tokenIds.length)
    const totalTokens = PROMPTS.reduce((sum, prompt) => sum + tokensOf.get(prompt)!, 0)
    const httpComplete = async (prompt: string) => {
      const reply = (await postJson(`${node.url}/v1/completions`, {
        model: "tiny-lm",
        prompt,
        max_tokens: GENERATED_TOKENS,
        temperature: 0
      })) as { usage: { completion_tokens: number } }
      return reply.usage.completion_tokens
    }
    let httpTokens = 0
    await concurrently(PROMPTS.slice(0, 8), CLIENTS, httpComplete)
    const completions = await bestOfInterleaved(
      async () => {
        httpTokens = 0
        const seconds = await concurrently(PROMPTS, CLIENTS, async (prompt) => {
          const tokens = await httpComplete(prompt)
          httpTokens += tokens
        })
        return httpTokens / seconds
      },
      async () => totalTokens / (await concurrently(PROMPTS, 1, (prompt) => lm.generateDetailed(prompt, greedy)))
    )
    if (httpTokens !== totalTokens) {
      throw new Error(`the node generated ${httpTokens} tokens, the library ${totalTokens}`)
    }
    const servingPeakMb = { node: peakRssMb(node.process.pid!), library: peakRssMb() }

    const firstSse = async (prompt: string) => {
      const started = performance.now()
      const response = await post(`${node.url}/v1/completions`, {
        model: "tiny-lm",
        prompt,
        max_tokens: GENERATED_TOKENS,
        temperature: 0,
        stream: true
      })
      const decoder = new TextDecoder()
      let seen = ""
      let first: number | undefined
      for await (const chunk of response.body!) {
        seen += decoder.decode(chunk, { stream: true })
        if (first === undefined && /"text":"[^"]/.test(seen)) first = performance.now() - started
      }
      return first ?? Number.NaN
    }
    const firstPiece = async (prompt: string) => {
      const started = performance.now()
      let first: number | undefined
      for await (const _ of lm.generateStream(prompt, greedy)) first ??= performance.now() - started
      return first ?? Number.NaN
    }
    const sseTimes: Array<number> = []
    const pieceTimes: Array<number> = []
    for (const prompt of [...PROMPTS.slice(0, 3), ...PROMPTS.slice(0, 12)]) {
      sseTimes.push(await firstSse(prompt))
      pieceTimes.push(await firstPiece(prompt))
    }
    const firstToken = { ours: median(sseTimes.slice(3)), baseline: median(pieceTimes.slice(3)) }

    // (c) model worker pools, against the library in process with the same one thread per run
    const oneThread = {
      cacheDir: local,
      configFile: path.join(local, "absent.yaml"),
      registry: false,
      threads: 1
    } as const
    const singleLoader = new ModelLoader(oneThread)
    const inProcess = await (async () => {
      try {
        const [singleEncoder, singleLm] = [await singleLoader.load("tiny-encoder"), await singleLoader.load("tiny-lm")]
        await concurrently(TEXTS.slice(0, 32), 1, (text) => singleEncoder.embed(text))
        let embeddingsPerSecond = 0
        let tokensPerSecond = 0
        for (let round = 0; round < ROUNDS; round++) {
          embeddingsPerSecond = Math.max(
            embeddingsPerSecond,
            TEXTS.length / (await concurrently(TEXTS, 1, (text) => singleEncoder.embed(text)))
          )
          tokensPerSecond = Math.max(
            tokensPerSecond,
            totalTokens / (await concurrently(PROMPTS, 1, (prompt) => singleLm.generate(prompt, greedy)))
          )
        }
        return { embeddings: embeddingsPerSecond, tokens: tokensPerSecond }
      } finally {
        await singleLoader.close()
      }
    })()
    const pools: Record<number, { embeddings: number; tokens: number }> = {}
    for (const size of [1, 2]) {
      const pool = await ModelWorkerPool.create({ ...oneThread, size })
      try {
        await pool.load("tiny-encoder")
        await pool.load("tiny-lm")
        await concurrently(TEXTS.slice(0, 32), CLIENTS, (text) => pool.embed(text))
        await concurrently(PROMPTS.slice(0, 4), CLIENTS, (prompt) => pool.generate(prompt, greedy))
        let embeddingsPerSecond = 0
        let tokensPerSecond = 0
        for (let round = 0; round < ROUNDS; round++) {
          const embedSeconds = await concurrently(TEXTS, CLIENTS, (text) => pool.embed(text))
          embeddingsPerSecond = Math.max(embeddingsPerSecond, TEXTS.length / embedSeconds)
          const generateSeconds = await concurrently(PROMPTS, CLIENTS, (prompt) => pool.generate(prompt, greedy))
          tokensPerSecond = Math.max(tokensPerSecond, totalTokens / generateSeconds)
        }
        pools[size] = { embeddings: embeddingsPerSecond, tokens: tokensPerSecond }
      } finally {
        await pool.terminate()
      }
    }

    // The node reads EDGE_NET_INFERENCE_WORKERS from this process's environment (0: models on its own thread).
    const configured = process.env.EDGE_NET_INFERENCE_WORKERS
    const workers = configured === undefined ? defaultInferenceWorkers() : Number(configured)
    const threads = Math.max(1, Math.floor(availableParallelism() / Math.max(1, workers)))
    const equalWorkers = Math.max(1, Math.min(2, workers))
    const equal = pools[equalWorkers]!
    const equalName = `${equalWorkers} workers`
    console.log(
      `node: ${
        workers === 0
          ? "models on its own thread"
          : `${workers} inference worker thread(s) x ${threads} operator thread(s)`
      } on ${availableParallelism()} cores; ` +
        `in-process: the library on one thread, one call at a time, onnxruntime's default threads (one per core); ` +
        `${equalWorkers} workers: ModelWorkerPool of ${equalWorkers} x 1 thread, 8 callers in-process, no HTTP`
    )
    report(
      "embeddings, POST /v1/embeddings, 8 clients",
      "texts/s",
      embeddings.ours,
      embeddings.baseline,
      "in-process",
      ">= 0.8"
    )
    report(
      "embeddings, POST /v1/embeddings, 8 clients",
      "texts/s",
      embeddings.ours,
      equal.embeddings,
      equalName
    )
    report(
      "  the same, a new node's next 256 after 32",
      "texts/s",
      coldEmbeddings,
      coldBaseline,
      "in-process, the same"
    )
    report(
      "embeddings, 32 texts a request, 8 clients",
      "texts/s",
      batchedEmbeddings.ours,
      batchedEmbeddings.baseline,
      "in-process"
    )
    report(
      "tokens, POST /v1/completions, 8 clients",
      "tok/s",
      completions.ours,
      completions.baseline,
      "in-process",
      ">= 0.8"
    )
    report("tokens, POST /v1/completions, 8 clients", "tok/s", completions.ours, equal.tokens, equalName)
    report(
      "peak RSS, serving embeddings and completions",
      "MB",
      servingPeakMb.node,
      servingPeakMb.library,
      "library in process"
    )
    report("first token, streamed completion (SSE)", "ms", firstToken.ours, firstToken.baseline, "in-process")
    report(
      "embeddings, worker pool of 1, 8 callers",
      "texts/s",
      pools[1]!.embeddings,
      inProcess.embeddings,
      "in-process"
    )
    report("embeddings, worker pool of 2, 8 callers", "texts/s", pools[2]!.embeddings, pools[1]!.embeddings, "1 worker")
    report("tokens, worker pool of 1, 8 callers", "tok/s", pools[1]!.tokens, inProcess.tokens, "in-process")
    report("tokens, worker pool of 2, 8 callers", "tok/s", pools[2]!.tokens, pools[1]!.tokens, "1 worker")
  } finally {
    agent.destroy()
    await loader.close()
    await node.kill("SIGTERM")
  }
}
