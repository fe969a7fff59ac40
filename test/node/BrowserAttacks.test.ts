/**
 * What a web page the operator opens, or a client with a broken request, can do to a real node
 * process: cross-origin and DNS-rebinding requests are refused and leave the journal as it was,
 * a huge body is refused at once, and no error reply carries the node's internals.
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

let node: RunningNode
let port = 0
beforeAll(async () => {
  node = await startNode(tempDir("browser-attacks-"))
  port = Number(new URL(node.url).port)
}, 60_000)
afterAll(async () => {
  await node?.kill("SIGTERM")
})

const mintLine = `${
  JSON.stringify({
    _tag: "Request",
    id: "1",
    tag: "LedgerMint",
    payload: { account: "mallory", amount: "1000000" },
    headers: []
  })
}\n`

const head = async () =>
  ((await (await fetch(`${node.url}/health`)).json()) as { head: { position: number; hash: string } }).head

interface Reply {
  readonly status: number
  readonly body: string
}

/** node:http sends the Host it is given, as a browser does for a DNS-rebinding page. */
const send = (method: string, path: string, headers: Record<string, string>, body?: string) =>
  new Promise<Reply>((resolve, reject) => {
    const request = http.request({ host: "127.0.0.1", port, method, path, headers }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }))
    })
    request.on("error", reject)
    request.end(body)
  })

const raw = (bytes: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes))
    let text = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk) => (text += chunk))
    socket.on("end", () => resolve(text))
    socket.on("error", reject)
  })

/** Resident memory of the node process, in bytes (Linux). */
const residentBytes = () => {
  const status = fs.readFileSync(`/proc/${node.process.pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

const errorOf = (body: string) => {
  expect(body.includes("\n")).toBe(false)
  return (JSON.parse(body) as { error: string }).error
}

describe("a web page against a node on loopback", () => {
  it("cannot mint with a cross-origin text/plain POST (what fetch with mode no-cors sends)", async () => {
    const before = await head()
    const fromPage = await send("POST", "/rpc", {
      host: `127.0.0.1:${port}`,
      origin: "https://attacker.example",
      "sec-fetch-site": "cross-site",
      "content-type": "text/plain;charset=UTF-8"
    }, mintLine)
    expect(fromPage.status).toBe(403)
    expect(errorOf(fromPage.body)).toContain("cannot change state")
    // A browser that strips Origin still sends text/plain for a simple request.
    const withoutOrigin = await send("POST", "/rpc", {
      host: `127.0.0.1:${port}`,
      "content-type": "text/plain;charset=UTF-8"
    }, mintLine)
    expect(withoutOrigin.status).toBe(415)
    expect(await head()).toEqual(before)
  })

  it("cannot drive or read the node through DNS rebinding (a foreign Host)", async () => {
    const before = await head()
    const rebound = {
      host: `attacker.example:${port}`,
      origin: `http://attacker.example:${port}`,
      "content-type": "application/ndjson"
    }
    const posted = await send("POST", "/rpc", rebound, mintLine)
    expect(posted.status).toBe(421)
    expect(errorOf(posted.body)).toContain("does not answer to Host")
    expect((await send("GET", "/health", { host: `attacker.example:${port}` })).status).toBe(421)
    expect((await send("GET", "/v1/events", { host: `attacker.example:${port}` })).status).toBe(421)
    expect(await head()).toEqual(before)
  })
})

describe("oversized and broken requests", () => {
  it("refuses a 50 MB body to /rpc quickly, without holding it in memory", async () => {
    const before = residentBytes()
    const started = Date.now()
    const response = await fetch(`${node.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson" },
      body: Buffer.alloc(50 * 1024 * 1024, 0x61)
    })
    expect(response.status).toBe(413)
    expect(errorOf(await response.text())).toBe("request body over 1048576 bytes")
    expect(Date.now() - started).toBeLessThan(10_000)
    // Streamed without a length, it is counted while read and cut off at the cap.
    const chunk = Buffer.alloc(1024 * 1024, 0x61)
    let sent = 0
    const streamed = await fetch(`${node.url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson" },
      body: new ReadableStream({
        pull: (controller) => (++sent > 50 ? controller.close() : controller.enqueue(chunk))
      }),
      duplex: "half"
    } as RequestInit).then((reply) => reply.status, () => "reset")
    expect([413, "reset"]).toContain(streamed)
    expect(residentBytes() - before).toBeLessThan(40 * 1024 * 1024)
    expect((await fetch(`${node.url}/health`)).status).toBe(200)
  }, 30_000)

  it("answers a request without headers with 400 and one line, not an empty 500", async () => {
    const reply = await raw("POST /rpc HTTP/1.0\r\n\r\n")
    expect(reply).toMatch(/^HTTP\/1\.1 400 /)
    expect(reply.endsWith("{\"error\":\"missing Host header\"}")).toBe(true)
    const noRpcHeaders = await send(
      "POST",
      "/rpc",
      { host: `127.0.0.1:${port}`, "content-type": "application/ndjson" },
      `${JSON.stringify({ _tag: "Request", id: "1", tag: "NodeInfo", payload: {} })}\n`
    )
    expect(noRpcHeaders.status).toBe(400)
    expect(errorOf(noRpcHeaders.body)).toContain("is not an @effect/rpc message")
  })

  it("does not echo internal messages: a parser's error or an RPC defect", async () => {
    const garbage = await send(
      "POST",
      "/rpc",
      { host: `127.0.0.1:${port}`, "content-type": "application/ndjson" },
      "garbage\n"
    )
    expect(garbage.status).toBe(400)
    expect(garbage.body).not.toContain("Unexpected token")
    const unknown = await send(
      "POST",
      "/rpc",
      { host: `127.0.0.1:${port}`, "content-type": "application/ndjson" },
      `${JSON.stringify({ _tag: "Request", id: "1", tag: "NoSuchRpc", payload: {}, headers: [] })}\n`
    )
    expect(unknown.status).toBe(200)
    expect(unknown.body).not.toContain("NoSuchRpc")
    const ref = /internal error \(ref ([0-9a-f]{8})\)/.exec(unknown.body)?.[1]
    expect(ref).toBeDefined()
    // The operator finds the cause in the node's log under the same reference.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(node.output()).toContain(ref)
  })
})
