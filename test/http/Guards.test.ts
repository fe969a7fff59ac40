/**
 * The guards in front of every route, on a real server on a free loopback port: Host and Origin
 * checks, the RPC content type, body caps (not on blob uploads), Node's limits, and error replies
 * that name a log reference instead of the internal cause.
 */
import { FetchHttpClient, HttpLayerRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { Rpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Cause, Context, Effect, Exit, Layer, Logger, Schema, Scope, Stream } from "effect"
import * as http from "node:http"
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { GuardsLayer } from "../../src/http/Guards.js"
import { NodeServerLive } from "../../src/http/Server.js"
import { NodeConfig } from "../../src/layers/NodeConfig.js"

const SECRET = "SQLITE_CORRUPT: /srv/secret/journal.db is malformed"
const MAX_BODY = 64 * 1024

class TestRpcs extends RpcGroup.make(
  Rpc.make("Hello", { payload: { name: Schema.String }, success: Schema.String }),
  Rpc.make("Crash", { success: Schema.String })
) {}

const RpcRoute = RpcServer.layerHttpRouter({ group: TestRpcs, path: "/rpc", protocol: "http" }).pipe(
  Layer.provide([
    TestRpcs.toLayer({
      Hello: ({ name }) => Effect.succeed(`hello ${name}`),
      Crash: () => Effect.die(new Error(SECRET))
    }),
    RpcSerialization.layerNdjson
  ])
)

const Routes = HttpLayerRouter.addAll([
  HttpLayerRouter.route("GET", "/hello", HttpServerResponse.text("hello")),
  HttpLayerRouter.route(
    "POST",
    "/echo",
    (request) =>
      Effect.map(request.text, (text) => HttpServerResponse.unsafeJson({ bytes: text.length })).pipe(Effect.orDie)
  ),
  HttpLayerRouter.route(
    "POST",
    "/json",
    (request) => Effect.map(Effect.orDie(request.json), (body) => HttpServerResponse.unsafeJson(body))
  ),
  HttpLayerRouter.route("GET", "/boom", Effect.die(new Error(SECRET))),
  HttpLayerRouter.route(
    "PUT",
    "/v1/blobs/:digest",
    (request) =>
      Stream.runFold(request.stream, 0, (total, chunk) => total + chunk.length).pipe(
        Effect.map((bytes) => HttpServerResponse.unsafeJson({ bytes }, { status: 201 })),
        Effect.orDie
      )
  )
])

const logs: Array<string> = []
const captureLogs = Logger.replace(
  Logger.defaultLogger,
  Logger.make(({ annotations, message }) => {
    logs.push(`${JSON.stringify(message)} ${JSON.stringify(Object.fromEntries(annotations))}`)
  })
)

const TestServer = HttpLayerRouter.serve(Layer.mergeAll(Routes, RpcRoute, GuardsLayer), {
  disableLogger: true,
  disableListenLog: true
}).pipe(
  Layer.provideMerge(NodeServerLive),
  Layer.provide(NodeConfig.layer({
    dataDir: "/nonexistent",
    host: "127.0.0.1",
    port: 0,
    synchronous: "normal",
    allowedHosts: ["node.lan"],
    httpLimits: { maxBodyBytes: MAX_BODY, maxHeaderBytes: 4096 }
  })),
  Layer.provide(captureLogs)
)

let scope: Scope.CloseableScope
let port = 0
beforeAll(async () => {
  scope = await Effect.runPromise(Scope.make())
  const context = await Effect.runPromise(Layer.buildWithScope(TestServer, scope))
  const address = Context.get(context, HttpServer.HttpServer).address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  port = address.port
})
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** node:http, which (unlike fetch) sends whatever Host it is given, as a rebinding page's browser would. */
const send = (method: string, path: string, headers: Record<string, string> = {}, body?: string | Buffer) =>
  new Promise<Reply>((resolve, reject) => {
    const request = http.request({
      host: "127.0.0.1",
      port,
      method,
      path,
      headers: { host: `127.0.0.1:${port}`, ...headers }
    }, (response) => {
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (chunk) => (text += chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }))
    })
    request.on("error", reject)
    request.end(body)
  })

/** Raw bytes over TCP, for requests no HTTP client would send. */
const raw = (bytes: string) =>
  new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1", () => socket.write(bytes))
    let text = ""
    socket.setEncoding("utf8")
    socket.on("data", (chunk) => (text += chunk))
    socket.on("end", () => resolve(text))
    socket.on("error", reject)
    // A kept-alive connection never ends by itself: one answer is all we wait for.
    setTimeout(() => (socket.destroy(), resolve(text)), 1_000)
  })

