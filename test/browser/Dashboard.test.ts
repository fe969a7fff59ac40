/**
 * The dashboard in real headless Chromium (Debian's chromium, driven by playwright-core) against a
 * real node process that published its first-start models: the page loads without a console error,
 * lists the catalog, and shows an event the CLI appends within a second. Each test saves a screenshot
 * under test-results/browser/.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cliArgs, type RunningNode, startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const CHROMIUM = "/usr/bin/chromium"
const SCREENSHOTS = path.resolve("test-results", "browser")
const REFERENCE_IDS = [
  "tiny-encoder",
  "tiny-encoder-int8",
  "tiny-encoder-int4",
  "tiny-lm",
  "tiny-lm-int8",
  "tiny-lm-int4"
]

let node: RunningNode
let browser: Browser
const home = tempDir("dashboard-home-")

/** A page on the dashboard, with every console error and uncaught exception it shows collected. */
const openDashboard = async () => {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  const errors: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text())
  })
  page.on("pageerror", (error) => errors.push(error.message))
  await page.goto(`${node.url}/`)
  return { page, errors }
}

const screenshot = async (page: Page, name: string) => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true })
  const file = path.join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
  const [started, launched] = await Promise.all([
    startNode(tempDir("dashboard-node-"), undefined, { EDGE_NET_FIRST_START_MODELS: "on", HOME: home }),
    chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] })
  ])
  node = started
  browser = launched
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await node?.kill("SIGTERM")
})

describe("the dashboard in headless Chromium", () => {
  it("loads from / with no console error and shows the node, its head and its peer", async () => {
    const { errors, page } = await openDashboard()
    expect(new URL(page.url()).pathname).toBe("/ui")
    const nodeId = ((await fetch(`${node.url}/health`).then((response) => response.json())) as { nodeId: string })
      .nodeId
    await page.getByTestId("status").getByText(nodeId).waitFor({ timeout: 10_000 })
    await page.getByTestId("status").getByText("connected").waitFor({ timeout: 10_000 })
    await page.getByTestId("peers").getByText("peer id").waitFor()
    await page.getByTestId("rate-chart").locator("canvas").waitFor()
    await screenshot(page, "dashboard-loaded")
    expect(errors).toEqual([])
    await page.close()
  }, 30_000)

  it("lists the first-start catalog: tiny-lm and tiny-encoder in FP32, INT8 and INT4", async () => {
    const { errors, page } = await openDashboard()
    const models = page.getByTestId("models")
    for (const id of REFERENCE_IDS) {
      await models.getByRole("link", { name: id, exact: true }).waitFor({ timeout: 45_000 })
    }
    const rows = await models.getByTestId("model-row").allInnerTexts()
    expect(rows.find((row) => row.startsWith("tiny-lm-int4"))).toContain("INT4")
    expect(rows.find((row) => row.startsWith("tiny-encoder-int8"))).toContain("INT8")
    await screenshot(page, "dashboard-models")
    expect(errors).toEqual([])
    await page.close()
  }, 60_000)

  it("shows an event the CLI appends within a second, and explains the account it changed", async () => {
    const { errors, page } = await openDashboard()
    await page.getByTestId("status").getByText("connected").waitFor({ timeout: 10_000 })
    const minted = await exec(
      process.execPath,
      cliArgs(
        "ledger",
        "mint",
        "dashboard-probe",
        "7",
        "--node",
        node.url,
        "--key",
        path.join(node.dataDir, "node.key"),
        "--json"
      ),
      { env: { ...process.env, HOME: home, EDGE_NET_HOME: node.dataDir } }
    )
    const appendedAt = Date.now()
    const head = ((await fetch(`${node.url}/health`).then((response) => response.json())) as {
      head: { position: number }
    }).head.position
    const row = page.getByTestId("feed-row").filter({ hasText: /^\s*\d+/ }).first()
    await page.getByTestId("feed").getByRole("cell", { name: String(head), exact: true }).waitFor({ timeout: 1000 })
    expect(Date.now() - appendedAt).toBeLessThan(1000)
    const newest = await row.innerText()
    expect(newest).toMatch(/Account-/)
    expect(minted.stdout).not.toBe("")

    // The account's stream links to the audit view, which explains it from its events.
    await page.getByTestId("feed").getByRole("link", { name: /^Account-/ }).first().click()
    await page.getByTestId("audit-why").waitFor({ timeout: 5000 })
    expect(await page.getByTestId("audit-why").innerText()).not.toBe("")
    await screenshot(page, "dashboard-live-feed")
    expect(errors).toEqual([])
    await page.close()
  }, 30_000)

  it("serves the page to no other origin's script: state changes from another origin are refused", async () => {
    const response = await fetch(`${node.url}/rpc`, {
      method: "POST",
      headers: { origin: "https://evil.example", "content-type": "application/ndjson" },
      body: "{}\n"
    })
    expect(response.status).toBe(403)
  })

  // Last: it stops the node.
  it("a node stops promptly on SIGTERM while a page follows its live events", async () => {
    const { page } = await openDashboard()
    await page.getByTestId("status").getByText("connected").waitFor({ timeout: 10_000 })
    const started = Date.now()
    const code = await node.kill("SIGTERM")
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
    await page.close()
  }, 30_000)
})
