/**
 * A GET over plain HTTP/1.1 for bulk bodies, on a bare TCP socket. The socket reads into one buffer
 * that is reused for every read (net's `onread`), and the body is copied from it into recycled 1 MiB
 * batches (ChunkPool.ts): no Buffer per 64 KiB read, no HTTP parser or Readable stream per chunk, no
 * timer refreshed per read. On a 512 MiB pull over loopback, node:http's client cost the main thread about 2.6 s a GiB
 * (socketOnData, timers, a Buffer per read and the GC behind them).
 *
 * Only what a range request to a CDN, a gateway or a node answers is read here: a status line,
 * headers and a body of known Content-Length. Anything else (chunked bodies, a body with no length)
 * is `unreadable`, and the caller asks again with node:http.
 */
import * as net from "node:net"
import { CHUNK_BYTES, lend, seal, takeBuffer } from "./ChunkPool.js"

/** The head of an answer and its body, a batch of bytes at a time; `undefined` once the body is whole or cut short. */
export interface RawAnswer {
  readonly status: number
  readonly header: (name: string) => string | undefined
  readonly body: AsyncIterator<Uint8Array>
  /** Drops the connection (a body not wanted, say a redirect's). */
  readonly close: () => void
}

/** An answer this reader does not read (a chunked body, no Content-Length): ask again with node:http. */
export class Unreadable extends Error {}

const READ_BYTES = 64 * 1024
const MAX_HEAD_BYTES = 64 * 1024
// Batches read ahead of the consumer before the socket is paused (TCP then slows the sender).
const READ_AHEAD_BATCHES = 2

const parseHead = (text: string) => {
  const lines = text.split("\r\n")
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]!)
  if (status === null) throw new Error(`not an HTTP/1.1 answer: ${JSON.stringify(lines[0]!.slice(0, 80))}`)
  const headers = new Map<string, string>()
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":")
    if (colon <= 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    const seen = headers.get(name)
    headers.set(name, seen === undefined ? value : `${seen}, ${value}`)
  }
  return { status: Number(status[1]), headers }
}

/**
 * GET `url` (http: only) with `headers`, the connection closed after the answer. `signal` aborts: a
 * request still waiting for its answer fails, a body being read ends early (its reader sees fewer bytes
 * than it asked for), as with node:http.
 */
