/**
 * GET /v1/events/stream on a real node process: the journal as server-sent events, caught up from
 * `from`, then live as commands append; resumed after `Last-Event-ID`; a bad `from` is one line.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { type AccountId, OperationId } from "../../src/domain/Money.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

let node: RunningNode

beforeAll(async () => {
  node = await startNode(tempDir())
}, 60_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

interface Received {
  readonly id: string
  readonly event: string
  readonly data: { readonly position: number; readonly eventType: string; readonly streamId: string }
}

/** Reads SSE frames from `path` until `count` journal events came, then hangs up. */
const readEvents = async (path: string, count: number, headers: Record<string, string> = {}) => {
  const controller = new AbortController()
  const response = await fetch(`${node.url}${path}`, { headers, signal: controller.signal })
  expect(response.headers.get("content-type")).toBe("text/event-stream")
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const received: Array<Received> = []
  let buffer = ""
  while (received.length < count) {
    const { done, value } = await reader.read()
    if (done) break
    buffer += value
    let end: number
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const frame = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const fields = Object.fromEntries(
        frame.split("\n").filter((line) => !line.startsWith(":")).map((line) => [
          line.slice(0, line.indexOf(":")),
          line.slice(line.indexOf(":") + 2)
        ])
      )
      if (fields["event"] === "journal") {
        received.push({ id: fields["id"] ?? "", event: fields["event"], data: JSON.parse(fields["data"] ?? "{}") })
      }
    }
  }
  controller.abort()
  return received
}

const mint = (account: AccountId, operationId: string) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, (client) =>
      as(operatorKeyOf(node.dataDir))(
        client.LedgerMint({ account, amount: 5n, operationId: OperationId.make(operationId) })
      ))).pipe(Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer)))
  )

describe("the journal as server-sent events", () => {
  it("catches up from `from`, then streams what commands append, each with its position as id", async () => {
    const account = testKey().account
    const reading = readEvents("/v1/events/stream?from=1", 2)
    await new Promise((resolve) => setTimeout(resolve, 200))
    await mint(account, "sse-mint-1")
    const [founded, minted] = await reading
    expect(founded).toMatchObject({ id: "1", data: { position: 1, eventType: "NetworkFounded" } })
    expect(minted).toMatchObject({ data: { eventType: "Minted", streamId: `Account-${account}` } })
    expect(minted?.id).toBe(String(minted?.data.position))
  })

  it("resumes after Last-Event-ID, as a reconnecting browser asks", async () => {
    const [next] = await readEvents("/v1/events/stream?from=1", 1, { "last-event-id": "1" })
    expect(next?.data.position).toBe(2)
  })

  it("refuses a bad `from` with one line", async () => {
    const response = await fetch(`${node.url}/v1/events/stream?from=zero`)
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({ error: "from must be a position of at least 1, got \"zero\"" })
  })
})
