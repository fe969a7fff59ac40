/**
 * The Models service of a real node process, over its RPC as another program reaches it: node B
 * pulls a model from node A's registry only once its operator trusts the publisher's key, watching
 * the pull's progress, and lists it in its own registry; verifies it, and catches bytes changed on
 * its disk; publishes a blob it holds under a manifest signed with its node key. The CLI's
 * `edge-net registry` drives the same RPC.
 */
import { Chunk, Effect, Either, Layer, Stream } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { BlobStore } from "../../src/content/BlobStore.js"
import type { ModelManifest } from "../../src/content/Manifest.js"
import { pushToRegistry } from "../../src/content/Publish.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { socketProtocol } from "../../src/rpc/NodeConnection.js"
import { cliArgs, type RunningNode, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient } from "../support/RpcClient.js"
import { cacheReferenceModel, publisher } from "../support/SdkModels.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const exec = promisify(execFile)

let origin: RunningNode
let node: RunningNode
let dataDir: string
let manifest: ModelManifest

beforeAll(async () => {
  dataDir = tempDir("node-models-")
  ;[origin, node] = await Promise.all([startNode(tempDir("node-models-origin-")), startNode(dataDir)])
  manifest = await Effect.runPromise(
    Effect.flatMap(
      cacheReferenceModel("tiny-encoder"),
      (signed) => Effect.as(pushToRegistry(origin.url, signed), signed)
    )
      .pipe(Effect.provide(BlobStore.layer({ root: tempDir("node-models-local-") })))
  )
}, 60_000)

afterAll(async () => {
  await Promise.all([origin?.kill("SIGTERM"), node?.kill("SIGTERM")])
})

const withClient = <A, E>(use: (client: Effect.Effect.Success<typeof nodeRpcClient>) => Effect.Effect<A, E, never>) =>
  Effect.runPromise(
    Effect.scoped(Effect.flatMap(nodeRpcClient, use)).pipe(
      Effect.provide(Layer.merge(socketProtocol(node.url), signingClientLayer))
    )
  )

const listedIds = () =>
  withClient((client) => Effect.map(client.RegistryList({}), (models) => models.map((model) => model.id)))

/** The file that holds a blob in a node's content store. */
const blobFile = (root: string, sha256: string): string | undefined => {
  for (const entry of fs.readdirSync(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.includes(sha256) && !entry.name.endsWith(".json")) {
      return path.join(entry.parentPath, entry.name)
    }
  }
  return undefined
}