export const rawGet = (url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<RawAnswer> =>
  new Promise<RawAnswer>((resolve, reject) => {
    if (url.protocol !== "http:") return reject(new Error(`rawGet reads http: only, not ${url.protocol}`))
    if (signal.aborted) return reject(new Error("aborted"))
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname
    const port = url.port === "" ? 80 : Number(url.port)

    let head: Buffer | undefined = Buffer.alloc(0) // the answer's head while it comes in
    let answered = false
    let remaining = 0 // body bytes still to come
    let batch: Buffer | undefined // the buffer being filled: `filled` bytes of it, the first `lentUpTo` lent
    let filled = 0
    let lentUpTo = 0
    const ready: Array<Buffer> = [] // the ends of full buffers, not taken yet
    let ended = false
    // Set when a read callback answered false: net stops reading but does not mark the socket paused.
    let paused = false
    let failure: Error | undefined
    let waiter: { resolve: (step: IteratorResult<Uint8Array>) => void; reject: (error: Error) => void } | undefined

    const settleWaiter = () => {
      if (waiter === undefined) return
      const taken = take()
      if (taken !== undefined) {
        const { resolve: wake } = waiter
        waiter = undefined
        wake({ done: false, value: taken })
      } else if (failure !== undefined) {
        const { reject: fail } = waiter
        waiter = undefined
        fail(failure)
      } else if (ended) {
        const { resolve: wake } = waiter
        waiter = undefined
        wake({ done: true, value: undefined })
      }
    }
    /** The oldest bytes not taken: of a full buffer, else what the current one holds so far, else nothing. */
    const take = (): Buffer | undefined => {
      const whole = ready.shift()
      if (whole !== undefined) {
        if (paused && !ended) {
          paused = false
          socket.resume()
        }
        return whole
      }
      if (batch !== undefined && filled > lentUpTo) {
        const part = lend(batch, lentUpTo, filled)
        lentUpTo = filled
        return part
      }
      return undefined
    }
    const finish = (error?: Error) => {
      if (ended) return
      ended = true
      if (error !== undefined) failure = error
      signal.removeEventListener("abort", abort)
      if (batch !== undefined) {
        // What arrived and was not taken is still handed over below; the buffer takes nothing more.
        if (filled > lentUpTo) ready.push(lend(batch, lentUpTo, filled))
        seal(batch)
        batch = undefined
      }
      socket.destroy()
      if (!answered) reject(failure ?? new Error("the connection closed before an answer"))
      settleWaiter()
    }
    const abort = () => {
      if (!answered) failure = new Error("aborted")
      finish()
    }

    /** Copies body bytes out of the read buffer; false when enough is waiting and the socket should pause. */
    const body = (bytes: Buffer): boolean => {
      let rest = bytes.subarray(0, Math.min(bytes.length, remaining))
      while (rest.length > 0) {
        batch ??= takeBuffer()
        const copied = rest.copy(batch, filled, 0, Math.min(rest.length, remaining))
        filled += copied
        remaining -= copied
        rest = rest.subarray(copied)
        if (filled === CHUNK_BYTES) {
          if (filled > lentUpTo) ready.push(lend(batch, lentUpTo, filled))
          seal(batch)
          batch = undefined
          filled = 0
          lentUpTo = 0
        }
      }
      if (remaining === 0) finish()
      else settleWaiter()
      paused = ready.length >= READ_AHEAD_BATCHES && waiter === undefined
      return !paused
    }

    const onHead = (bytes: Buffer): boolean => {
      // Copied: the read buffer is overwritten by the next read.
      head = Buffer.concat([head ?? Buffer.alloc(0), bytes])
      const end = head.indexOf("\r\n\r\n")
      if (end < 0) {
        if (head.length > MAX_HEAD_BYTES) finish(new Error(`an answer head longer than ${MAX_HEAD_BYTES} bytes`))
        return true
      }
      let parsed: ReturnType<typeof parseHead>
      try {
        parsed = parseHead(head.subarray(0, end).toString("latin1"))
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)))
        return false
      }
      const { headers: answerHeaders, status } = parsed
      const length = answerHeaders.get("content-length")
      const known = !answerHeaders.has("transfer-encoding") && length !== undefined && /^\d+$/.test(length)
      // Only a 2xx body is read by the callers: any other answer is its status and headers.
      const ok = status >= 200 && status < 300
      if (ok && !known) {
        finish(new Unreadable("the answer has no Content-Length"))
        return false
      }
      const rest = head.subarray(end + 4)
      head = undefined
      remaining = ok ? Number(length) : 0
      answered = true
      resolve({
        status,
        header: (name) => answerHeaders.get(name.toLowerCase()),
        close: () => finish(),
        body: {
          next: () =>
            new Promise<IteratorResult<Uint8Array>>((resolveStep, rejectStep) => {
              if (waiter !== undefined) return rejectStep(new Error("one read at a time"))
              waiter = { resolve: resolveStep, reject: rejectStep }
              settleWaiter()
            })
        }
      })
      if (remaining === 0) {
        finish()
        return false
      }
      return body(rest)
    }

    const read = Buffer.allocUnsafe(READ_BYTES)
    const socket = net.connect({
      host,
      port,
      onread: {
        buffer: read,
        callback: (length) => {
          const bytes = read.subarray(0, length)
          return answered ? body(bytes) : onHead(bytes)
        }
      }
    })
    socket.setNoDelay(true)
    socket.once("connect", () => {
      const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, "Connection: close"]
      for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
      socket.write(`${lines.join("\r\n")}\r\n\r\n`)
    })
    socket.on("error", (error) => finish(error))
    // The end of the connection before the whole body: the reader sees the body cut short.
    socket.on("close", () => finish())
    signal.addEventListener("abort", abort, { once: true })
  })
