/**
 * `cache.autoCleanup` in models.yaml, through a real pull: a registry on loopback serves a signed
 * manifest and the model's bytes; the cache is a blob store in a temp dir already holding two blobs.
 * Off, a pull that does not fit fails with one line and evicts nothing; on, it evicts the least
 * recently used blob and succeeds.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Stream } from "effect"
import type { Scope } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { BlobStore } from "../../src/content/BlobStore.js"
import { parseManifest } from "../../src/content/Manifest.js"
import { signAsPublisher } from "../../src/content/ManifestSigning.js"
import { cacheDirectory, cacheMaxBytes, keysDirectory, loadConfig } from "../../src/content/ModelsConfig.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { pull } from "../../src/content/Pull.js"
import { TrustStore } from "../../src/content/TrustStore.js"
import { layoutOf } from "../../src/content/UnixFs.js"
import { tempDir } from "../support/TempDir.js"

const BLOB = 100_000
const sha256 = (bytes: Uint8Array) => crypto.createHash("sha256").update(bytes).digest("hex")
const alice = keyPairFromSeed(new Uint8Array(32).fill(7))
const model = crypto.randomBytes(BLOB)

const manifest = signAsPublisher(
  Either.getOrThrow(parseManifest({
    id: "tiny-lm",
    name: "Tiny LM",
    version: "1.0.0",
    type: "text-generation",
    license: "MIT",
    optimization: { quantization: "INT8" },
    artifacts: { model: { filename: "model.onnx", size: BLOB, sha256: sha256(model), cid: layoutOf(model).root } },
    publishedAt: "2026-11-01T00:00:00Z",
    publishedBy: "alice",
    expiresAt: "2099-01-01T00:00:00Z"
  })),
  { keyId: "alice", publicKey: alice.publicKey, sign: (message) => alice.sign(message) }
)

interface Registry {
  readonly url: string
  /** Requests for the model's bytes so far. */
  readonly blobRequests: () => number
}

/** The registry node's two routes a pull uses: the manifest, and the blob with Range (as a peer). */
const registry: Effect.Effect<Registry, never, Scope.Scope> = Effect.acquireRelease(
  Effect.async<{ server: http.Server; registry: Registry }>((resume) => {
    let blobRequests = 0
    const server = http.createServer((request, response) => {
      const { pathname } = new URL(request.url ?? "/", "http://localhost")
      if (pathname === "/v1/models/tiny-lm") {
        return void response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(manifest))
      }
      const range = /^bytes=(\d+)-(\d+)$/.exec(request.headers.range ?? "")
      if (pathname !== `/v1/blobs/sha256-${sha256(model)}` || range === null) return void response.writeHead(404).end()
      blobRequests++
      const start = Number(range[1])
      const end = Math.min(Number(range[2]), model.length - 1)
      response.writeHead(206, {
        "content-range": `bytes ${start}-${end}/${model.length}`,
        "content-length": end - start + 1
      })
      response.end(model.subarray(start, end + 1))
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(
        Effect.succeed({ server, registry: { url: `http://127.0.0.1:${port}`, blobRequests: () => blobRequests } })
      )
    })
  }),
  ({ server }) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
).pipe(Effect.map(({ registry }) => registry))

/** A models.yaml whose cache holds two blobs and a third blob's worth of room, short of the model. */
const home = (url: string) => {
  const root = tempDir("pull-")
  const file = path.join(root, "models.yaml")
  const write = (autoCleanup: boolean) =>
    fs.writeFileSync(
      file,
      [
        `registry: ${url}`,
        "cache:",
        `  directory: ${path.join(root, "cache")}`,
        `  maxSize: ${2 * BLOB + BLOB / 2}`,
        `  autoCleanup: ${autoCleanup}`,
        "ipfs:",
        "  gateways: []",
        "trust:",
        `  keysDir: ${path.join(root, "keys")}`,
        ""
      ].join("\n")
    )
  return { file, write }
}

/** Runs `use` with the cache and trust store that `file` configures, as `edge-net-models pull` does. */
const withConfig = <A, E>(file: string, use: Effect.Effect<A, E, BlobStore | TrustStore>) =>
  Effect.gen(function*() {
    const config = yield* loadConfig(file)
    return yield* use.pipe(
      Effect.provide(BlobStore.layer({ root: cacheDirectory(config), maxBytes: cacheMaxBytes(config) })),
      Effect.provide(TrustStore.Default(keysDirectory(config)))
    )
  })

const pullModel = (file: string, url: string) =>
  Effect.flatMap(loadConfig(file), (config) => pull({ id: "tiny-lm", registry: url, sources: ["peer"] }, config))

describe("pull and cache.autoCleanup", () => {
  it.scopedLive(
    "off: a pull that does not fit fails with one line and evicts nothing; on: LRU blobs go and it succeeds",
    () =>
      Effect.gen(function*() {
        const { blobRequests, url } = yield* registry
        const { file, write } = home(url)
        write(false)
        const older = crypto.randomBytes(BLOB)
        const newer = crypto.randomBytes(BLOB)
        yield* withConfig(
          file,
          Effect.gen(function*() {
            const store = yield* BlobStore
            yield* (yield* TrustStore).trust("alice", alice.publicKey)
            yield* store.put(Stream.make(older))
            // A later use, so `older` is the least recently used blob.
            yield* Effect.sleep("5 millis")
            yield* store.put(Stream.make(newer))
          })
        )

        const refused = yield* Effect.flip(withConfig(file, pullModel(file, url)))
        expect(refused.message).toBe(
          `tiny-lm@1.0.0/model.onnx (${BLOB} bytes) does not fit in the cache (${2 * BLOB} of ${
            2 * BLOB + BLOB / 2
          } bytes used) and cache.autoCleanup is off: ` +
            "free space with `edge-net-models cache prune` or `cache clear`, or raise cache.maxSize"
        )
        expect(blobRequests()).toBe(0)
        const kept = yield* withConfig(
          file,
          Effect.gen(function*() {
            const store = yield* BlobStore
            return [yield* store.has(sha256(older)), yield* store.has(sha256(newer)), yield* store.has(sha256(model))]
          })
        )
        expect(kept).toEqual([true, true, false])

        write(true)
        const receipt = yield* withConfig(file, pullModel(file, url))
        expect(receipt.artifacts).toMatchObject([{ filename: "model.onnx", cached: false, bytesFetched: BLOB }])
        expect(blobRequests()).toBeGreaterThan(0)
        const after = yield* withConfig(
          file,
          Effect.gen(function*() {
            const store = yield* BlobStore
            return {
              held: [yield* store.has(sha256(older)), yield* store.has(sha256(newer)), yield* store.has(sha256(model))],
              bytes: (yield* store.summary).bytes
            }
          })
        )
        expect(after).toEqual({ held: [false, true, true], bytes: 2 * BLOB })
      }),
    30_000
  )
})