const rpcLine = (tag: string, payload: unknown) =>
  `${JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] })}\n`
const rpcHeaders = { "content-type": "application/ndjson" }

const rpcClient = () =>
  RpcClient.make(TestRpcs).pipe(
    Effect.provide(
      RpcClient.layerProtocolHttp({ url: `http://127.0.0.1:${port}/rpc` }).pipe(
        Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson])
      )
    )
  )

const oneLineError = (body: string) => {
  expect(body.includes("\n")).toBe(false)
  return (JSON.parse(body) as { error: string }).error
}

describe("host and origin", () => {
  it("lets @effect/rpc's HTTP client and plain reads through", async () => {
    const greeting = await Effect.runPromise(
      Effect.scoped(Effect.flatMap(rpcClient(), (client) => client.Hello({ name: "node" })))
    )
    expect(greeting).toBe("hello node")
    expect((await send("GET", "/hello")).body).toBe("hello")
  })

  it("answers only to its own names, on its own port (DNS rebinding)", async () => {
    for (const host of ["localhost", "127.0.0.1", "[::1]", "node.lan"]) {
      expect((await send("GET", "/hello", { host: `${host}:${port}` })).status).toBe(200)
    }
    const rebound = await send("GET", "/hello", { host: `attacker.example:${port}` })
    expect(rebound.status).toBe(421)
    expect(oneLineError(rebound.body)).toContain("does not answer to Host")
    expect((await send("GET", "/hello", { host: `127.0.0.1:${port + 1}` })).status).toBe(421)
    expect(
      (await send("POST", "/rpc", { ...rpcHeaders, host: "attacker.example" }, rpcLine("Hello", { name: "x" }))).status
    ).toBe(421)
  })

  it("refuses state changes from another origin or site, and accepts its own origin", async () => {
    const foreign = await send("POST", "/echo", { origin: "https://attacker.example" }, "{}")
    expect(foreign.status).toBe(403)
    expect(oneLineError(foreign.body)).toBe("a request from another origin cannot change state on this node")
    expect((await send("POST", "/echo", { origin: "null" }, "{}")).status).toBe(403)
    expect((await send("POST", "/echo", { "sec-fetch-site": "cross-site" }, "{}")).status).toBe(403)
    expect((await send("POST", "/echo", { "sec-fetch-site": "same-site" }, "{}")).status).toBe(403)
    expect(
      (await send("POST", "/echo", { origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin" }, "{}"))
        .status
    ).toBe(200)
    expect(
      (await send("POST", "/echo", { host: `localhost:${port}`, origin: `http://localhost:${port}` }, "{}")).status
    ).toBe(200)
    // Reads are public: a foreign page may GET (without CORS it cannot read the answer).
    expect((await send("GET", "/hello", { origin: "https://attacker.example" })).status).toBe(200)
  })

  it("takes /rpc only as NDJSON, with no CORS for a page to lean on", async () => {
    const simple = await send("POST", "/rpc", { "content-type": "text/plain" }, rpcLine("Hello", { name: "x" }))
    expect(simple.status).toBe(415)
    expect(oneLineError(simple.body)).toContain("application/ndjson")
    const preflight = await send("OPTIONS", "/rpc", {
      origin: "https://attacker.example",
      "access-control-request-method": "POST"
    })
    expect(preflight.headers["access-control-allow-origin"]).toBeUndefined()
    expect(preflight.headers["access-control-allow-methods"]).toBeUndefined()
    const answered = await send("POST", "/rpc", rpcHeaders, rpcLine("Hello", { name: "x" }))
    expect(answered.headers["access-control-allow-origin"]).toBeUndefined()
  })
})

describe("bounded requests", () => {
  it("refuses a body over the cap before reading it, on every route but blob uploads", async () => {
    const big = Buffer.alloc(MAX_BODY + 1, 0x61)
    const echo = await send("POST", "/echo", {}, big)
    expect(echo.status).toBe(413)
    expect(oneLineError(echo.body)).toBe(`request body over ${MAX_BODY} bytes`)
    expect((await send("POST", "/rpc", rpcHeaders, big)).status).toBe(413)
    expect((await send("POST", "/echo", {}, Buffer.alloc(MAX_BODY, 0x61))).status).toBe(200)
    const blob = await send("PUT", "/v1/blobs/sha256-abc", {}, Buffer.alloc(4 * MAX_BODY, 1))
    expect(blob.status).toBe(201)
    expect(JSON.parse(blob.body)).toEqual({ bytes: 4 * MAX_BODY })
  })

  it("answers a body a route cannot read with one line: 413 past the cap, 400 when broken", async () => {
    const broken = await send("POST", "/json", { "content-type": "application/json" }, "{not json")
    expect(broken.status).toBe(400)
    expect(oneLineError(broken.body)).toBe("the request body could not be read")
    const reply = await raw(
      `POST /json HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${(MAX_BODY + 10).toString(16)}\r\n${"a".repeat(MAX_BODY + 10)}\r\n0\r\n\r\n`
    )
    expect(reply === "" || /^HTTP\/1\.1 413 [^]*\{"error":"request body over \d+ bytes"\}$/.test(reply)).toBe(true)
  })

  it("counts a chunked body while reading it", async () => {
    const reply = await raw(
      `POST /rpc HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/ndjson\r\nTransfer-Encoding: chunked\r\n\r\n` +
        `${(MAX_BODY + 10).toString(16)}\r\n${"a".repeat(MAX_BODY + 10)}\r\n0\r\n\r\n`
    )
    // Past the cap the server stops reading and drops the connection (or answers 413 if it could).
    expect(reply === "" || reply.startsWith("HTTP/1.1 413")).toBe(true)
    expect((await send("GET", "/hello")).status).toBe(200)
  })

  it("answers requests without headers, or broken ones, with one line of JSON", async () => {
    const bare = await raw("GET /hello HTTP/1.0\r\n\r\n")
    expect(bare).toMatch(/^HTTP\/1\.1 400 /)
    expect(bare.endsWith("{\"error\":\"missing Host header\"}")).toBe(true)
    expect(await raw("GET /hello HTTP/1.1\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 [^]*\{"error":"missing Host header"\}/)
    expect(await raw("NOT HTTP AT ALL\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 [^]*\{"error":"malformed HTTP request"\}$/)
    const huge = await raw(`GET /hello HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nX-Big: ${"b".repeat(8192)}\r\n\r\n`)
    expect(huge).toMatch(/^HTTP\/1\.1 431 [^]*\{"error":"request headers too large"\}$/)
  })

  it("refuses RPC messages the RPC server could not read (no headers, not JSON) with 400", async () => {
    const headerless = await send(
      "POST",
      "/rpc",
      rpcHeaders,
      `${JSON.stringify({ _tag: "Request", id: "1", tag: "Hello", payload: { name: "x" } })}\n`
    )
    expect(headerless.status).toBe(400)
    expect(oneLineError(headerless.body)).toContain("RPC message 1 is not an @effect/rpc message")
    expect((await send("POST", "/rpc", rpcHeaders, "garbage\n")).status).toBe(400)
    expect((await send("POST", "/rpc", rpcHeaders, "")).status).toBe(400)
    expect((await send("POST", "/rpc", rpcHeaders, rpcLine("Hello", { name: "x" }).trim())).status).toBe(400)
  })
})

describe("error replies", () => {
  it("answers a defect with a reference, logs the cause under it, and echoes nothing internal", async () => {
    const reply = await send("GET", "/boom")
    expect(reply.status).toBe(500)
    const body = JSON.parse(reply.body) as { error: string; ref: string }
    expect(body).toEqual({ error: "internal error", ref: expect.stringMatching(/^[0-9a-f]{8}$/) })
    expect(logs.some((line) => line.includes(body.ref) && line.includes(SECRET))).toBe(true)
    const missing = await send("GET", "/nothing-here")
    expect(missing.status).toBe(404)
    expect(oneLineError(missing.body)).toBe("not found")
  })

  it("gives an RPC client a reference for a handler's defect, not its message", async () => {
    const exit = await Effect.runPromise(
      Effect.scoped(Effect.flatMap(rpcClient(), (client) => Effect.exit(client.Crash())))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    const text = Exit.isFailure(exit) ? Cause.pretty(exit.cause) : ""
    expect(text).not.toContain("SQLITE")
    const ref = /internal error \(ref ([0-9a-f]{8})\)/.exec(text)?.[1]
    expect(ref).toBeDefined()
    expect(logs.some((line) => line.includes(ref!) && line.includes(SECRET))).toBe(true)
  })
})
