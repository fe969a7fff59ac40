/**
 * The browser SDK in headless Chromium against a real node: sentence embeddings per second on
 * tiny-encoder (WebAssembly, one thread) beside transformers.js' feature-extraction pipeline in the
 * same page on the same model files and the same onnxruntime-web settings, and the time from page
 * load to the first embedding on a cold cache (a new browser profile: nothing in IndexedDB nor the
 * HTTP cache) and a warm one (a reload), for both.
 *
 * The bench page is a third party's page: this process serves it over HTTP on its own port, with
 * transformers.js' browser build (bundled here with esbuild), its own onnxruntime-web files and the
 * model folder; the page imports the SDK from the node (`/ui/sdk.js`, allowed by the node's CORS
 * list) and pulls the model from the node's registry. No request goes past the node and this process
 * (there is no internet), and nothing is routed through playwright, so the browser's HTTP cache works
 * as it would for a user.
 */
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import type { Browser } from "playwright-core"
import { launchChromium } from "../test/support/Chromium.js"
import { startNode } from "../test/support/NodeProcess.js"
import { tempDir } from "../test/support/TempDir.js"
import { report } from "./Report.js"

const MODEL_DIR = path.resolve("models/reference/tiny-encoder")
const TRANSFORMERS = path.resolve("node_modules/@huggingface/transformers")
// transformers.js pins its own onnxruntime-web build, installed under its folder.
const TRANSFORMERS_ORT = path.join(TRANSFORMERS, "node_modules", "onnxruntime-web", "dist")

const WORDS = ["whale", "ship", "sea", "captain", "harpoon", "storm", "sailor", "ocean", "white", "deck", "crew"]
const TEXTS = Array.from(
  { length: 256 },
  (_, i) => Array.from({ length: 4 + (i % 13) }, (_, j) => WORDS[(i * 7 + j * 3) % WORDS.length]).join(" ")
)
const BATCH = 32

