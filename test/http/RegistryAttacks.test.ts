/**
 * The attacks found on the registry, replayed against a real node process on loopback: the co-signing
 * squat, yanks and publications in someone else's name, uploads past their declared size or past the
 * store's cap, and 50 MB bodies. Each fails in one line and leaves the journal as it was.
 */
import { Either } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { signYank } from "../../src/actors/registry/Registry.js"
import type { ModelManifest } from "../../src/content/Manifest.js"
import { parseManifest } from "../../src/content/Manifest.js"
import type { ManifestSigner } from "../../src/content/ManifestSigning.js"
import { signAsPublisher, signManifest } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { layoutOf } from "../../src/content/UnixFs.js"
import { type RunningNode, startNode } from "../support/NodeProcess.js"
import { tempDir } from "../support/TempDir.js"

const signerOf = (keyId: string, seedByte: number): ManifestSigner => {
  const pair = keyPairFromSeed(new Uint8Array(32).fill(seedByte))
  return { keyId, publicKey: pair.publicKey, sign: (message) => pair.sign(message) }
}
const alice = signerOf("alice", 7)
const mallory = signerOf("mallory", 9)

interface Artifact {
  readonly bytes: Buffer
  readonly sha256: string
  readonly cid: string
}
const artifactOf = (size: number): Artifact => {
  const bytes = crypto.randomBytes(size)
  return { bytes, sha256: crypto.hash("sha256", bytes, "hex"), cid: layoutOf(bytes).root }
}

const manifestOf = (id: string, version: string, artifact: Artifact): ModelManifest =>
  Either.getOrThrow(
    parseManifest({
      id,
      name: id,
      version,
      type: "text-generation",
      license: "MIT",
      artifacts: {
        model: { filename: "model.onnx", size: artifact.bytes.length, sha256: artifact.sha256, cid: artifact.cid }
      },
      publishedAt: "2026-11-01T00:00:00Z",
      publishedBy: "alice",
      expiresAt: "2099-01-01T00:00:00Z"
    })
  )

/** The node's blob store holds at most this much. */
const CAP = 1024 * 1024
let node: RunningNode
let dataDir: string

beforeAll(async () => {
  dataDir = tempDir("registry-attacks-")
  node = await startNode(dataDir, undefined, { EDGE_NET_CONTENT_MAX: String(CAP) })
}, 60_000)
afterAll(async () => {
  await node?.kill("SIGTERM")
})

interface Reply {
  readonly status: number
  readonly body: { readonly _tag?: string; readonly message?: string; readonly [key: string]: unknown }
}

