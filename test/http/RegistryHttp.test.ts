/**
 * The registry, blob and gateway HTTP API of a real node process: publishing with a signed manifest as
 * the only credential, verified uploads, Range / ETag semantics, and trustless-gateway blocks and CARs.
 */
import { CarReader } from "@ipld/car"
import { Effect, Either } from "effect"
import * as crypto from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { ModelManifest } from "../../src/content/Manifest.js"
import { parseManifest } from "../../src/content/Manifest.js"
import type { ManifestSigner } from "../../src/content/ManifestSigning.js"
import { signAsPublisher } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { layoutOf, verifyBlock } from "../../src/content/UnixFs.js"
import { listModels } from "../../src/http/RegistryClient.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { tempDir } from "../support/TempDir.js"

const signerOf = (keyId: string, seedByte: number): ManifestSigner => {
  const pair = keyPairFromSeed(new Uint8Array(32).fill(seedByte))
  return { keyId, publicKey: pair.publicKey, sign: (message) => pair.sign(message) }
}
const alice = signerOf("alice", 7)
const mallory = signerOf("mallory", 9)

const weights = crypto.randomBytes(700_000)
const layout = layoutOf(weights)
const sha256 = crypto.hash("sha256", weights, "hex")

const manifestOf = (version: string, extra: Record<string, unknown> = {}): ModelManifest =>
  Either.getOrThrow(
    parseManifest({
      id: "tiny-lm",
      name: "Tiny LM",
      version,
      type: "text-generation",
      license: "MIT",
      optimization: { quantization: "INT8" },
      artifacts: { model: { filename: "model.onnx", size: weights.length, sha256, cid: layout.root } },
      publishedAt: "2026-11-01T00:00:00Z",
      publishedBy: "alice",
      expiresAt: "2099-01-01T00:00:00Z",
      ...extra
    })
  )

