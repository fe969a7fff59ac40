/**
 * The node's Node.js HTTP server with bounds on what one client can hold (connections, requests per
 * connection, time to send headers and body, header bytes), and a JSON line for requests too broken
 * to reach a route.
 */
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer } from "effect"
import { createServer, type Server } from "node:http"
import type { Duplex } from "node:stream"
import type { HttpLimits } from "../layers/NodeConfig.js"

const statusLine: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  431: "Request Header Fields Too Large"
}

const rawReply = (status: number, error: string) => {
  const body = JSON.stringify({ error })
  return `HTTP/1.1 ${status} ${statusLine[status]}\r\ncontent-type: application/json\r\ncontent-length: ${
    Buffer.byteLength(body)
  }\r\nconnection: close\r\n\r\n${body}`
}

/** Node's default answer to a malformed request is a bare status line; ours says what was wrong. */
const answerClientError = (error: Error & { readonly code?: string }, socket: Duplex) => {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy()
    return
  }
  const reply = error.code === "HPE_HEADER_OVERFLOW"
    ? rawReply(431, "request headers too large")
    : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
    ? rawReply(408, "request not received in time")
    : rawReply(400, "malformed HTTP request")
  socket.end(reply)
}

/** The Node.js server under the platform's HttpServer, for the routes that need Node's own (fast paths, streams). */
export class NodeServer extends Context.Tag("edge-net/NodeServer")<NodeServer, Server>() {}

/** A server for NodeHttpServer.layer. The Host header is checked by the guards, which answer in JSON. */
export const boundedServer = (limits: HttpLimits) => (): Server => {
  const server = createServer({
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    requireHostHeader: false
  })
  server.maxConnections = limits.maxConnections
  server.maxRequestsPerSocket = limits.maxRequestsPerSocket
  server.on("clientError", answerClientError)
  return server
}

/** How long requests still running at shutdown get before their connections are closed. */
export const SHUTDOWN_GRACE_MS = 2_000

/**
 * At shutdown, connections still open after a grace period are closed: Node's close waits for every
 * response, and a request whose handler went down with the services (an RPC in flight) would hold the
 * process for ever. Built on the listening server, so released (the timer set) before it closes.
 */
export const closeLingeringConnections = Layer.scopedDiscard(
  Effect.gen(function*() {
    yield* HttpServer.HttpServer
    const server = yield* NodeServer
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS).unref()
      })
    )
  })
)
