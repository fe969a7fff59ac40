/**
 * The browser SDK (/ui/sdk.js) in real headless Chromium against a real node process that published
 * its first-start models: the page pulls tiny-encoder into IndexedDB, verified against the node's
 * signed manifest, and its embeddings equal Node's; a tampered blob is refused and not cached; a
 * reload serves the model from IndexedDB without fetching a blob; a session in a Web Worker embeds the
 * same; the cache keeps under its cap (least recently used out first); a LoRA adapter trains in a Web
 * Worker and its loss falls, and once kept in IndexedDB (AdapterStore) a later page runs it, in the page
 * and in a worker, as Node runs it; the dashboard's playground runs models in its page as Node runs
 * them. Each test saves a screenshot under test-results/browser/.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Inference } from "../../src/compute/inference/Inference.js"
import { readModelFolder } from "../../src/compute/inference/ModelFolder.js"
import type { LoraModule } from "../../src/compute/lora/Adapter.js"
import { nodeWithModelsAndChromium, screenshot, watchedPage } from "../support/Chromium.js"
import type { RunningNode } from "../support/NodeProcess.js"

const TEXTS = ["the whale surfaced beside the ship", "a storm at sea", "the captain counted the crew at night"]

let node: RunningNode
let browser: Browser
let nodeKey: string
let manifest: { readonly artifacts: Record<string, { readonly sha256: string }> }

/**
 * The test page, on the node's origin: it imports the SDK the node serves and keeps small helpers on
 * `window.sdkTest` that the tests call by name (plain JavaScript: nothing of the test's compiled code
 * runs in the page).
 */
