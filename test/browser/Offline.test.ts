/**
 * The dashboard offline, in real headless Chromium against a real node process: a first visit (the
 * service worker takes the page, and the playground pulls tiny-encoder into IndexedDB and runs it),
 * then the node is stopped, and on a reload the page, the SDK and onnxruntime-web come from the
 * browser's cache and the playground still embeds, with Node's numbers. Screenshots under
 * test-results/browser/.
 */
import { Effect } from "effect"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Inference } from "../../src/compute/inference/Inference.js"
import { nodeWithModelsAndChromium, screenshot, watchedPage } from "../support/Chromium.js"
import type { RunningNode } from "../support/NodeProcess.js"

const TEXT = "the whale surfaced beside the ship"

let node: RunningNode
let browser: Browser

beforeAll(async () => {
  ;({ browser, node } = await nodeWithModelsAndChromium("offline", "tiny-encoder", "tiny-encoder"))
}, 90_000)

afterAll(async () => {
  await browser?.close()
  await node?.kill("SIGTERM")
})

/** Runs tiny-encoder in the playground; the six components it shows and where the model came from. */
const embedInPlayground = async (page: Page) => {
  const playground = page.getByTestId("playground")
  await playground.getByRole("option", { name: "tiny-encoder", exact: true }).waitFor({ state: "attached" })
  await playground.getByTestId("playground-model").selectOption("tiny-encoder")
  await playground.getByTestId("playground-input").fill(TEXT)
  const run = playground.getByTestId("playground-run")
  await expect.poll(() => run.isEnabled(), { timeout: 10_000 }).toBe(true)
  await run.click()
  const output = playground.getByTestId("playground-output")
  await output.waitFor({ timeout: 40_000 })
  const shown = Array.from((await output.innerText()).matchAll(/-?\d+\.\d{4}(?=[,\]])/g), (match) => Number(match[0]))
  return { shown, result: await playground.getByTestId("playground-result").innerText() }
}

describe("the dashboard offline", () => {
  it(
    "after a first visit, reloads with the node stopped and still embeds with the model cached in IndexedDB",
    async () => {
      const [expected] = await Effect.runPromise(
        Effect.gen(function*() {
          const inference = yield* Inference
          const encoder = yield* inference.loadModel("models/reference/tiny-encoder")
          return yield* inference.embedBatch(encoder, [TEXT])
        }).pipe(Effect.scoped, Effect.provide(Inference.node))
      )
      const { errors, page } = await watchedPage(browser, 1400, 1000)
      await page.goto(`${node.url}/ui`)
      // The first visit: once the service worker controls the page, what the playground fetches is kept.
      await expect.poll(() => page.getByTestId("offline-copy").innerText(), { timeout: 30_000 }).toBe(
        "kept in this browser"
      )
      const online = await embedInPlayground(page)
      expect(online.result).toMatch(/tiny-encoder@1\.0\.0 from the node on wasm/)
      expect(online.shown).toHaveLength(6)
      online.shown.forEach((value, i) => expect(value).toBeCloseTo(expected![i]!, 3))
      expect(errors).toEqual([])

      await node.kill("SIGTERM")
      expect(await fetch(`${node.url}/ui`).then(() => "answered", () => "unreachable")).toBe("unreachable")

      const fromWorker: Array<string> = []
      page.on("response", (response) => {
        if (response.fromServiceWorker()) fromWorker.push(new URL(response.url()).pathname)
      })
      errors.length = 0
      await page.reload()
      await expect.poll(() => page.locator("p.error").first().innerText(), { timeout: 20_000 }).toMatch(
        /^the node cannot be reached: this page is the copy this browser kept/
      )
      const offline = await embedInPlayground(page)
      expect(offline.result).toMatch(/tiny-encoder@1\.0\.0 from IndexedDB on wasm/)
      expect(offline.shown).toEqual(online.shown)
      // The page, its bundle, the SDK and the runtime came from the service worker's cache.
      expect(fromWorker).toEqual(
        expect.arrayContaining(["/ui", "/ui/app.js", "/ui/sdk.js", "/ui/sdk-inference-worker.js", "/v1/models"])
      )
      await screenshot(page, "dashboard-offline")
      // Only the node's own routes failed (its status, its feed); no script did.
      expect(errors.filter((error) => !/Failed to load resource|ERR_CONNECTION_REFUSED|EventSource/.test(error)))
        .toEqual([])
      await page.close()
    },
    120_000
  )
})