describe("models through a node's RPC", () => {
  it(
    "pulls from another registry only from trusted publishers, lists, verifies, catches tampering and publishes",
    async () => {
      const operator = operatorKeyOf(dataDir)
      const stranger = testKey("a stranger")
      const pullFromOrigin = { id: "tiny-encoder", registry: origin.url }

      const untrusted = await withClient((client) =>
        Effect.gen(function*() {
          const trustedBefore = yield* client.ModelsTrusted({})
          const pulled = yield* Effect.either(as(operator)(Stream.runCollect(client.ModelsPull(pullFromOrigin))))
          const strangerTrust = yield* Effect.either(
            as(stranger)(client.ModelsTrust({ keyId: publisher.keyId, publicKey: publisher.publicKey }))
          )
          const verify = yield* Effect.either(client.ModelsVerify({ id: "tiny-encoder" }))
          return { trustedBefore, pulled, strangerTrust, verify }
        })
      )
      expect(untrusted.trustedBefore).toEqual([])
      // Nothing trusted: the manifest is refused before a byte of the model is fetched, and nothing is kept.
      expect(Either.isLeft(untrusted.pulled)).toBe(true)
      if (Either.isLeft(untrusted.pulled)) {
        expect(untrusted.pulled.left.message).toBe(
          "manifest tiny-encoder@1.0.0 is signed only by untrusted key reference"
        )
      }
      expect(Either.isLeft(untrusted.strangerTrust)).toBe(true)
      if (Either.isLeft(untrusted.strangerTrust)) {
        expect(untrusted.strangerTrust.left.message).toBe(
          "ModelsTrust refused: needs 1 of the 1 operator key(s), signed by 0"
        )
      }
      expect(Either.isLeft(untrusted.verify)).toBe(true)
      expect(await listedIds()).not.toContain("tiny-encoder")

      const trusted = await withClient((client) =>
        Effect.gen(function*() {
          const key = yield* as(operator)(
            client.ModelsTrust({ keyId: publisher.keyId, publicKey: publisher.publicKey })
          )
          const events = Chunk.toArray(yield* as(operator)(Stream.runCollect(client.ModelsPull(pullFromOrigin))))
          const verified = yield* client.ModelsVerify({ id: "tiny-encoder", checkSignature: true })
          return { key, events, verified }
        })
      )
      expect(trusted.key).toEqual({ keyId: "reference", publicKey: publisher.publicKey, canSign: false })
      const model = manifest.artifacts.model!
      const progress = trusted.events.flatMap((event) => (event._tag === "PullProgress" ? [event] : []))
      expect(progress.some((event) => event.label.endsWith(model.filename) && event.bytesDone === model.size)).toBe(
        true
      )
      const tags = trusted.events.filter((event) => event._tag !== "PullProgress").map((event) => event._tag)
      expect(tags).toEqual(["Pulled", "Listed"])
      const pulled = trusted.events.at(-2)!
      if (pulled._tag !== "Pulled") throw new Error(`expected the receipt, got ${pulled._tag}`)
      expect(pulled.receipt.verifiedBy).toEqual(["reference"])
      expect(pulled.receipt.artifacts.map((artifact) => artifact.digest).sort()).toEqual(
        Object.values(manifest.artifacts).map((artifact) => `sha256-${artifact.sha256}`).sort()
      )
      const listed = trusted.events.at(-1)!
      if (listed._tag !== "Listed") throw new Error(`expected the listing, got ${listed._tag}`)
      // Listed exactly as its publisher signed it: the node vouches for nothing.
      expect(listed.receipt.keyId).toBe("reference")
      expect(await listedIds()).toContain("tiny-encoder")
      const served = await fetch(`${node.url}/v1/blobs/sha256-${model.sha256}`)
      expect(served.status).toBe(200)
      expect((await served.arrayBuffer()).byteLength).toBe(model.size)
      expect(trusted.verified).toMatchObject({ ok: true, signedBy: ["reference"], problems: [] })
      expect(trusted.verified.artifacts).toHaveLength(Object.keys(manifest.artifacts).length)

      // Bytes changed on the node's disk: verify names the file, and drops the bad copy.
      const file = blobFile(path.join(dataDir, "content"), model.sha256)!
      fs.chmodSync(file, 0o644)
      const bytes = fs.readFileSync(file)
      bytes[bytes.length >> 1]! ^= 0xff
      fs.writeFileSync(file, bytes)
      const afterTamper = await withClient((client) =>
        Effect.gen(function*() {
          const tampered = yield* client.ModelsVerify({ id: "tiny-encoder" })
          // A pull again restores the dropped file from the origin.
          yield* as(operator)(Stream.runDrain(client.ModelsPull(pullFromOrigin)))
          const repaired = yield* client.ModelsVerify({ id: "tiny-encoder" })
          const published = yield* as(operator)(client.ModelsPublish({
            artifacts: [{ sha256: model.sha256, filename: "model.onnx" }],
            name: "tiny-encoder-b",
            version: "1.0.0",
            type: "embedding",
            license: "MIT"
          }))
          const info = yield* client.NodeInfo()
          const badBlob = yield* Effect.either(
            as(operator)(client.ModelsPublish({
              artifacts: [{ sha256: "0".repeat(64), filename: "model.onnx" }],
              name: "nothing",
              version: "1.0.0",
              type: "embedding"
            }))
          )
          const lineageOnly = yield* Effect.either(
            as(operator)(client.ModelsPublish({
              artifacts: [{ sha256: model.sha256, filename: "model.onnx" }],
              name: "lineage-only",
              version: "1.0.0",
              type: "embedding",
              baseModel: { sha256: model.sha256 }
            }))
          )
          return { tampered, repaired, published, info, badBlob, lineageOnly }
        })
      )
      expect(afterTamper.tampered.ok).toBe(false)
      expect(afterTamper.tampered.problems).toHaveLength(1)
      expect(afterTamper.tampered.problems[0]).toMatch(new RegExp(`^${model.filename}: `))
      expect(afterTamper.repaired.ok).toBe(true)
      expect(afterTamper.published.receipt).toMatchObject({ id: "tiny-encoder-b", version: "1.0.0" })
      expect(afterTamper.published.receipt.keyId).toBe(afterTamper.info.nodeId)
      expect(await listedIds()).toContain("tiny-encoder-b")
      expect(Either.isLeft(afterTamper.badBlob)).toBe(true)
      if (Either.isLeft(afterTamper.badBlob)) {
        expect(afterTamper.badBlob.left.message).toBe(
          `model.onnx: no blob sha256-${"0".repeat(64)} in the store`
        )
      }
      expect(await listedIds()).not.toContain("nothing")
      expect(Either.isLeft(afterTamper.lineageOnly) && afterTamper.lineageOnly.left.message).toBe(
        "a base model is named only for an optimized model: give its quantization"
      )
    },
    120_000
  )

  it("`edge-net registry` is a client of the same RPC", async () => {
    const run = (...args: ReadonlyArray<string>) =>
      exec(process.execPath, cliArgs("registry", ...args, "--node", node.url, "--data", dataDir))
    const trusted = await run("trusted")
    expect(trusted.stdout).toContain(publisher.publicKey)
    const verified = await run("verify", "tiny-encoder", "--check-signature")
    expect(verified.stdout.trim()).toMatch(
      /^tiny-encoder@1\.0\.0: \d+ artifact\(s\) verified \(sha256 and CID\), signed by reference$/
    )
    const pulled = await run("pull", "tiny-encoder", "--from", origin.url)
    expect(pulled.stdout).toMatch(/^pulled tiny-encoder@1\.0\.0 \(signed by reference\)/)
    expect(pulled.stdout).toMatch(/already cached/)
    const missing = await run("verify", "no-such-model").then(
      () => undefined,
      (error: { code: number; stderr: string }) => error
    )
    expect(missing?.code).toBe(1)
    expect(missing?.stderr.trim().split("\n")).toHaveLength(1)
    expect(missing?.stderr).toMatch(/^edge-net: .*no-such-model/)
  }, 60_000)
})