/**
 * The bench page: `?run=ours` or `?run=theirs` embeds one text as soon as it loads and records when
 * (ms since navigation start); `window.bench` embeds the texts in batches with either library.
 */
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>edge-net browser bench</title></head><body>
<script type="module">
const params = new URLSearchParams(location.search)
const key = params.get("key")
const node = params.get("node")
const oursSession = async () => {
  const sdk = await import(node + "/ui/sdk.js")
  const loader = await sdk.ModelLoader.create({ registry: node, trustedKeys: [key] })
  const model = await loader.load("tiny-encoder")
  return sdk.InferenceSession.create(model, { backend: "wasm", threads: 1 })
}
const theirPipeline = async () => {
  const { env, pipeline } = await import("/transformers.js")
  env.allowRemoteModels = false
  env.allowLocalModels = true
  env.localModelPath = "/models/"
  env.backends.onnx.wasm.wasmPaths = location.origin + "/ort/"
  env.backends.onnx.wasm.numThreads = 1
  return pipeline("feature-extraction", "tiny-encoder", { dtype: "fp32", device: "wasm" })
}
const embedders = {
  ours: async () => { const session = await oursSession(); return (texts) => session.embed(texts) },
  theirs: async () => {
    const extractor = await theirPipeline()
    return async (texts) => (await extractor(texts, { pooling: "mean", normalize: true })).tolist()
  }
}
const run = params.get("run")
if (run !== null) {
  const embed = await embedders[run]()
  const [vector] = await embed(["the whale surfaced beside the ship"])
  window.firstEmbedding = { ms: performance.now(), dimensions: vector.length }
}
const loaded = {}
window.bench = {
  // Batch by batch, ours then theirs on the same batch: both see the same moments of a shared machine.
  async rates(texts, batch) {
    loaded.ours ??= await embedders.ours()
    loaded.theirs ??= await embedders.theirs()
    const spent = { ours: 0, theirs: 0 }
    for (let i = 0; i < texts.length; i += batch) {
      for (const which of ["ours", "theirs"]) {
        const started = performance.now()
        await loaded[which](texts.slice(i, i + batch))
        spent[which] += performance.now() - started
      }
    }
    return { ours: texts.length / (spent.ours / 1000), theirs: texts.length / (spent.theirs / 1000) }
  },
  async vectors(which, texts) {
    loaded[which] ??= await embedders[which]()
    return Array.from(await loaded[which](texts), (vector) => Array.from(vector))
  }
}
window.benchReady = true
</script></body></html>`

const contentType = (file: string) =>
  file.endsWith(".wasm") ? "application/wasm" : /\.m?js$/.test(file) ? "text/javascript" : "application/json"

/** transformers.js' browser build with its imports (onnxruntime-web, onnxruntime-common) bundled in. */
const bundleTransformers = async () => {
  const built = await esbuild.build({
    entryPoints: [path.join(TRANSFORMERS, "dist", "transformers.web.js")],
    bundle: true,
    format: "esm",
    platform: "browser",
    write: false,
    logLevel: "silent"
  })
  return built.outputFiles[0]!.contents
}

/** The bench page, transformers.js, its onnxruntime-web files and the model folder over HTTP. */
const serveBench = async (transformers: Uint8Array) => {
  const fileOf = (route: string) =>
    route.startsWith("/ort/")
      ? path.join(TRANSFORMERS_ORT, path.basename(route))
      : route.startsWith("/models/tiny-encoder/") && !route.includes("..")
      ? path.join(MODEL_DIR, route.slice("/models/tiny-encoder/".length))
      : ""
  const server = http.createServer((request, response) => {
    const route = new URL(request.url ?? "/", "http://bench").pathname
    const cached = { "cache-control": "max-age=3600" }
    if (route === "/bench-page") {
      response.writeHead(200, { "content-type": "text/html", "cache-control": "no-cache" }).end(PAGE)
      return
    }
    if (route === "/transformers.js") {
      response.writeHead(200, { ...cached, "content-type": "text/javascript" }).end(transformers)
      return
    }
    const file = fileOf(route)
    if (file !== "" && fs.existsSync(file) && fs.statSync(file).isFile()) {
      response.writeHead(200, { ...cached, "content-type": contentType(file) }).end(fs.readFileSync(file))
    } else {
      response.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() }
}

/** Milliseconds from navigation to the first embedding: in a new profile (cold), then after a reload (warm). */
const firstEmbedding = async (browser: Browser, page: string, which: "ours" | "theirs") => {
  const context = await browser.newContext()
  const tab = await context.newPage()
  const measure = async () => {
    await tab.waitForFunction("window.firstEmbedding !== undefined", undefined, { timeout: 120_000 })
    return (await tab.evaluate("window.firstEmbedding.ms")) as number
  }
  await tab.goto(`${page}&run=${which}`)
  const cold = await measure()
  await tab.reload()
  const warm = await measure()
  await context.close()
  return { cold, warm }
}

export const run = async () => {
  const [bench, browser] = await Promise.all([bundleTransformers().then(serveBench), launchChromium()])
  // The bench page's origin may read the node's registry, blobs and SDK.
  const node = await startNode(tempDir("bench-browser-node-"), undefined, {
    EDGE_NET_FIRST_START_MODELS: "on",
    EDGE_NET_CORS_ORIGINS: bench.url,
    HOME: tempDir("bench-browser-home-")
  })
  try {
    const keyFile: unknown = JSON.parse(fs.readFileSync(path.join(node.dataDir, "node.key"), "utf8"))
    if (typeof keyFile !== "object" || keyFile === null || !("publicKey" in keyFile)) throw new Error("no node key")
    const key = String(keyFile.publicKey)
    const deadline = Date.now() + 60_000
    while (!(await fetch(`${node.url}/v1/models/tiny-encoder`)).ok) {
      if (Date.now() > deadline) throw new Error("the node did not publish tiny-encoder")
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const benchPage = `${bench.url}/bench-page?key=${key}&node=${encodeURIComponent(node.url)}`

    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(benchPage)
    await page.waitForFunction("window.benchReady === true")
    const texts = JSON.stringify(TEXTS)
    // The same work: both libraries' vectors of the same texts agree.
    const sample = JSON.stringify(TEXTS.slice(0, 8))
    const [ourVectors, theirVectors] = (await Promise.all([
      page.evaluate(`window.bench.vectors("ours", ${sample})`),
      page.evaluate(`window.bench.vectors("theirs", ${sample})`)
    ])) as [Array<Array<number>>, Array<Array<number>>]
    const difference = Math.max(
      ...ourVectors.flatMap((vector, i) => vector.map((value, j) => Math.abs(value - theirVectors[i]![j]!)))
    )
    // Interleaved batch by batch, best of three rounds each: the machine is shared and noisy.
    let ours = 0
    let theirs = 0
    for (let round = 0; round < 3; round++) {
      const rates = (await page.evaluate(`window.bench.rates(${texts}, ${BATCH})`)) as { ours: number; theirs: number }
      ours = Math.max(ours, rates.ours)
      theirs = Math.max(theirs, rates.theirs)
    }
    await context.close()

    const ourStart = await firstEmbedding(browser, benchPage, "ours")
    const theirStart = await firstEmbedding(browser, benchPage, "theirs")

    report(
      `browser embeddings, tiny-encoder, wasm, batches of ${BATCH}`,
      "texts/s",
      ours,
      theirs,
      "transformers.js",
      ">= 1.0"
    )
    console.log(`  (largest difference between the two libraries' vectors: ${difference.toExponential(2)})`)
    report(
      "page load to first embedding, cold cache",
      "ms",
      ourStart.cold,
      theirStart.cold,
      "transformers.js",
      "lower is better"
    )
    report(
      "page load to first embedding, warm cache",
      "ms",
      ourStart.warm,
      theirStart.warm,
      "transformers.js",
      "lower is better"
    )
  } finally {
    bench.close()
    await browser.close()
    await node.kill("SIGTERM")
  }
}