const reply = async (response: Response): Promise<Reply> => ({
  status: response.status,
  body: (await response.json()) as Reply["body"]
})
const post = async (url: string, body: unknown) =>
  reply(
    await fetch(`${node.url}${url}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
  )
const journalHead = async () => ((await (await fetch(`${node.url}/health`)).json()) as { head: unknown }).head

/** A refusal as a user sees it: this status and one line (routes say `message`, the server's guards `error`). */
const expectRefused = (answer: Reply, status: number, message?: string | RegExp) => {
  expect(answer.status).toBe(status)
  const line = answer.body.message ?? answer.body["error"]
  expect(line).toBeTypeOf("string")
  expect(line).not.toContain("\n")
  if (typeof message === "string") expect(line).toBe(message)
  else if (message !== undefined) expect(line).toMatch(message)
}

interface Streamed extends Reply {
  /** Bytes the client had handed to its socket when the answer came. */
  readonly sent: number
}

/**
 * Sends `total` bytes, 64 KiB at a time and as fast as the server reads them, announcing the length or
 * not (chunked); between two writes it lets its event loop turn, so it notices an answer at once, and
 * then stops sending.
 */
const stream = (
  method: string,
  url: string,
  total: number,
  options: { readonly announce: boolean; readonly contentType?: string }
) =>
  new Promise<Streamed>((resolve, reject) => {
    const headers: Record<string, string> = { "content-type": options.contentType ?? "application/octet-stream" }
    if (options.announce) headers["content-length"] = String(total)
    const request = http.request(`${node.url}${url}`, { method, headers })
    const piece = Buffer.alloc(64 * 1024, 0x61)
    let sent = 0
    let answered = false
    request.on("response", (response) => {
      answered = true
      const at = sent
      let text = ""
      response.setEncoding("utf8")
      response.on("data", (data: string) => (text += data))
      response.on("end", () => {
        resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Reply["body"], sent: at })
        request.destroy()
      })
    })
    // Once answered, the server may drop the connection under the rest of the upload: that is the point.
    request.on("error", (error) => (answered ? undefined : reject(error)))
    const pump = () => {
      if (answered) return
      if (sent === total) return void request.end()
      const chunk = piece.subarray(0, Math.min(piece.length, total - sent))
      sent += chunk.length
      if (request.write(chunk)) setImmediate(pump)
      else request.once("drain", () => setImmediate(pump))
    }
    pump()
  })

const FIFTY_MB = 50 * 1024 * 1024
const leftovers = () => fs.readdirSync(path.join(dataDir, "content", "tmp"))
const blobStatus = async (artifact: Artifact) =>
  (await fetch(`${node.url}/v1/blobs/sha256-${artifact.sha256}`, { method: "HEAD" })).status

describe("registry attacks against a running node", () => {
  const weights = artifactOf(1000)

  it("the co-signing squat: the named publisher owns the id; the co-signer's yanks and publications are refused and write nothing", async () => {
    const genuine = signAsPublisher(manifestOf("tiny-lm", "1.0.0", weights), alice)
    // Mallory co-signs alice's genuine manifest and puts that signature first, on a registry new to the id.
    const squat = { ...genuine, signatures: [...signManifest(genuine, mallory).signatures!].reverse() }
    expect(squat.signatures.map((signature) => signature.keyId)).toEqual(["mallory", "alice"])
    const published = await post("/v1/models", squat)
    expect(published.status).toBe(201)
    expect(published.body).toMatchObject({ id: "tiny-lm", keyId: "alice" })
    const before = await journalHead()

    const yank = (by: ManifestSigner, version = "1.0.0") => {
      const { keyId, publicKey, reason, signature } = signYank(by, "model", "tiny-lm", version, "mine now")
      return { keyId, publicKey, reason, signature }
    }
    expectRefused(
      await post("/v1/models/tiny-lm/versions/1.0.0/yank", yank(mallory)),
      403,
      "tiny-lm belongs to key alice: key mallory cannot publish or yank its versions"
    )
    // A yank in alice's name, signed by mallory.
    expectRefused(
      await post("/v1/models/tiny-lm/versions/1.0.0/yank", {
        ...yank(mallory),
        keyId: "alice",
        publicKey: alice.publicKey
      }),
      403,
      "yank of tiny-lm@1.0.0: signature by key alice does not verify"
    )
    // A new version naming alice as publisher but signed by mallory alone, then one in mallory's own name.
    const inAlicesName = signManifest(
      { ...manifestOf("tiny-lm", "2.0.0", weights), publisherKey: alice.publicKey },
      mallory
    )
    expectRefused(
      await post("/v1/models", inAlicesName),
      403,
      `manifest tiny-lm@2.0.0 is not signed by its publisher key ${alice.publicKey.slice(0, 16)}…`
    )
    expectRefused(
      await post("/v1/models", signAsPublisher(manifestOf("tiny-lm", "2.0.0", weights), mallory)),
      403,
      "tiny-lm belongs to key alice: key mallory cannot publish or yank its versions"
    )
    // A manifest naming no publisher.
    expectRefused(
      await post("/v1/models", signManifest(manifestOf("other-lm", "1.0.0", weights), mallory)),
      400,
      /names no publisherKey/
    )
    expect(await journalHead()).toEqual(before)

    const versions = (await (await fetch(`${node.url}/v1/models/tiny-lm/versions`)).json()) as Array<
      { keyId: string; yanked?: string }
    >
    expect(versions).toEqual([expect.objectContaining({ version: "1.0.0", keyId: "alice" })])
    expect(versions[0]?.yanked).toBeUndefined()
    const ownYank = await post("/v1/models/tiny-lm/versions/1.0.0/yank", yank(alice))
    expect(ownYank).toMatchObject({ status: 200, body: { version: "1.0.0", yanked: "mine now" } })
  })

  const small = artifactOf(300_000)

  it("an upload past its declared size is cut off at the first byte over, and nothing stays on disk", async () => {
    expect((await post("/v1/models", signAsPublisher(manifestOf("small-lm", "1.0.0", small), alice))).status).toBe(201)
    const before = await journalHead()

    const unannounced = await stream("PUT", `/v1/blobs/sha256-${small.sha256}`, FIFTY_MB, { announce: false })
    expectRefused(
      unannounced,
      413,
      `sha256-${small.sha256} is declared as 300000 bytes: more than 300000 bytes sent: refused, nothing kept`
    )
    // Answered once the declared size was passed, not after 50 MB (socket buffers hold a few MB at most).
    expect(unannounced.sent).toBeLessThan(8 * 1024 * 1024)

    const announced = await stream("PUT", `/v1/blobs/sha256-${small.sha256}`, FIFTY_MB, { announce: true })
    expectRefused(
      announced,
      413,
      `sha256-${small.sha256} is declared as 300000 bytes: an upload of ${FIFTY_MB} is refused`
    )
    expect(announced.sent).toBeLessThan(8 * 1024 * 1024)

    expect(leftovers()).toEqual([])
    expect(await blobStatus(small)).toBe(404)
    expect(await journalHead()).toEqual(before)
    // The genuine bytes still go in.
    const uploaded = await fetch(`${node.url}/v1/blobs/sha256-${small.sha256}`, { method: "PUT", body: small.bytes })
    expect(uploaded.status).toBe(201)
  })

  it("an upload past the blob store's cap is refused, and nothing stays on disk", async () => {
    // 300 KB are pinned already; 800 KB more would pass the 1 MiB cap, and 64 MiB never fit.
    const medium = artifactOf(800_000)
    const huge = { ...artifactOf(16), size: 64 * CAP }
    expect((await post("/v1/models", signAsPublisher(manifestOf("medium-lm", "1.0.0", medium), alice))).status).toBe(
      201
    )
    const hugeManifest = Either.getOrThrow(parseManifest({
      ...manifestOf("huge-lm", "1.0.0", huge),
      artifacts: { model: { filename: "model.onnx", size: huge.size, sha256: huge.sha256, cid: huge.cid } }
    }))
    expect((await post("/v1/models", signAsPublisher(hugeManifest, alice))).status).toBe(201)

    const full = await reply(
      await fetch(`${node.url}/v1/blobs/sha256-${medium.sha256}`, { method: "PUT", body: medium.bytes })
    )
    expectRefused(
      full,
      507,
      `the blob store is full: 800000 more bytes would exceed its cap of ${CAP} (300000 held by pinned or in-use blobs and uploads in progress)`
    )
    const tooBig = await stream("PUT", `/v1/blobs/sha256-${huge.sha256}`, huge.size, { announce: true })
    expectRefused(
      tooBig,
      507,
      new RegExp(`^the blob store is full: ${huge.size} more bytes would exceed its cap of ${CAP}`)
    )
    expect(tooBig.sent).toBeLessThan(8 * 1024 * 1024)
    expect(leftovers()).toEqual([])
    expect(await blobStatus(medium)).toBe(404)
    expect(await blobStatus(small)).toBe(200)
  })

  it("a 50 MB manifest body is refused before it is parsed, announced or not", async () => {
    const before = await journalHead()
    for (const route of ["/v1/models", "/v1/adapters"]) {
      for (const announce of [true, false]) {
        const answer = await stream("POST", route, FIFTY_MB, { announce, contentType: "application/json" })
        expectRefused(answer, 413)
        expect(answer.sent).toBeLessThan(8 * 1024 * 1024)
      }
    }
    const chunkedYank = await stream("POST", "/v1/models/tiny-lm/versions/1.0.0/yank", FIFTY_MB, {
      announce: false,
      contentType: "application/json"
    })
    expectRefused(chunkedYank, 413, "a yank request is larger than 65536 bytes: refused")
    expect(await journalHead()).toEqual(before)
  })

  it("builds download URLs from the node's address, not from the Host header", async () => {
    const port = new URL(node.url).port
    const answer = await new Promise<string>((resolve, reject) => {
      const request = http.request(`${node.url}/v1/models/small-lm/download?source=peer`, {
        headers: { host: `localhost:${port}` }
      }, (response) => {
        let text = ""
        response.setEncoding("utf8")
        response.on("data", (data: string) => (text += data))
        response.on("end", () => resolve(text))
      })
      request.on("error", reject)
      request.end()
    })
    const urls = JSON.parse(answer) as { model: string; signature: string }
    expect(urls.model).toBe(`${node.url}/v1/blobs/sha256-${small.sha256}`)
    expect(urls.signature).toBe(`${node.url}/v1/models/small-lm?version=1.0.0`)
  })

  it("serves ids of up to 128 characters, as the registry publishes them", async () => {
    const id = `l${"o".repeat(122)}ng-lm`
    expect(id.length).toBe(128)
    expect((await post("/v1/models", signAsPublisher(manifestOf(id, "1.0.0", weights), alice))).status).toBe(201)
    for (const route of [`/v1/models/${id}`, `/v1/models/${id}/versions`, `/v1/models/${id}/download`]) {
      // The router's default bound on a path segment is 100 characters: Server.ts passes ROUTE_PARAMETER_MAX_LENGTH.
      expect(
        (await fetch(`${node.url}${route}`)).status,
        `${route.length} characters: is HttpLayerRouter.serve given { routerConfig: { maxParamLength: ROUTE_PARAMETER_MAX_LENGTH } }?`
      ).toBe(200)
    }
    expect((await fetch(`${node.url}/v1/models/${id}x`)).status).toBe(400)
  })
})
