import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Stream, TestClock } from "effect"
import type { Scope } from "effect"
import { CID } from "multiformats/cid"
import { create as createDigest } from "multiformats/hashes/digest"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as ByteRate from "../../src/content/ByteRate.js"
import type { DownloadOptions, DownloadTarget, Leaf, Progress } from "../../src/content/Downloader.js"
import { download, DownloadError, partFileOf, stateFileOf } from "../../src/content/Downloader.js"
import { httpSource, ipfsGatewaySource, SourceError } from "../../src/content/Sources.js"
import { tempDir } from "../support/TempDir.js"

const PIECE = 262_144
// Not a multiple of the piece size, so the last piece is short.
const FILE_SIZE = 4 * 1024 * 1024 + 12_345

interface BlobServerOptions {
  /** Offsets of the file whose byte is inverted in every response that includes them. */
  readonly flipBytesAt?: ReadonlyArray<number>
  /** Answer every request with this status and no body. */
  readonly status?: number
  /** After this many body bytes in total, responses go silent but stay open. */
  readonly stallAfterBytes?: number
  /** After this many body bytes in total, connections are cut. */
  readonly cutAfterBytes?: number
  readonly ignoreRange?: boolean
  /** Raw blocks served at `/ipfs/{cid}?format=raw`. */
  readonly blocks?: ReadonlyMap<string, Uint8Array>
}

interface BlobServer {
  readonly url: string
  /** Body bytes written, and the request lines seen, since the start or the last reset. */
  readonly bytesServed: () => number
  readonly requests: () => ReadonlyArray<string>
  readonly reset: () => void
}

