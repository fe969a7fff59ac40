/**
 * The dashboard in real headless Chromium (Debian's chromium, driven by playwright-core) against a
 * real node process that published its first-start models: the page loads without a console error,
 * lists the catalog, and shows an event the CLI appends within a second. Each test saves a screenshot
 * under test-results/browser/.
 */
import { Effect, Layer } from "effect"
import { execFile } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import type { Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { OperationId } from "../../src/domain/Money.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { launchChromium, screenshot, watchedPage } from "../support/Chromium.js"
import { cliArgs, type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
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

type NodeRpc = Effect.Effect.Success<typeof nodeRpcClient>

/** Commands signed in the test over RPC: how the economy panels get something to show. */
const rpc = <A, E>(use: (client: NodeRpc) => Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, use)).pipe(
      Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer))
    )
  )

/** A page on the dashboard, with every console error and uncaught exception it shows collected. */
const openDashboard = async () => {
  const watched = await watchedPage(browser, 1400, 1000)
  await watched.page.goto(`${node.url}/`)
  return watched
}

beforeAll(async () => {
  const [started, launched] = await Promise.all([
    startNode(tempDir("dashboard-node-"), undefined, { EDGE_NET_FIRST_START_MODELS: "on", HOME: home }),
    launchChromium()
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
    // Every manifest's Ed25519 signature is checked in the page, and each is the node's own.
    await expect.poll(() => models.getByTestId("signature").allInnerTexts(), { timeout: 10_000 }).toEqual(
      rows.map(() => "✓ 1 valid · this node")
    )
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

  it("shows the pool's price after swaps, an open auction and a proposal, and explains the auction", async () => {
    const operator = operatorKeyOf(node.dataDir)
    const [poster, trader, carol] = [testKey(), testKey(), testKey()]
    const operation = OperationId.make
    await rpc((client) =>
      Effect.gen(function*() {
        for (const [who, amount] of [[poster, 10_000n], [trader, 5_000n], [carol, 1_000n]] as const) {
          yield* as(operator)(
            client.LedgerMint({ account: who.account, amount, operationId: operation(`mint-${who.account}`) })
          )
        }
        yield* as(carol)(client.Stake({ node: carol.account, amount: 200n, operationId: operation("stake-carol") }))
        yield* as(operator)(
          client.MarketIssueCompute({ node: poster.account, units: 100_000n, operationId: operation("issue-poster") })
        )
        yield* as(poster, { cosigners: [operator] })(
          client.MarketAddLiquidity({
            provider: poster.account,
            computeDesired: 100_000n,
            ruvDesired: 5_000n,
            orderId: operation("lp-poster")
          })
        )
        for (const amountIn of [1_000n, 600n]) {
          yield* as(trader)(
            client.MarketBuy({ trader: trader.account, trade: { exact: "in", amountIn, minAmountOut: 0n } })
          )
        }
        yield* as(poster)(client.AuctionOpen({
          auctionId: "render-1",
          poster: poster.account,
          task: { model: "tiny-lm", input: "render-1" },
          maxPrice: 500n,
          minBids: 1,
          commitPeriodMs: 600_000,
          revealPeriodMs: 600_000,
          leasePeriodMs: 600_000
        }))
        yield* as(carol)(client.GovernancePropose({
          proposer: carol.account,
          parameter: "feeBps",
          value: 40n,
          description: "a lower fee for small jobs"
        }))
      })
    )
    const { errors, page } = await openDashboard()
    const market = page.getByTestId("market")
    await market.getByTestId("price-chart").locator("canvas").waitFor({ timeout: 10_000 })
    // The price line fills in from its own read, which may land after the chart's.
    await expect.poll(() => market.getByTestId("pool-price").innerText(), { timeout: 10_000 })
      .toMatch(/^[\d.]+ rUv per compute unit$/)
    await page.getByTestId("governance").getByText("a lower fee for small jobs").waitFor({ timeout: 10_000 })
    await market.getByRole("link", { name: "render-1" }).click()
    await page.getByTestId("audit-why").waitFor({ timeout: 5000 })
    expect(await page.getByTestId("audit-why").innerText()).toContain("render-1")
    await screenshot(page, "dashboard-market")
    expect(errors).toEqual([])
    await page.close()
  }, 60_000)

  // Last: it stops the node.
  it("a node stops promptly on SIGTERM while a page follows its live events", async () => {
    const { page } = await openDashboard()
    await page.getByTestId("status").getByText("connected").waitFor({ timeout: 10_000 })
    const started = Date.now()
    const code = await Promise.race([
      node.kill("SIGTERM"),
      new Promise<string>((resolve) =>
        setTimeout(() => resolve(`still running:\n${node.output().slice(-3000)}`), 10_000)
      )
    ])
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
    await page.close()
  }, 30_000)
})
