/**
 * CORS and compression on a real node process: a page on an allowed origin reads the registry and
 * blobs (preflight answered, the seed's headers exposed), any other origin gets no CORS headers, no
 * origin may change state, and JSON replies come compressed to clients that accept br or gzip.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as http from "node:http"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { BlobStore } from "../../src/content/BlobStore.js"
import { buildManifest, pushToRegistry } from "../../src/content/Publish.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { publisher, REFERENCE } from "../support/SdkModels.js"
import { tempDir } from "../support/TempDir.js"

const APP = "https://app.example"
let node: RunningNode
let manifestDigest = ""

/** A raw request: fetch would decompress and hide Content-Encoding and the body's real bytes. */
const request = (url: string, init: { method?: string; headers?: Record<string, string> } = {}) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
    const call = http.request(url, { method: init.method ?? "GET", headers: init.headers ?? {} }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on(
        "end",
        () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) })
      )
    })
    call.on("error", reject)
    call.end()
  })

beforeAll(async () => {
  node = await startNode(tempDir(), undefined, { EDGE_NET_CORS_ORIGINS: APP })
  const manifest = await Effect.runPromise(
    Effect.gen(function*() {
      const manifest = yield* buildManifest({
        files: [path.join(REFERENCE, "tiny-encoder", "config.json")],
        name: "cors-probe",
        version: "1.2.3",
        type: "embedding",
        license: "MIT",
        expiresInDays: 30,
        signer: publisher
      })
      yield* pushToRegistry(node.url, manifest)
      return manifest
    }).pipe(Effect.provide(BlobStore.layer({ root: tempDir() })))
  )
  manifestDigest = Object.values(manifest.artifacts)[0]?.sha256 ?? ""
}, 60_000)

afterAll(async () => {
  await node?.kill("SIGTERM")
})

describe("CORS on a node (model-distribution seed §4.2)", () => {
  it("a page on an allowed origin reads a manifest and its X-Model-Version / X-Model-Checksum", async () => {
    const response = await request(`${node.url}/v1/models/cors-probe`, { headers: { origin: APP } })
    expect(response.status).toBe(200)
    expect(response.headers["access-control-allow-origin"]).toBe(APP)
    expect(String(response.headers["access-control-expose-headers"])).toContain("X-Model-Checksum")
    expect(String(response.headers["vary"])).toContain("Origin")
    expect(response.headers["x-model-version"]).toBe("1.2.3")
    expect(response.headers["x-model-checksum"]).toMatch(/^[0-9a-f]{64}$/)
  })

  it("a preflight for a ranged blob read is answered; one for a state change is refused", async () => {
    const blob = await request(`${node.url}/v1/blobs/sha256-${manifestDigest}`, {
      method: "OPTIONS",
      headers: { origin: APP, "access-control-request-method": "GET", "access-control-request-headers": "range" }
    })
    expect(blob.status).toBe(204)
    expect(blob.headers["access-control-allow-origin"]).toBe(APP)
    expect(String(blob.headers["access-control-allow-methods"])).toBe("GET, HEAD, OPTIONS")
    expect(String(blob.headers["access-control-allow-headers"])).toContain("Range")
    const publish = await request(`${node.url}/v1/models`, {
      method: "OPTIONS",
      headers: { origin: APP, "access-control-request-method": "POST" }
    })
    expect(publish.status).toBe(403)
    expect(publish.headers["access-control-allow-origin"]).toBeUndefined()
    expect(JSON.parse(publish.body.toString())).toEqual({
      error: "cross-origin requests may only read the registry and content routes (GET, HEAD) from allowed origins"
    })
  })

  it("the blob itself carries the CORS headers; another origin gets none", async () => {
    const allowed = await request(`${node.url}/v1/blobs/sha256-${manifestDigest}`, { headers: { origin: APP } })
    expect(allowed.status).toBe(200)
    expect(allowed.headers["access-control-allow-origin"]).toBe(APP)
    const other = await request(`${node.url}/v1/blobs/sha256-${manifestDigest}`, {
      headers: { origin: "https://evil.example" }
    })
    expect(other.status).toBe(200)
    expect(other.headers["access-control-allow-origin"]).toBeUndefined()
    const preflight = await request(`${node.url}/v1/models`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "GET" }
    })
    expect(preflight.status).toBe(403)
  })

  it("a page on an allowed origin may import the browser SDK and its onnxruntime-web files", async () => {
    for (const route of ["/ui/sdk.js", "/ui/ort/ort.wasm.min.mjs"]) {
      const response = await request(`${node.url}${route}`, { headers: { origin: APP } })
      expect(response.status).toBe(200)
      expect(response.headers["content-type"]).toMatch(/^text\/javascript/)
      expect(response.headers["access-control-allow-origin"]).toBe(APP)
    }
    const dashboard = await request(`${node.url}/ui/app.js`, { headers: { origin: APP } })
    expect(dashboard.headers["access-control-allow-origin"]).toBeUndefined()
  })

  it("an allowed origin still cannot change state (the guards' CSRF rule stands)", async () => {
    const response = await fetch(`${node.url}/v1/models`, {
      method: "POST",
      headers: { origin: APP, "content-type": "application/json" },
      body: "{}"
    })
    expect(response.status).toBe(403)
    expect(await response.json()).toEqual({ error: "a request from another origin cannot change state on this node" })
  })

  it("JSON is compressed with br or gzip when accepted, and sent as is otherwise", async () => {
    const plain = await request(`${node.url}/docs/openapi.json`)
    expect(plain.headers["content-encoding"]).toBeUndefined()
    const brotli = await request(`${node.url}/docs/openapi.json`, { headers: { "accept-encoding": "gzip, br" } })
    expect(brotli.headers["content-encoding"]).toBe("br")
    expect(brotli.body.length).toBeLessThan(plain.body.length / 3)
    expect(zlib.brotliDecompressSync(brotli.body).equals(plain.body)).toBe(true)
    const gzip = await request(`${node.url}/docs/openapi.json`, { headers: { "accept-encoding": "gzip, br;q=0" } })
    expect(gzip.headers["content-encoding"]).toBe("gzip")
    expect(zlib.gunzipSync(gzip.body).equals(plain.body)).toBe(true)
  })

  it("a bad EDGE_NET_CORS_ORIGINS stops the node at start with one line", async () => {
    const started = await startNode(tempDir(), undefined, { EDGE_NET_CORS_ORIGINS: "app.example/path" }).then(
      () => "started",
      (error: Error) => error.message
    )
    expect(started).toContain(`EDGE_NET_CORS_ORIGINS`)
    expect(started).toContain(`"app.example/path" is not an origin such as https://app.example or *`)
  })
})