/** A loopback server for one file with Range/206 support, and the faults the downloader must survive. */
const blobServer = (file: Buffer, options: BlobServerOptions = {}): Effect.Effect<BlobServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; blob: BlobServer }>((resume) => {
      let served = 0
      let requests: Array<string> = []
      const server = http.createServer((request, response) => {
        const requestUrl = new URL(request.url ?? "/", "http://localhost")
        requests.push(`${request.method} ${requestUrl.pathname} ${request.headers.range ?? ""}`.trim())
        if (options.status !== undefined) return void response.writeHead(options.status).end()
        let body: Buffer
        let start = 0
        if (requestUrl.pathname.startsWith("/ipfs/")) {
          const block = options.blocks?.get(requestUrl.pathname.slice(6))
          if (block === undefined || requestUrl.searchParams.get("format") !== "raw") {
            return void response.writeHead(404).end()
          }
          body = Buffer.from(block)
          response.writeHead(200, { "content-type": "application/vnd.ipld.raw", "content-length": body.length })
        } else {
          const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? "")
          if (range === null || options.ignoreRange === true) {
            body = file
            response.writeHead(200, { "content-length": file.length })
          } else {
            start = Number(range[1])
            const end = Math.min(Number(range[2]), file.length - 1)
            body = file.subarray(start, end + 1)
            response.writeHead(206, {
              "content-range": `bytes ${start}-${end}/${file.length}`,
              "content-length": body.length
            })
          }
          const flips = (options.flipBytesAt ?? []).filter((offset) => start <= offset && offset < start + body.length)
          if (flips.length > 0) {
            body = Buffer.from(body)
            for (const offset of flips) body[offset - start] = body[offset - start]! ^ 0xff
          }
        }
        const limit = Math.min(options.stallAfterBytes ?? Infinity, options.cutAfterBytes ?? Infinity)
        const allowed = Math.max(0, Math.min(body.length, limit - served))
        served += allowed
        if (allowed === body.length) return void response.end(body)
        response.write(body.subarray(0, allowed), () => {
          if (options.cutAfterBytes !== undefined) response.destroy()
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({
          server,
          blob: {
            url: `http://127.0.0.1:${port}`,
            bytesServed: () => served,
            requests: () => requests,
            reset: () => {
              served = 0
              requests = []
            }
          }
        }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ blob }) => blob))

const sha256Hex = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest("hex")

/** The file's 256 KiB pieces, as the caller would read them from the file's IPFS DAG (raw leaves). */
const leavesOf = (file: Buffer): Array<Leaf> => {
  const leaves: Array<Leaf> = []
  for (let offset = 0; offset < file.length; offset += PIECE) {
    const piece = file.subarray(offset, Math.min(file.length, offset + PIECE))
    const sha256 = crypto.createHash("sha256").update(piece).digest()
    leaves.push({
      cid: CID.createV1(0x55, createDigest(0x12, sha256)).toString(),
      offset,
      length: piece.length,
      sha256
    })
  }
  return leaves
}

const fixture = (withLeaves: boolean) => {
  const file = crypto.randomBytes(FILE_SIZE)
  const target: DownloadTarget = withLeaves
    ? { sha256: sha256Hex(file), size: file.length, label: "tiny-lm@1.0.0/model.onnx", leaves: leavesOf(file) }
    : { sha256: sha256Hex(file), size: file.length, label: "tiny-lm@1.0.0/model.onnx" }
  return { file, target, partialDir: tempDir("edge-net-download-") }
}

const leftovers = (partialDir: string, sha256: string) =>
  [partFileOf(partialDir, sha256), stateFileOf(partialDir, sha256)].filter((file) => fs.existsSync(file))

const blobUrl = (server: BlobServer) => `${server.url}/tiny-lm/v1.0.0/model.onnx`

describe("Downloader", () => {
  it.scopedLive("fetches pieces from two sources at once and verifies each of them", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const cdn = yield* blobServer(file)
      const peer = yield* blobServer(file)
      const result = yield* download(target, [httpSource(blobUrl(cdn), "cdn"), httpSource(blobUrl(peer), "peer")], {
        partialDir
      })
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(result).toMatchObject({
        sha256: target.sha256,
        size: FILE_SIZE,
        bytesFetched: FILE_SIZE,
        bytesReused: 0,
        dropped: []
      })
      expect(cdn.bytesServed()).toBeGreaterThan(0)
      expect(peer.bytesServed()).toBeGreaterThan(0)
      expect(result.sources.map((source) => source.bytes)).toEqual([cdn.bytesServed(), peer.bytesServed()])
      expect(leftovers(partialDir, target.sha256)).toEqual([result.path])
    }))

  it.scopedLive("without piece hashes, parts also come from two sources and the whole file is checked", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(false)
      const cdn = yield* blobServer(file)
      const peer = yield* blobServer(file)
      const result = yield* download(target, [httpSource(blobUrl(cdn)), httpSource(blobUrl(peer))], { partialDir })
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(cdn.bytesServed() + peer.bytesServed()).toBe(FILE_SIZE)
      expect(Math.min(cdn.bytesServed(), peer.bytesServed())).toBeGreaterThan(0)
    }))

  it.scopedLive("drops a source that flips a byte, keeps its good pieces, and completes from the other", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const liar = yield* blobServer(file, { flipBytesAt: [3 * PIECE + 100] })
      const honest = yield* blobServer(file)
      const reports: Array<{ source: string; reason: string }> = []
      // One worker, and the liar first: it serves pieces 0-2 well, then a bad piece 3.
      const result = yield* download(
        target,
        [httpSource(blobUrl(liar), "liar"), httpSource(blobUrl(honest), "honest")],
        {
          partialDir,
          parallel: 1,
          onSourceDropped: (report) => reports.push(report)
        }
      )
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(reports).toEqual([{ source: "liar", reason: "sent bytes that do not match piece 3 (offset 786432)" }])
      expect(result.dropped).toEqual(reports)
      expect(honest.bytesServed()).toBe(FILE_SIZE - 3 * PIECE)
    }))

  it.scopedLive("after an interruption, a fresh call refetches nothing already verified", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const cdn = yield* blobServer(file)
      const source = httpSource(blobUrl(cdn))
      const aThirdDone = yield* Deferred.make<void>()
      const slowRun = yield* Effect.fork(download(target, [source], {
        partialDir,
        maxBytesPerSecond: 2_000_000,
        onProgress: (progress) => {
          if (progress.bytesDone >= FILE_SIZE / 3) Deferred.unsafeDone(aThirdDone, Exit.void)
        }
      }))
      yield* Deferred.await(aThirdDone)
      yield* Fiber.interrupt(slowRun)
      expect(leftovers(partialDir, target.sha256)).toHaveLength(2)

      cdn.reset()
      const result = yield* download(target, [source], { partialDir })
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(result.bytesReused).toBeGreaterThanOrEqual(FILE_SIZE / 3)
      expect(result.bytesFetched).toBe(FILE_SIZE - result.bytesReused)
      expect(cdn.bytesServed()).toBe(result.bytesFetched)
      expect(leftovers(partialDir, target.sha256)).toEqual([result.path])
    }))

  it.scopedLive("without piece hashes, resumes after every source failed midway", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(false)
      const flaky = yield* blobServer(file, { cutAfterBytes: 2_000_000 })
      const failed = yield* Effect.flip(
        download(target, [httpSource(blobUrl(flaky), "flaky")], { partialDir, retries: 0, parallel: 2 })
      )
      expect(failed.message).toMatch(/every source failed \(flaky: /)
      // Bytes were written, so the partial download is kept for the next attempt.
      expect(leftovers(partialDir, target.sha256)).toHaveLength(2)

      const steady = yield* blobServer(file)
      const result = yield* download(target, [httpSource(blobUrl(steady))], { partialDir })
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(result.bytesReused).toBeGreaterThan(0)
      expect(steady.bytesServed()).toBe(FILE_SIZE - result.bytesReused)
    }))

  it.scopedLive("drops a source that answers 404 and completes from another", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const missing = yield* blobServer(file, { status: 404 })
      const cdn = yield* blobServer(file)
      const result = yield* download(
        target,
        [httpSource(blobUrl(missing), "missing"), httpSource(blobUrl(cdn), "cdn")],
        { partialDir, retries: 1 }
      )
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(result.dropped).toEqual([{ source: "missing", reason: "HTTP 404" }])
    }))

  it.scopedLive("tries a failing source once and `retries` times more, then drops it with its last error", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const busy = yield* blobServer(file, { status: 503 })
      const error = yield* Effect.flip(
        download(target, [httpSource(blobUrl(busy), "busy")], { partialDir, retries: 2, parallel: 1 })
      )
      expect(error.message).toBe("could not download tiny-lm@1.0.0/model.onnx: every source failed (busy: HTTP 503)")
      expect(busy.requests()).toHaveLength(3)
    }))

  it.scopedLive("drops a source that stalls for longer than the idle timeout", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const stalled = yield* blobServer(file, { stallAfterBytes: 100_000 })
      const cdn = yield* blobServer(file)
      const result = yield* download(
        target,
        [httpSource(blobUrl(stalled), "stalled"), httpSource(blobUrl(cdn), "cdn")],
        {
          partialDir,
          timeoutMs: 300,
          retries: 0
        }
      )
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(result.dropped).toEqual([{ source: "stalled", reason: "stalled: no byte for 300 ms" }])
    }))

  it.scopedLive("fails in one line and leaves nothing behind when every source is bad", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const missing = yield* blobServer(file, { status: 404 })
      const liar = yield* blobServer(file, { flipBytesAt: target.leaves!.map((leaf) => leaf.offset) })
      const error = yield* Effect.flip(
        download(target, [httpSource(blobUrl(missing), "cdn"), httpSource(blobUrl(liar), "peer")], {
          partialDir,
          retries: 1
        })
      )
      expect(error).toBeInstanceOf(DownloadError)
      expect(error.message).toMatch(
        /^could not download tiny-lm@1\.0\.0\/model\.onnx: every source failed \((cdn: HTTP 404; peer: sent bytes that do not match piece \d+ \(offset \d+\)|peer: sent bytes that do not match piece \d+ \(offset \d+\); cdn: HTTP 404)\)$/
      )
      expect(leftovers(partialDir, target.sha256)).toEqual([])
    }))

  it.scopedLive("an IPFS gateway alone serves the file block by block when the pieces are known", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const blocks = new Map(
        target.leaves!.map((leaf) => [leaf.cid, file.subarray(leaf.offset, leaf.offset + leaf.length)])
      )
      const gateway = yield* blobServer(file, { blocks })
      const result = yield* download(target, [ipfsGatewaySource(gateway.url)], { partialDir })
      expect(fs.readFileSync(result.path).equals(file)).toBe(true)
      expect(gateway.requests()).toHaveLength(target.leaves!.length)
      expect(gateway.requests().every((line) => line.startsWith("GET /ipfs/baf"))).toBe(true)

      const { leaves: _, ...withoutLeaves } = target
      const refused = yield* Effect.flip(download(withoutLeaves, [ipfsGatewaySource(gateway.url)], { partialDir }))
      expect(refused.message).toContain("IPFS gateways need the file's piece list")
    }))

  it.scopedLive("without piece hashes, a flipped byte fails the download and discards everything", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(false)
      const liar = yield* blobServer(file, { flipBytesAt: [1_000_000] })
      const error = yield* Effect.flip(download(target, [httpSource(blobUrl(liar), "liar")], { partialDir }))
      expect(error.message).toMatch(
        /^could not download tiny-lm@1\.0\.0\/model\.onnx: the received file has SHA-256 [0-9a-f]{64} .*bytes from liar\).*discarded$/
      )
      expect(error.message).not.toContain("\n")
      expect(leftovers(partialDir, target.sha256)).toEqual([])
    }))

  describe("with the whole-file hash on its own thread", () => {
    const onThread = { hashThreadFrom: 0 }

    it.scopedLive("hashes and lays out the file as the main thread does, from two sources", () =>
      Effect.gen(function*() {
        const { file, target, partialDir } = fixture(false)
        const cdn = yield* blobServer(file)
        const peer = yield* blobServer(file)
        const sources = [httpSource(blobUrl(cdn)), httpSource(blobUrl(peer))]
        const threaded = yield* download(target, sources, { partialDir, ...onThread })
        expect(fs.readFileSync(threaded.path).equals(file)).toBe(true)
        fs.rmSync(threaded.path)
        const here = yield* download(target, sources, { partialDir: tempDir("edge-net-download-") })
        expect(threaded.layout).toBeDefined()
        expect(threaded.layout).toEqual(here.layout)
        expect(threaded.sha256).toBe(target.sha256)
      }))

    it.scopedLive("resumes after every source failed midway, hashing what the first run verified", () =>
      Effect.gen(function*() {
        const { file, target, partialDir } = fixture(false)
        const flaky = yield* blobServer(file, { cutAfterBytes: 2_000_000 })
        yield* Effect.flip(
          download(target, [httpSource(blobUrl(flaky), "flaky")], { partialDir, retries: 0, parallel: 2, ...onThread })
        )
        expect(leftovers(partialDir, target.sha256)).toHaveLength(2)
        const steady = yield* blobServer(file)
        const result = yield* download(target, [httpSource(blobUrl(steady))], { partialDir, ...onThread })
        expect(fs.readFileSync(result.path).equals(file)).toBe(true)
        expect(result.bytesReused).toBeGreaterThan(0)
        expect(result.sha256).toBe(target.sha256)
      }))

    it.scopedLive("a flipped byte fails the download and discards everything", () =>
      Effect.gen(function*() {
        const { file, target, partialDir } = fixture(false)
        const liar = yield* blobServer(file, { flipBytesAt: [1_000_000] })
        const error = yield* Effect.flip(
          download(target, [httpSource(blobUrl(liar), "liar")], { partialDir, ...onThread })
        )
        expect(error.message).toMatch(/the received file has SHA-256 [0-9a-f]{64} .*discarded$/)
        expect(leftovers(partialDir, target.sha256)).toEqual([])
      }))
  })

  it.scopedLive("a bandwidth cap holds across sources, and progress arrives at most ~10 times a second", () =>
    Effect.gen(function*() {
      const { file, target, partialDir } = fixture(true)
      const cdn = yield* blobServer(file)
      const peer = yield* blobServer(file)
      const reports: Array<Progress> = []
      const options: DownloadOptions = {
        partialDir,
        maxBytesPerSecond: 2_000_000,
        onProgress: (progress) => reports.push(progress)
      }
      const startedAt = Date.now()
      yield* download(target, [httpSource(blobUrl(cdn)), httpSource(blobUrl(peer))], options)
      const seconds = (Date.now() - startedAt) / 1000
      // A full bucket lets the first quarter megabyte through at once; the rest takes ~2 s at 2 MB/s.
      expect(seconds).toBeGreaterThan(1.5)
      expect(reports.length).toBeLessThanOrEqual(seconds * 12 + 2)
      expect(reports.at(-1)).toMatchObject({ bytesDone: FILE_SIZE, bytesTotal: FILE_SIZE, etaSeconds: 0 })
      expect(reports.at(-1)!.sources.every((source) => source.bytes > 0)).toBe(true)
      expect(reports.some((progress) => progress.bytesPerSecond > 0 && progress.bytesPerSecond < 4_000_000)).toBe(true)
    }))
})