let node: RunningNode
const post = (path: string, body: unknown) =>
  fetch(`${node.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body)
  })

beforeAll(async () => {
  node = await startNode(tempDir("registry-http-"))
}, 60_000)
afterAll(async () => {
  await node?.kill("SIGTERM")
})

describe("registry over HTTP", () => {
  it("publishes a signed manifest, then accepts only the bytes it lists", async () => {
    const unlisted = crypto.randomBytes(100)
    const refused = await fetch(`${node.url}/v1/blobs/sha256-${crypto.hash("sha256", unlisted, "hex")}`, {
      method: "PUT",
      body: unlisted
    })
    expect(refused.status).toBe(403)

    const unsigned = await post("/v1/models", manifestOf("1.0.0"))
    expect(unsigned.status).toBe(400)
    expect(((await unsigned.json()) as { message: string }).message).toBe("manifest tiny-lm@1.0.0 is not signed")

    const tampered = { ...signAsPublisher(manifestOf("1.0.0"), alice), name: "Something else" }
    const tamperedResponse = await post("/v1/models", tampered)
    expect(tamperedResponse.status).toBe(400)
    expect(((await tamperedResponse.json()) as { message: string }).message).toContain("does not verify")

    const created = await post("/v1/models", signAsPublisher(manifestOf("1.0.0"), alice))
    expect(created.status).toBe(201)
    expect(await created.json()).toMatchObject({ id: "tiny-lm", version: "1.0.0", keyId: "alice" })

    const corrupted = Buffer.from(weights)
    corrupted[5] = corrupted[5]! ^ 1
    const wrongBytes = await fetch(`${node.url}/v1/blobs/sha256-${sha256}`, { method: "PUT", body: corrupted })
    expect(wrongBytes.status).toBe(400)
    expect((await fetch(`${node.url}/v1/blobs/sha256-${sha256}`, { method: "HEAD" })).status).toBe(404)

    const uploaded = await fetch(`${node.url}/v1/blobs/sha256-${sha256}`, { method: "PUT", body: weights })
    expect(uploaded.status).toBe(201)
    expect(await uploaded.json()).toEqual({ digest: `sha256-${sha256}`, size: weights.length, cid: layout.root })
  })

  it("gives an id to its first publisher's key only, and refuses versions that are not new", async () => {
    const stolen = await post("/v1/models", signAsPublisher(manifestOf("2.0.0"), mallory))
    expect(stolen.status).toBe(403)
    const again = await post("/v1/models", signAsPublisher(manifestOf("1.0.0", { name: "Tiny LM, again" }), alice))
    expect(again.status).toBe(409)
    expect((await post("/v1/models", signAsPublisher(manifestOf("1.1.0"), alice))).status).toBe(201)
    expect((await post("/v1/models", signAsPublisher(manifestOf("0.9.0"), alice))).status).toBe(409)
  })

  it("lists, serves manifests exactly as signed, and gives download URLs", async () => {
    const list = (await (await fetch(`${node.url}/v1/models?quantization=INT8`)).json()) as Array<
      { id: string; version: string }
    >
    expect(list).toMatchObject([{ id: "tiny-lm", version: "1.1.0" }])
    expect(await (await fetch(`${node.url}/v1/models?type=embedding`)).json()).toEqual([])
    const manifest = await (await fetch(`${node.url}/v1/models/tiny-lm?version=1.0.0`)).json()
    expect(manifest).toEqual(signAsPublisher(manifestOf("1.0.0"), alice))
    const download = (await (await fetch(`${node.url}/v1/models/tiny-lm/download?source=peer`)).json()) as {
      model: string
    }
    expect(download.model).toBe(`${node.url}/v1/blobs/sha256-${sha256}`)
    expect((await fetch(`${node.url}/v1/models/nothing-here`)).status).toBe(404)
    const docs = (await (await fetch(`${node.url}/docs/openapi.json`)).json()) as { paths: Record<string, unknown> }
    for (
      const path of [
        "/v1/models",
        "/v1/models/{id}",
        "/v1/models/{id}/download",
        "/v1/adapters",
        "/v1/blobs/{digest}",
        "/ipfs/{cid}"
      ]
    ) {
      expect(Object.keys(docs.paths)).toContain(path)
    }
  })

  it("answers the same over @effect/rpc, manifests included exactly as signed", async () => {
    const { latest, listed } = await Effect.runPromise(
      Effect.gen(function*() {
        const client = yield* nodeRpcClient
        return { listed: yield* client.RegistryList({}), latest: yield* client.RegistryGet({ id: "tiny-lm" }) }
      }).pipe(Effect.scoped, Effect.provide(rpcProtocol(node.url)))
    )
    expect(listed.map((model) => `${model.id}@${model.version}`)).toEqual(["tiny-lm@1.1.0"])
    expect(latest.manifest).toEqual(signAsPublisher(manifestOf("1.1.0"), alice))
  })

  it("serves blobs with Range, a strong ETag, 304 and 416", async () => {
    const url = `${node.url}/v1/blobs/sha256-${sha256}`
    const whole = await fetch(url)
    expect(whole.status).toBe(200)
    const etag = whole.headers.get("etag")
    expect(etag).toBe(`"sha256-${sha256}"`)
    expect(Buffer.from(await whole.arrayBuffer()).equals(weights)).toBe(true)
    const part = await fetch(url, { headers: { range: "bytes=1000-1999" } })
    expect(part.status).toBe(206)
    expect(part.headers.get("content-range")).toBe(`bytes 1000-1999/${weights.length}`)
    expect(Buffer.from(await part.arrayBuffer()).equals(weights.subarray(1000, 2000))).toBe(true)
    const tail = await fetch(url, { headers: { range: "bytes=-10" } })
    expect(Buffer.from(await tail.arrayBuffer()).equals(weights.subarray(weights.length - 10))).toBe(true)
    expect((await fetch(url, { headers: { "if-none-match": etag! } })).status).toBe(304)
    const outside = await fetch(url, { headers: { range: `bytes=${weights.length}-` } })
    expect(outside.status).toBe(416)
    expect(outside.headers.get("content-range")).toBe(`bytes */${weights.length}`)
    const stale = await fetch(url, { headers: { range: "bytes=0-9", "if-range": "\"sha256-other\"" } })
    expect(stale.status).toBe(200)
    await stale.arrayBuffer()
  })

  it("is an IPFS trustless gateway: raw blocks and a CAR of the whole DAG, all verifiable", async () => {
    const leaf = layout.leaves[2]!
    const raw = await fetch(`${node.url}/ipfs/${leaf.cid}?format=raw`)
    expect(raw.headers.get("content-type")).toBe("application/vnd.ipld.raw")
    const block = new Uint8Array(await raw.arrayBuffer())
    expect(verifyBlock(leaf.cid, block)).toBe(true)
    const root = await fetch(`${node.url}/ipfs/${layout.root}`, { headers: { accept: "application/vnd.ipld.raw" } })
    expect(verifyBlock(layout.root, new Uint8Array(await root.arrayBuffer()))).toBe(true)
    const car = await fetch(`${node.url}/ipfs/${layout.root}?format=car`)
    const carBytes = new Uint8Array(await car.arrayBuffer())
    const reader = await CarReader.fromBytes(carBytes)
    expect((await reader.getRoots()).map(String)).toEqual([layout.root])
    const blocks: Array<string> = []
    for await (const { bytes, cid } of reader.blocks()) {
      expect(verifyBlock(cid.toString(), bytes)).toBe(true)
      blocks.push(cid.toString())
    }
    expect(blocks).toEqual([layout.root, ...layout.leaves.map((l) => l.cid)])
    const file = await fetch(`${node.url}/ipfs/${layout.root}`)
    expect(Buffer.from(await file.arrayBuffer()).equals(weights)).toBe(true)
    expect((await fetch(`${node.url}/ipfs/not-a-cid?format=raw`)).status).toBe(400)

    // What an operator's Prometheus sees of these pulls: counted by kind, with the bytes served.
    const metrics = await (await fetch(`${node.url}/metrics`)).text()
    const sample = (series: string) =>
      Number(metrics.split("\n").find((line) => line.startsWith(`${series} `))?.slice(series.length + 1))
    expect(sample("edge_net_pulls_total{kind=\"car\"}")).toBe(1)
    expect(sample("edge_net_pull_bytes_total{kind=\"car\"}")).toBe(carBytes.length)
    expect(sample("edge_net_pulls_total{kind=\"block\"}")).toBeGreaterThanOrEqual(2)
    expect(sample("edge_net_pull_bytes_total{kind=\"blob\"}")).toBeGreaterThanOrEqual(2 * weights.length)
  })

  it("lists a model published without quantization through the client, decoded with the registry's own view", async () => {
    const plain = { ...manifestOf("1.0.0"), id: "plain-lm" } as Record<string, unknown>
    delete plain.optimization
    expect((await post("/v1/models", signAsPublisher(Either.getOrThrow(parseManifest(plain)), alice))).status).toBe(201)
    const listed = await Effect.runPromise(listModels(node.url, { type: "text-generation" }))
    expect(listed.find((model) => model.id === "plain-lm")).toMatchObject({ id: "plain-lm", version: "1.0.0" })
    expect(listed.find((model) => model.id === "plain-lm")?.quantization).toBeUndefined()
    // An answer of another shape is one line naming the URL, not a crash further on.
    const impostor = http.createServer((_, response) =>
      response.writeHead(200, { "content-type": "application/json" }).end("[{\"id\":5}]")
    )
    await new Promise<void>((resolve) => impostor.listen(0, "127.0.0.1", resolve))
    try {
      const { port } = impostor.address() as AddressInfo
      const wrong = await Effect.runPromise(Effect.flip(listModels(`http://127.0.0.1:${port}`, {})))
      expect(wrong.message).toMatch(/^registry http:\/\/127\.0\.0\.1:\d+\/v1\/models: unexpected answer: /)
      expect(wrong.message).not.toContain("\n")
    } finally {
      impostor.close()
    }
    // A registry that is not there is one line too.
    const away = await Effect.runPromise(Effect.flip(listModels("http://127.0.0.1:9", {})))
    expect(away.message).toMatch(/^cannot reach the registry at http:\/\/127\.0\.0\.1:9\/v1\/models: /)
  })
})