const TEST_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>edge-net SDK</title></head>
<body><h1>edge-net SDK test page</h1><pre id="log"></pre>
<script type="module">
import * as sdk from "/ui/sdk.js"
const log = (line) => { document.getElementById("log").textContent += line + "\\n" }
window.sdkTest = {
  async pull(key, database, texts) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database })
    const phases = []
    const started = performance.now()
    const model = await loader.load("tiny-encoder", { onProgress: (progress) => phases.push(progress.phase) })
    const session = await sdk.InferenceSession.create(model, { backend: "auto" })
    const vectors = await session.embed(texts)
    const ms = performance.now() - started
    log("pulled " + model.id + "@" + model.version + " (" + (model.fromCache ? "from IndexedDB" : "from the node") +
      ") on " + session.backend + ", signed by " + model.signedBy.join(", ") + "; " + vectors.length + " embeddings in " + ms.toFixed(0) + " ms")
    await session.dispose()
    const result = {
      vectors: vectors.map((vector) => Array.from(vector)),
      fromCache: model.fromCache,
      signedBy: model.signedBy,
      backend: session.backend,
      phases: [...new Set(phases)],
      cached: await loader.isCached("tiny-encoder"),
      models: (await loader.getCachedModels()).map((entry) => entry.id)
    }
    loader.close()
    return result
  },
  async inWorker(key, database, texts) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database })
    const model = await loader.load("tiny-encoder")
    loader.close()
    const session = await sdk.WorkerSession.create(model, { backend: "wasm" })
    const vectors = await session.embed(texts)
    await session.dispose()
    const refused = await session.embed(texts).then(() => undefined, (failure) => failure.message)
    return { vectors: vectors.map((vector) => Array.from(vector)), backend: session.backend, refused }
  },
  async refused(key, database) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database })
    const error = await loader.load("tiny-encoder").then(() => undefined, (failure) => failure.name + ": " + failure.message)
    log(error ?? "loaded")
    const result = { error, cached: await loader.isCached("tiny-encoder"), models: await loader.getCachedModels() }
    loader.close()
    return result
  },
  async lru(key, database, maxCacheBytes) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database, maxCacheBytes })
    const events = []
    loader.addEventListener("progress", (event) => events.push(event.detail.phase))
    const ids = async () => (await loader.getCachedModels()).map((entry) => entry.id).sort()
    await loader.load("tiny-encoder")
    const afterEncoder = await ids()
    await loader.load("tiny-lm")
    const afterLm = await ids()
    const bytes = await loader.cachedBytes()
    await loader.clearCache("tiny-lm")
    const afterClear = await ids()
    await loader.load("tiny-encoder-int8")
    await loader.clearAllCache()
    const afterClearAll = await ids()
    loader.close()
    log("cap " + maxCacheBytes + " bytes: after tiny-encoder " + afterEncoder + "; after tiny-lm " + afterLm +
      " (" + bytes + " bytes); after clearCache(tiny-lm) [" + afterClear + "]; after clearAllCache [" + afterClearAll + "]")
    return { afterEncoder, afterLm, bytes, afterClear, afterClearAll, events: [...new Set(events)] }
  },
  async untrusted(database) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: ["ab".repeat(32)], databaseName: database })
    const error = await loader.load("tiny-encoder").then(() => undefined, (failure) => failure.message)
    log(error ?? "loaded")
    const cached = await loader.getCachedModels()
    loader.close()
    return { error, cached }
  },
  async train(key, database) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database })
    const model = await loader.load("tiny-encoder")
    loader.close()
    const items = [
      { text: "the whale dove deep", label: 0 }, { text: "a whale and her calf", label: 0 },
      { text: "the great white whale", label: 0 }, { text: "whales sing at night", label: 0 },
      { text: "the market price rose", label: 1 }, { text: "a trade at the market", label: 1 },
      { text: "prices fell in the market", label: 1 }, { text: "the trader sold early", label: 1 }
    ]
    const trained = await sdk.trainAdapter(model, { kind: "classification", items }, {
      config: { rank: 2, epochs: 6, batchSize: 4, learningRate: 0.01, schedule: "constant" },
      onProgress: (progress) => log("step " + progress.step + "/" + progress.totalSteps + " loss " + progress.loss.toFixed(4))
    })
    return { losses: trained.losses, modules: Object.keys(trained.weights.modules).length }
  },
  async trainAndSave(key, database, adapters) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database })
    const model = await loader.load("tiny-encoder")
    loader.close()
    const items = [
      { text: "the whale dove deep", label: 0 }, { text: "a whale and her calf", label: 0 },
      { text: "the market price rose", label: 1 }, { text: "a trade at the market", label: 1 }
    ]
    const trained = await sdk.trainAdapter(model, { kind: "classification", items }, {
      config: { rank: 2, epochs: 4, batchSize: 4, learningRate: 0.05, schedule: "constant" }
    })
    const store = await sdk.AdapterStore.open({ databaseName: adapters })
    const saved = await store.save("whale-or-market", model, trained)
    store.close()
    log("saved adapter " + saved.metadata.id + " for " + saved.metadata.baseModel + " after " + saved.metadata.steps + " steps")
    return saved.metadata
  },
  async runSaved(key, database, adapters, texts) {
    const loader = await sdk.ModelLoader.create({ trustedKeys: [key], databaseName: database })
    const model = await loader.load("tiny-encoder")
    loader.close()
    const store = await sdk.AdapterStore.open({ databaseName: adapters })
    const listed = await store.list()
    const adapter = await store.load("whale-or-market")
    const missing = await store.load("no-such-adapter")
    store.close()
    const session = await sdk.InferenceSession.create(model, { backend: "wasm", adapterSlots: { rank: adapter.weights.rank } })
    const base = await session.embed(texts)
    const adapted = await session.embed(texts, { adapter })
    await session.dispose()
    const plain = await sdk.InferenceSession.create(model, { backend: "wasm" })
    const refused = await plain.embed(texts, { adapter }).then(() => undefined, (failure) => failure.message)
    await plain.dispose()
    const worker = await sdk.WorkerSession.create(model, { backend: "wasm", adapterSlots: { rank: adapter.weights.rank } })
    const inWorker = await worker.embed(texts, { adapter })
    await worker.dispose()
    log("ran adapter " + adapter.metadata.id + " from IndexedDB in the page and in a worker")
    const rows = (vectors) => vectors.map((vector) => Array.from(vector))
    return {
      listed,
      missing: missing === undefined,
      metadata: adapter.metadata,
      weights: {
        rank: adapter.weights.rank,
        alpha: adapter.weights.alpha,
        modules: Object.fromEntries(Object.entries(adapter.weights.modules).map(([name, factors]) =>
          [name, { ...factors, A: Array.from(factors.A), B: Array.from(factors.B) }]))
      },
      base: rows(base),
      adapted: rows(adapted),
      inWorker: rows(inWorker),
      refused
    }
  }
}
window.sdkReady = true
</script></body></html>`

// Time limits guard against a hang, with room for a loaded machine: alone, the file runs in about 35 s.

/** Calls `window.sdkTest[name](...args)` in the page. */
const call = <A>(page: Page, name: string, ...args: ReadonlyArray<unknown>): Promise<A> =>
  page.evaluate(`window.sdkTest.${name}(...${JSON.stringify(args)})`) as Promise<A>

/** A page on the node's origin with the SDK loaded, its console errors collected and its blob requests counted. */
const openSdkPage = async () => {
  const { page, errors } = await watchedPage(browser, 1000, 600)
  const blobRequests: Array<string> = []
  page.on("request", (request) => {
    if (new URL(request.url()).pathname.startsWith("/v1/blobs/")) blobRequests.push(request.url())
  })
  await page.route(`${node.url}/sdk-test`, (route) => route.fulfill({ contentType: "text/html", body: TEST_PAGE }))
  await page.goto(`${node.url}/sdk-test`)
  await page.waitForFunction("window.sdkReady === true", undefined, { timeout: 30_000 })
  return { page, errors, blobRequests }
}

/** Node's embeddings of the same texts, from the same files, through the node's own inference path. */
const nodeEmbeddings = () =>
  Effect.runPromise(
    Effect.gen(function*() {
      const inference = yield* Inference
      const encoder = yield* inference.loadModel("models/reference/tiny-encoder")
      return (yield* inference.embedBatch(encoder, TEXTS)).map((vector) => Array.from(vector))
    }).pipe(Effect.scoped, Effect.provide(Inference.node))
  )

const maxDifference = (a: ReadonlyArray<ReadonlyArray<number>>, b: ReadonlyArray<ReadonlyArray<number>>) => {
  expect(a.map((row) => row.length)).toEqual(b.map((row) => row.length))
  return Math.max(...a.flatMap((row, i) => row.map((value, j) => Math.abs(value - b[i]![j]!))))
}

beforeAll(async () => {
  const started = await nodeWithModelsAndChromium("sdk", "tiny-encoder,tiny-encoder-int8,tiny-lm", "tiny-encoder")
  ;({ browser, node } = started)
  manifest = started.manifest as typeof manifest
  const keyFile: unknown = JSON.parse(fs.readFileSync(path.join(node.dataDir, "node.key"), "utf8"))
  if (typeof keyFile !== "object" || keyFile === null || !("publicKey" in keyFile)) throw new Error("no node key")
  nodeKey = String(keyFile.publicKey)
}, 90_000)

afterAll(async () => {
  await browser?.close()
  await node?.kill("SIGTERM")
})

describe("the browser SDK in headless Chromium", () => {
  it(
    "pulls tiny-encoder into IndexedDB, verified, and embeds as Node does, in the page and in a worker; a reload fetches no blob; offline, the cache serves",
    async () => {
      const expected = await nodeEmbeddings()
      const { blobRequests, errors, page } = await openSdkPage()
      const first = await call<{
        vectors: Array<Array<number>>
        fromCache: boolean
        signedBy: Array<string>
        backend: string
        phases: Array<string>
        cached: boolean
        models: Array<string>
      }>(page, "pull", nodeKey, "sdk-test", TEXTS)
      expect(first.fromCache).toBe(false)
      expect(first.backend).toBe("wasm")
      expect(first.signedBy).toHaveLength(1)
      expect(first.phases).toEqual(["manifest", "download", "verify", "done"])
      expect(first.cached).toBe(true)
      expect(first.models).toEqual(["tiny-encoder"])
      expect(maxDifference(first.vectors, expected)).toBeLessThan(1e-4)
      expect(blobRequests.length).toBe(Object.keys(manifest.artifacts).length)
      await screenshot(page, "sdk-pulled")

      // A reload: the same origin's IndexedDB serves every blob, and the node is asked for none.
      blobRequests.length = 0
      await page.reload()
      await page.waitForFunction("window.sdkReady === true")
      const again = await call<typeof first>(page, "pull", nodeKey, "sdk-test", TEXTS)
      expect(again.fromCache).toBe(true)
      expect(again.phases).toEqual(["manifest", "cache", "done"])
      expect(blobRequests).toEqual([])
      expect(maxDifference(again.vectors, expected)).toBeLessThan(1e-4)
      await screenshot(page, "sdk-reloaded-from-indexeddb")

      // The same model in a Web Worker: the same vectors, computed off the page's thread.
      const workers: Array<string> = []
      page.on("worker", (worker) => workers.push(worker.url()))
      const inWorker = await call<{ vectors: Array<Array<number>>; backend: string; refused: string }>(
        page,
        "inWorker",
        nodeKey,
        "sdk-test",
        TEXTS
      )
      expect(workers).toEqual([`${node.url}/ui/sdk-inference-worker.js`])
      expect(inWorker.backend).toBe("wasm")
      expect(maxDifference(inWorker.vectors, expected)).toBeLessThan(1e-4)
      expect(inWorker.refused).toBe("the session on tiny-encoder@1.0.0 was disposed")
      expect(errors).toEqual([])

      // Offline: the registry cannot be reached, and the cached manifest (its signature checked again) serves.
      await page.route(`${node.url}/v1/models/**`, (route) => route.abort("internetdisconnected"))
      const offline = await call<typeof first>(page, "pull", nodeKey, "sdk-test", TEXTS)
      expect(offline.fromCache).toBe(true)
      expect(maxDifference(offline.vectors, expected)).toBeLessThan(1e-4)
      await page.unroute(`${node.url}/v1/models/**`)
      await page.close()
    },
    90_000
  )

  it("refuses a tampered blob with a clear error and caches nothing of it", async () => {
    const { errors, page } = await openSdkPage()
    const modelDigest = manifest.artifacts["model"]!.sha256
    await page.route(`${node.url}/v1/blobs/sha256-${modelDigest}`, async (route) => {
      const response = await route.fetch()
      const body = Buffer.from(await response.body())
      const middle = body.length >> 1
      body[middle] = body[middle]! ^ 0x01
      await route.fulfill({ response, body })
    })
    const refused = await call<{ error: string | undefined; cached: boolean; models: Array<unknown> }>(
      page,
      "refused",
      nodeKey,
      "sdk-tampered"
    )
    expect(refused.error).toMatch(
      new RegExp(
        `^ModelLoaderError: artifact model of tiny-encoder@1\\.0\\.0 \\(sha256-${modelDigest}\\) was refused and not cached: its SHA-256 is [0-9a-f]{64}, the manifest says ${modelDigest}$`
      )
    )
    expect(refused.cached).toBe(false)
    expect(refused.models).toEqual([])
    await screenshot(page, "sdk-tampered-refused")
    // The node's own bytes load: the refusal was the tampering's.
    await page.unroute(`${node.url}/v1/blobs/sha256-${modelDigest}`)
    const loaded = await call<{ error: string | undefined; cached: boolean }>(page, "refused", nodeKey, "sdk-tampered")
    expect(loaded).toMatchObject({ error: undefined, cached: true })
    expect(errors).toEqual([])
    await page.close()
  }, 60_000)

  it("the dashboard's playground pulls a model into the page and runs it there, as Node runs it", async () => {
    const [expected] = await nodeEmbeddings()
    const prompt = "The whale"
    const generated = await Effect.runPromise(
      Effect.gen(function*() {
        const inference = yield* Inference
        const lm = yield* inference.loadModel("models/reference/tiny-lm")
        return (yield* inference.generate(lm, prompt, { maxNewTokens: 32, temperature: 0 })).text
      }).pipe(Effect.scoped, Effect.provide(Inference.node))
    )
    const { page, errors } = await watchedPage(browser, 1400, 1000)
    const workers: Array<string> = []
    page.on("worker", (worker) => workers.push(worker.url()))
    await page.goto(`${node.url}/ui`)
    const playground = page.getByTestId("playground")
    await playground.getByRole("option", { name: "tiny-encoder", exact: true }).waitFor({ state: "attached" })
    await playground.getByTestId("playground-model").selectOption("tiny-encoder")
    await playground.getByTestId("playground-input").fill(TEXTS[0]!)
    await playground.getByTestId("playground-run").click()
    const output = playground.getByTestId("playground-output")
    await output.waitFor({ timeout: 40_000 })
    const shown = Array.from((await output.innerText()).matchAll(/-?\d+\.\d{4}(?=[,\]])/g), (match) => Number(match[0]))
    expect(shown).toHaveLength(6)
    shown.forEach((value, i) => expect(value).toBeCloseTo(expected![i]!, 3))
    expect(await output.innerText()).toMatch(/^192 dimensions, \|v\| = 1\.0000/)
    expect(await playground.getByTestId("playground-result").innerText()).toMatch(
      /tiny-encoder@1\.0\.0 from the node on wasm/
    )
    expect(await playground.getByTestId("playground-run-ms").innerText()).toMatch(/^\d+\.\d ms$/)

    await playground.getByTestId("playground-model").selectOption("tiny-lm")
    await playground.getByTestId("playground-input").fill(prompt)
    await playground.getByRole("button", { name: "generate in the browser" }).click()
    await expect.poll(() => output.innerText(), { timeout: 40_000 }).toBe(generated.replace(/\s+/g, " ").trim())
    // Each run in a worker of its own, off the page's thread.
    expect(workers).toEqual(Array(2).fill(`${node.url}/ui/sdk-inference-worker.js`))
    await screenshot(page, "dashboard-playground")
    expect(errors).toEqual([])
    await page.close()
  }, 90_000)

  it("keeps its cache under the cap, least recently used out first; clears one model or all", async () => {
    const { errors, page } = await openSdkPage()
    // Room for one FP32 model of ~10 MB, not two.
    const cap = 15_000_000
    const lru = await call<{
      afterEncoder: Array<string>
      afterLm: Array<string>
      bytes: number
      afterClear: Array<string>
      afterClearAll: Array<string>
      events: Array<string>
    }>(page, "lru", nodeKey, "sdk-lru", cap)
    expect(lru).toMatchObject({
      afterEncoder: ["tiny-encoder"],
      afterLm: ["tiny-lm"],
      afterClear: [],
      afterClearAll: []
    })
    // tiny-encoder-int8 shares its tokenizer and configs with tiny-encoder: those may come from the cache.
    expect(lru.events).toEqual(expect.arrayContaining(["manifest", "download", "verify", "done"]))
    expect(lru.events.filter((phase) => !["manifest", "download", "verify", "cache", "done"].includes(phase)))
      .toEqual([])
    expect(lru.bytes).toBeLessThanOrEqual(cap)
    expect(lru.bytes).toBeGreaterThan(9_000_000)
    // A manifest no trusted key signed is refused before any blob is fetched.
    const untrusted = await call<{ error: string; cached: Array<unknown> }>(page, "untrusted", "sdk-untrusted")
    expect(untrusted.error).toMatch(
      /^the manifest of tiny-encoder@1\.0\.0 is not signed by a trusted key \(signed by [0-9a-f]+\)$/
    )
    expect(untrusted.cached).toEqual([])
    await screenshot(page, "sdk-cache-lru")
    expect(errors).toEqual([])
    await page.close()
  }, 60_000)

  it("trains a LoRA adapter in a Web Worker, and its loss falls", async () => {
    const { errors, page } = await openSdkPage()
    const workers: Array<string> = []
    page.on("worker", (worker) => workers.push(worker.url()))
    const trained = await call<{ losses: Array<number>; modules: number }>(page, "train", nodeKey, "sdk-test")
    expect(workers).toEqual([`${node.url}/ui/sdk-lora-worker.js`])
    expect(trained.modules).toBeGreaterThan(0)
    expect(trained.losses.length).toBeGreaterThanOrEqual(10)
    const mean = (values: ReadonlyArray<number>) => values.reduce((sum, value) => sum + value, 0) / values.length
    expect(mean(trained.losses.slice(-3))).toBeLessThan(0.7 * mean(trained.losses.slice(0, 3)))
    await screenshot(page, "sdk-lora-trained")
    expect(errors).toEqual([])
    await page.close()
  }, 60_000)

  it("keeps an adapter trained in a Web Worker in IndexedDB, and a later page runs it as Node does", async () => {
    const { errors, page } = await openSdkPage()
    const saved = await call<{ id: string; baseModel: string; baseModelDigest: string; steps: number }>(
      page,
      "trainAndSave",
      nodeKey,
      "sdk-test",
      "sdk-adapters"
    )
    expect(saved).toMatchObject({
      id: "whale-or-market",
      baseModel: "tiny-encoder@1.0.0",
      baseModelDigest: manifest.artifacts["model"]!.sha256
    })
    expect(saved.steps).toBeGreaterThan(0)

    // A later visit: the adapter comes from IndexedDB, not from the training run.
    await page.reload()
    await page.waitForFunction("window.sdkReady === true")
    const ran = await call<{
      listed: Array<{ id: string }>
      missing: boolean
      metadata: { id: string; baseModelDigest: string }
      weights: {
        rank: number
        alpha: number
        modules: Record<string, { inFeatures: number; outFeatures: number; A: Array<number>; B: Array<number> }>
      }
      base: Array<Array<number>>
      adapted: Array<Array<number>>
      inWorker: Array<Array<number>>
      refused: string
    }>(page, "runSaved", nodeKey, "sdk-test", "sdk-adapters", TEXTS)
    expect(ran.listed.map((adapter) => adapter.id)).toEqual(["whale-or-market"])
    expect(ran.missing).toBe(true)
    expect(ran.refused).toBe(
      "tiny-encoder@1.0.0 was loaded without adapter slots: load it with adapterSlots to run adapter whale-or-market"
    )

    // Node runs the same factors on the same model: the page's vectors are Node's, with and without them.
    const modules: Record<string, LoraModule> = {}
    for (const [name, factors] of Object.entries(ran.weights.modules)) {
      modules[name] = { ...factors, A: Float32Array.from(factors.A), B: Float32Array.from(factors.B) }
    }
    const adapter = { metadata: ran.metadata, weights: { rank: ran.weights.rank, alpha: ran.weights.alpha, modules } }
    const [nodeBase, nodeAdapted] = await Effect.runPromise(
      Effect.gen(function*() {
        const inference = yield* Inference
        const source = yield* readModelFolder("models/reference/tiny-encoder")
        const encoder = yield* inference.loadModel({ ...source, adapterSlots: { rank: adapter.weights.rank } })
        const rows = (vectors: ReadonlyArray<Float32Array>) => vectors.map((vector) => Array.from(vector))
        return [
          rows(yield* inference.embedBatch(encoder, TEXTS)),
          rows(yield* inference.embedBatch(encoder, TEXTS, { adapter }))
        ] as const
      }).pipe(Effect.scoped, Effect.provide(Inference.node))
    )
    expect(maxDifference(ran.base, nodeBase)).toBeLessThan(1e-4)
    expect(maxDifference(ran.adapted, nodeAdapted)).toBeLessThan(1e-4)
    expect(maxDifference(ran.inWorker, nodeAdapted)).toBeLessThan(1e-4)
    // The adapter changed what the model computes (by about 0.3 in some component).
    expect(maxDifference(ran.adapted, ran.base)).toBeGreaterThan(1e-2)
    await screenshot(page, "sdk-adapter-saved-and-run")
    expect(errors).toEqual([])
    await page.close()
  }, 90_000)
})