describe("Sources", () => {
  it.scopedLive("a server that ignores Range is fine from offset 0 and refused elsewhere", () =>
    Effect.gen(function*() {
      const { file } = fixture(false)
      const plain = yield* blobServer(file, { ignoreRange: true })
      const source = httpSource(blobUrl(plain), "plain")
      const head = yield* collect(source.fetchRange!(0, 1000))
      expect(head.equals(file.subarray(0, 1000))).toBe(true)
      const error = yield* Effect.flip(collect(source.fetchRange!(10, 20)))
      expect(error).toBeInstanceOf(SourceError)
      expect(error.message).toBe("plain: ignored the Range header (HTTP 200 for bytes 10-19)")
    }))
})

describe("ByteRate", () => {
  it.effect("lets a burst through, then makes the next request wait for the bytes it owes", () =>
    Effect.gen(function*() {
      const limiter = yield* ByteRate.make(1000, { burstBytes: 1000 })
      yield* limiter.take(1000)
      const waiting = yield* Effect.fork(limiter.take(2000))
      yield* TestClock.adjust("1999 millis")
      expect(waiting.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(Exit.isSuccess(yield* Fiber.await(waiting))).toBe(true)
    }))
})

const collect = (stream: Stream.Stream<Uint8Array, SourceError>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => Buffer.concat([...chunks]))
