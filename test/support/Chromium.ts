/**
 * The browser tests' harness: Debian's headless chromium driven by playwright-core, pages whose console
 * errors and uncaught exceptions are collected, and full-page screenshots under test-results/browser/.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { startNode } from "./NodeProcess.js"
import { tempDir } from "./TempDir.js"

const CHROMIUM = "/usr/bin/chromium"
const SCREENSHOTS = path.resolve("test-results", "browser")

/** Headless chromium, or one line saying how to install it. */
export const launchChromium = (): Promise<Browser> => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
  })
}

/** A new page of `width` x `height`, with every console error and uncaught exception it shows collected. */
export const watchedPage = async (browser: Browser, width: number, height: number) => {
  const page = await browser.newPage({ viewport: { width, height } })
  const errors: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text())
  })
  page.on("pageerror", (error) => errors.push(error.message))
  return { page, errors }
}

/** A full-page screenshot at test-results/browser/<name>.png; returns its path. */
export const screenshot = async (page: Page, name: string): Promise<string> => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true })
  const file = path.join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

/**
 * A node process publishing `models` (EDGE_NET_FIRST_START_MODELS) and headless chromium, started
 * together; resolves once the node serves the manifest of `ready` (it publishes in the background),
 * with that manifest as JSON.
 */
export const nodeWithModelsAndChromium = async (name: string, models: string, ready: string) => {
  const [node, browser] = await Promise.all([
    startNode(tempDir(`${name}-node-`), undefined, {
      EDGE_NET_FIRST_START_MODELS: models,
      HOME: tempDir(`${name}-home-`)
    }),
    launchChromium()
  ])
  const deadline = Date.now() + 75_000
  for (;;) {
    const response = await fetch(`${node.url}/v1/models/${ready}`)
    if (response.ok) return { node, browser, manifest: (await response.json()) as unknown }
    if (Date.now() > deadline) throw new Error(`${ready} was not published:\n${node.output().slice(-2000)}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}
