import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { CHUNK_BYTES, giveBack, lend, seal, takeBuffer } from "../../src/content/ChunkPool.js"
import { rawGet, Unreadable } from "../../src/content/RawHttp.js"
import { httpSource } from "../../src/content/Sources.js"

const BODY = crypto.randomBytes(3 * CHUNK_BYTES + 12_345)

/** A loopback server answering each path as the test wants; closed with the scope. */
const serve = (handler: http.RequestListener) =>
  Effect.acquireRelease(
    Effect.async<http.Server>((resume) => {
      const server = http.createServer(handler)
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        })
      )
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`))

/** Every byte of the body, and the sizes of the pieces it came in. */
const readAll = async (body: AsyncIterator<Uint8Array>) => {
  const pieces: Array<Uint8Array> = []
  for (let step = await body.next(); step.done !== true; step = await body.next()) pieces.push(Buffer.from(step.value))
  return { bytes: Buffer.concat(pieces), sizes: pieces.map((piece) => piece.length) }
}

const rangeOf = (source: ReturnType<typeof httpSource>, start: number, end: number) =>
  Stream.runCollect(source.fetchRange!(start, end)).pipe(
    Effect.map((chunks) => Buffer.concat(Chunk.toReadonlyArray(chunks).map((chunk) => Buffer.from(chunk))))
  )

describe("RawHttp", () => {
  it.scopedLive("reads a body of known length in pieces of at most 1 MiB, with its status and headers", () =>
    Effect.gen(function*() {
      const base = yield* serve((_, response) => {
        response.writeHead(206, { "content-length": BODY.length, "content-range": `bytes 0-${BODY.length - 1}/*` })
        response.end(BODY)
      })
      const answer = yield* Effect.promise(() => rawGet(new URL(`${base}/blob`), {}, new AbortController().signal))
      expect(answer.status).toBe(206)
      expect(answer.header("Content-Range")).toBe(`bytes 0-${BODY.length - 1}/*`)
      const { bytes, sizes } = yield* Effect.promise(() => readAll(answer.body))
      expect(bytes.equals(BODY)).toBe(true)
      expect(Math.max(...sizes)).toBeLessThanOrEqual(CHUNK_BYTES)
    }))

  it.scopedLive("refuses a chunked body as Unreadable; a source then reads it with node:http", () =>
    Effect.gen(function*() {
      const base = yield* serve((_, response) => {
        response.writeHead(200) // no Content-Length: Node sends the body chunked
        response.write(BODY.subarray(0, 1000))
        response.end(BODY.subarray(1000))
      })
      const refused = yield* Effect.promise(() =>
        rawGet(new URL(`${base}/blob`), {}, new AbortController().signal).then(() => undefined, (error) => error)
      )
      expect(refused).toBeInstanceOf(Unreadable)
      const bytes = yield* rangeOf(httpSource(`${base}/blob`), 0, BODY.length)
      expect(bytes.equals(BODY)).toBe(true)
    }))

  it.scopedLive("a source follows redirects, and reports an error status without reading its body", () =>
    Effect.gen(function*() {
      const base = yield* serve((request, response) => {
        if (request.url === "/old") response.writeHead(302, { location: "/new", "content-length": 0 }).end()
        else if (request.url === "/busy") response.writeHead(503).end("come back later")
        else response.writeHead(200, { "content-length": BODY.length }).end(BODY)
      })
      expect((yield* rangeOf(httpSource(`${base}/old`), 0, BODY.length)).equals(BODY)).toBe(true)
      const busy = yield* Effect.flip(rangeOf(httpSource(`${base}/busy`, "busy"), 0, 10))
      expect(busy.message).toContain("HTTP 503")
    }))

  it.scopedLive("a body cut short ends early; the source reports how many bytes came", () =>
    Effect.gen(function*() {
      const base = yield* serve((_, response) => {
        response.writeHead(200, { "content-length": BODY.length })
        response.write(BODY.subarray(0, 100_000), () => response.destroy())
      })
      const answer = yield* Effect.promise(() => rawGet(new URL(`${base}/blob`), {}, new AbortController().signal))
      const { bytes } = yield* Effect.promise(() => readAll(answer.body))
      expect(bytes.equals(BODY.subarray(0, 100_000))).toBe(true)
      const cut = yield* Effect.flip(rangeOf(httpSource(`${base}/blob`, "cut"), 0, BODY.length))
      expect(cut.message).toContain(`the response ended after 100000 of ${BODY.length} bytes`)
    }))

  it.scopedLive("an abort fails a request still waiting for its answer, and ends a body being read", () =>
    Effect.gen(function*() {
      const base = yield* serve((request, response) => {
        if (request.url === "/silent") return // never answers
        response.writeHead(200, { "content-length": BODY.length })
        response.write(BODY.subarray(0, 5000)) // and then nothing more
      })
      const waiting = new AbortController()
      const pending = rawGet(new URL(`${base}/silent`), {}, waiting.signal).then(() => "answered", (error) => error)
      waiting.abort()
      expect(((yield* Effect.promise(() => pending)) as Error).message).toBe("aborted")

      const reading = new AbortController()
      const answer = yield* Effect.promise(() => rawGet(new URL(`${base}/stalls`), {}, reading.signal))
      const first = yield* Effect.promise(() => answer.body.next())
      expect(first.done).toBe(false)
      const next = answer.body.next()
      reading.abort()
      expect((yield* Effect.promise(() => next)).done).toBe(true)
    }))
})

describe("ChunkPool", () => {
  it("reuses a sealed buffer once every lent byte is given back, and not before", () => {
    const buffer = takeBuffer()
    const first = lend(buffer, 0, 1000)
    const second = lend(buffer, 1000, 3000)
    seal(buffer)
    giveBack(first)
    // 2,000 bytes are still out: a new buffer is not this one.
    const other = takeBuffer()
    expect(other.buffer).not.toBe(buffer.buffer)
    // Pieces of a piece add up: the second one given back in two parts.
    giveBack(second.subarray(0, 500))
    giveBack(second.subarray(500))
    expect(takeBuffer().buffer).toBe(buffer.buffer)
  })

  it("never reuses a buffer the reader has not sealed, nor bytes that were not lent from it", () => {
    const buffer = takeBuffer()
    const piece = lend(buffer, 0, 10)
    giveBack(piece)
    giveBack(Buffer.alloc(10))
    expect(takeBuffer().buffer).not.toBe(buffer.buffer)
  })
})
