/**
 * Every program in examples/ run as a user would run it (`node --import tsx examples/X.ts`, importing
 * `edge-net` by its package name, resolved to the sources by tsconfig's paths), against a real node
 * process where it needs one: the embedding service built from two layers, the auditor that follows
 * a node's auctions, and the optimize-then-publish script.
 */
import { Effect, Layer } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { commitmentOf } from "../../src/actors/market/TaskAuction.js"
import { AccountId, OperationId } from "../../src/domain/Money.js"
import { listModels } from "../../src/http/RegistryClient.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import * as InferenceSession from "../../src/sdk/InferenceSession.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { cacheReferenceModel, loaderLayer, REFERENCE } from "../support/SdkModels.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)
const example = (name: string) => ["--import", "tsx", path.join("examples", name)]

let node: RunningNode
let dataDir: string
const PERIOD = 1_500

beforeAll(async () => {
  dataDir = tempDir("examples-node-")
  node = await startNode(dataDir)
}, 60_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

/** Starts a long-running example and resolves with its first line matching `ready`. */
const startExample = (args: ReadonlyArray<string>, ready: RegExp) =>
  new Promise<{ child: ChildProcess; line: string }>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const timer = setTimeout(() => reject(new Error(`no ${ready} within 60 s:\n${output}`)), 60_000)
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const line = output.split("\n").find((candidate) => ready.test(candidate))
      if (line !== undefined) {
        clearTimeout(timer)
        resolve({ child, line })
      }
    })
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}:\n${output}`))
    })
  })

describe("examples", () => {
  it("embedding-service: a runtime of the registry and inference layers embeds as the library does", async () => {
    const folder = path.join(REFERENCE, "tiny-encoder")
    const { child, line } = await startExample(
      [...example("embedding-service.ts"), tempDir("example-embedding-"), folder, "0"],
      /^listening on /
    )
    try {
      const url = line.replace("listening on ", "").trim()
      const answer = await (await fetch(`${url}/embed`, {
        method: "POST",
        body: JSON.stringify({ text: "edge networks serve models" })
      })).json() as { model: string; version: string; embedding: Array<number> }
      const local = tempDir("example-embedding-local-")
      const expected = await Effect.runPromise(
        Effect.scoped(
          Effect.zipRight(
            cacheReferenceModel("tiny-encoder"),
            Effect.flatMap(
              InferenceSession.create("tiny-encoder"),
              (session) => session.embed("edge networks serve models")
            )
          )
        ).pipe(Effect.provide(loaderLayer(local)))
      )
      expect(answer).toMatchObject({ model: "tiny-encoder", version: "1.0.0" })
      expect(answer.embedding).toHaveLength(expected.length)
      answer.embedding.forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 5))
      const bad = await fetch(`${url}/embed`, { method: "POST", body: "{}" })
      expect(bad.status).toBe(400)
      expect(await bad.json()).toEqual({ error: "expected {\"text\": \"...\"}" })
    } finally {
      child.kill("SIGTERM")
    }
  }, 90_000)

  it(
    "follow-auctions: an auditor following the node agrees with the auction's resolution from the log alone",
    async () => {
      const auditor = startExample([...example("follow-auctions.ts"), node.url, "1"], /^auction job-1 /)
      const operator = operatorKeyOf(dataDir)
      const bidders = [testKey("bidder-a"), testKey("bidder-b")]
      const prices = [120n, 90n]
      await Effect.runPromise(
        Effect.gen(function*() {
          const rpc = yield* nodeRpcClient
          yield* as(operator)(
            rpc.LedgerMint({ account: operator.account, amount: 5_000n, operationId: OperationId.make("mint-poster") })
          )
          for (const bidder of bidders) {
            yield* as(operator)(
              rpc.LedgerMint({
                account: bidder.account,
                amount: 1_000n,
                operationId: OperationId.make(`mint-${bidder.account}`)
              })
            )
            yield* as(bidder)(
              rpc.Stake({
                node: bidder.account,
                amount: 200n,
                operationId: OperationId.make(`stake-${bidder.account}`)
              })
            )
          }
          const opened = yield* as(operator)(rpc.AuctionOpen({
            auctionId: "job-1",
            poster: operator.account,
            task: { model: "tiny-lm" },
            maxPrice: 500n,
            minBids: 2,
            commitPeriodMs: PERIOD,
            revealPeriodMs: PERIOD,
            leasePeriodMs: 60_000
          }))
          const wait = (until: number) => Effect.sleep(Math.max(0, until - Date.now() + 50))
          for (const [i, bidder] of bidders.entries()) {
            const commitment = commitmentOf({
              auctionId: "job-1",
              bidder: bidder.account,
              price: prices[i]!,
              salt: `s${i}`
            })
            yield* as(bidder)(
              rpc.AuctionCommit({ auctionId: "job-1", bidder: AccountId.make(bidder.account), commitment })
            )
          }
          yield* wait(opened.commitDeadline)
          for (const [i, bidder] of bidders.entries()) {
            yield* as(bidder)(
              rpc.AuctionReveal({
                auctionId: "job-1",
                bidder: AccountId.make(bidder.account),
                price: prices[i]!,
                salt: `s${i}`
              })
            )
          }
          yield* wait(opened.revealDeadline)
          yield* as(operator)(rpc.AuctionResolve({ auctionId: "job-1" }))
        }).pipe(Effect.scoped, Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer)))
      )
      const { child, line } = await auditor
      child.kill("SIGTERM")
      expect(line).toBe(
        `auction job-1 at position ${line.match(/position (\d+)/)![1]}: the rules agree (winner ${
          bidders[1]!.account
        }, paid 120, 2 revealed bids)`
      )
    },
    90_000
  )

  it("optimize-then-publish: the library optimizes tiny-lm and the node lists the signed INT8 result", async () => {
    const { stdout } = await exec(process.execPath, [
      ...example("optimize-then-publish.ts"),
      node.url,
      path.join(REFERENCE, "tiny-lm"),
      path.join(tempDir("example-publisher-"), "publisher.key"),
      "INT8"
    ], { timeout: 120_000 })
    expect(stdout).toMatch(/^job optimize-[0-9a-f]{12}: requested\njob optimize-[0-9a-f]{12}: completed\n/)
    expect(stdout).toMatch(/published tiny-lm-int8@1\.0\.0: \d+ -> \d+ bytes, cosine 0\.99\d+, \d file\(s\) uploaded/)
    const listed = await Effect.runPromise(listModels(node.url, {}))
    expect(listed.map((model) => model.id)).toContain("tiny-lm-int8")
    // A mode the optimizer does not know fails in one line before any work.
    await expect(exec(process.execPath, [
      ...example("optimize-then-publish.ts"),
      node.url,
      path.join(REFERENCE, "tiny-lm"),
      path.join(tempDir("example-publisher-"), "publisher.key"),
      "INT3"
    ])).rejects.toThrow(
      /\nunknown quantization INT3: expected one of INT8, INT8_DYNAMIC, INT4, GPTQ, AWQ, FP16, auto, none\n$/
    )
  }, 150_000)
})
