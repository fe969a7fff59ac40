/**
 * A custom runtime from two of edge-net's layers: a model registry (the event-sourced registry actor
 * on its own SQLite journal) and inference (the ModelLoader over a content store, onnxruntime-node),
 * composed into an embedding service. No node, no economy, no peers.
 *
 *   node --import tsx examples/embedding-service.ts DATA_DIR MODEL_FOLDER [PORT]
 *
 * It publishes the model folder (model.onnx or onnx/model.onnx, tokenizer.json, configs) into its
 * registry, signed with the runtime's key, then answers `POST /embed {"text": "..."}` with
 * `{"model", "version", "embedding"}` and prints `listening on http://127.0.0.1:PORT`.
 */
import { Inference, InferenceSession, ModelLoader, Registry, registryCatalog, sqliteKernel } from "edge-net"
import { BlobStore, buildManifest, NodeKey, TrustStore } from "edge-net/models"
import { Effect, Layer, Runtime } from "effect"
import * as fs from "node:fs"
import * as http from "node:http"
import * as path from "node:path"

const [dataDir, folder, portText = "0"] = process.argv.slice(2)
if (dataDir === undefined || folder === undefined) {
  console.error("usage: embedding-service.ts DATA_DIR MODEL_FOLDER [PORT]")
  process.exit(2)
}
const id = path.basename(path.resolve(folder))

/** The registry on its own journal (data dir, node key beside it), and the content store. */
const registryLayer = Registry.Default.pipe(Layer.provideMerge(sqliteKernel({ dataDir, synchronous: "normal" })))
const storeLayer = BlobStore.layer({ root: path.join(dataDir, "content") })

/** Inference whose catalog is that registry: the loader opens what the registry lists. */
const inferenceLayer = Layer.unwrapEffect(
  Effect.map(Registry, (registry) => ModelLoader.layer({ catalog: registryCatalog(registry), maxModels: 1 }))
).pipe(Layer.provideMerge(Layer.mergeAll(TrustStore.Default(path.join(dataDir, "keys")), Inference.node)))

const runtime = inferenceLayer.pipe(Layer.provideMerge(Layer.mergeAll(registryLayer, storeLayer)))

/** Publishes the folder's files into the registry, signed by this runtime's key, unless already there. */
const publishFolder = Effect.gen(function*() {
  const registry = yield* Registry
  const listed = yield* registry.list()
  if (listed.some((model) => model.id === id)) return
  const key = yield* NodeKey
  const model = ["onnx/model.onnx", "model.onnx"].map((file) => path.join(folder, file)).find((file) =>
    fs.existsSync(file)
  )
  if (model === undefined) return yield* Effect.dieMessage(`no model.onnx or onnx/model.onnx in ${folder}`)
  const files = [
    model,
    ...["tokenizer.json", "tokenizer_config.json", "config.json"].map((file) => path.join(folder, file))
  ]
    .filter((file) => fs.existsSync(file))
  const manifest = yield* buildManifest({
    files,
    id,
    name: id,
    version: "1.0.0",
    type: "embedding",
    license: "MIT",
    expiresInDays: 365,
    signer: { keyId: "embedding-service", publicKey: key.publicKey, sign: (message) => key.sign(message) }
  })
  yield* registry.publish(manifest, { kind: "model" })
})

const serve = Effect.gen(function*() {
  yield* publishFolder
  const session = yield* InferenceSession.create(id)
  const run = Runtime.runPromise(yield* Effect.runtime<never>())
  const server = http.createServer((request, response) => {
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { "content-type": "application/json" })
      response.end(JSON.stringify(body))
    }
    if (request.method !== "POST" || request.url !== "/embed") return reply(404, { error: "POST /embed" })
    let body = ""
    request.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")))
    request.on("end", () => {
      let text: unknown
      try {
        text = (JSON.parse(body) as { text?: unknown }).text
      } catch {
        return reply(400, { error: "the body is not JSON" })
      }
      if (typeof text !== "string") return reply(400, { error: "expected {\"text\": \"...\"}" })
      run(session.embed(text)).then(
        (vector) => reply(200, { model: session.id, version: session.version, embedding: Array.from(vector) }),
        (error: unknown) => reply(500, { error: String(error) })
      )
    })
  })
  yield* Effect.async<void>((resume) => {
    server.listen(Number(portText), "127.0.0.1", () => resume(Effect.void))
  })
  const address = server.address()
  console.log(
    `listening on http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : portText}`
  )
  yield* Effect.addFinalizer(() => Effect.sync(() => server.close()))
  return yield* Effect.never
})

Effect.runPromise(Effect.scoped(serve).pipe(Effect.provide(runtime))).catch((error: unknown) => {
  console.error(String(error))
  process.exit(1)
})
