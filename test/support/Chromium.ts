/**
 * The browser tests' harness: Debian's headless chromium driven by playwright-core, pages whose console
 * errors and uncaught exceptions are collected, and full-page screenshots under test-results/browser/.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"

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
