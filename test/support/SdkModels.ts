/**
 * A models cache holding the reference models (tiny-lm, tiny-encoder) as a pull would leave them:
 * blobs in the store, signed manifests beside them; and random adapters stored for tiny-lm.
 */
import { Effect, Layer } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Inference } from "../../src/compute/inference/Inference.js"
import type { LoraWeights } from "../../src/compute/lora/Adapter.js"
import { SeededRandom } from "../../src/compute/lora/Adapter.js"
import { loraTargets } from "../../src/compute/lora/GraphLora.js"
import { saveLocalAdapter } from "../../src/compute/lora/LocalAdapters.js"
import { readModel } from "../../src/compute/onnx/OnnxModel.js"
import { BlobStore } from "../../src/content/BlobStore.js"
import { saveManifest } from "../../src/content/LocalModels.js"
import type { ManifestSigner } from "../../src/content/ManifestSigning.js"
import { keyPairFromSeed } from "../../src/content/NodeKey.js"
import { buildManifest } from "../../src/content/Publish.js"
import { TrustStore } from "../../src/content/TrustStore.js"
import { ModelLoader, type ModelLoaderOptions } from "../../src/sdk/ModelLoader.js"

export const REFERENCE = path.resolve(import.meta.dirname, "../../models/reference")

const publisherPair = keyPairFromSeed(new Uint8Array(32).fill(21))
export const publisher: ManifestSigner = {
  keyId: "reference",
  publicKey: publisherPair.publicKey,
  sign: (message) => publisherPair.sign(message)
}

const modelFiles = (name: string) =>
  ["onnx/model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json"]
    .map((file) => path.join(REFERENCE, name, file))
    .filter((file) => fs.existsSync(file))

/** Stores a reference model in the cache as version `version`, as a pull would. */
export const cacheReferenceModel = (name: "tiny-lm" | "tiny-encoder", version = "1.0.0") =>
  Effect.gen(function*() {
    const store = yield* BlobStore
    const manifest = yield* buildManifest({
      files: modelFiles(name),
      id: name,
      name,
      version,
      type: name === "tiny-lm" ? "text-generation" : "embedding",
      license: "MIT",
      expiresInDays: 30,
      signer: publisher
    })
    yield* saveManifest(store.root, manifest)
    return manifest
  })

/** Random LoRA factors of `rank` on every `every`-th MatMul of a model (seeded, so reproducible). */
export const randomLoraWeights = (modelBytes: Uint8Array, seed: number, rank: number, every = 1): LoraWeights => {
  const random = new SeededRandom(seed)
  const draw = (length: number, size: number) => Float32Array.from({ length }, () => (random.uniform() * 2 - 1) * size)
  const modules = Object.fromEntries(
    loraTargets(readModel(modelBytes)).filter((_, index) => index % every === 0).map((
      { module, inFeatures, outFeatures }
    ) => [module, {
      inFeatures,
      outFeatures,
      A: draw(rank * inFeatures, 1 / Math.sqrt(inFeatures)),
      B: draw(outFeatures * rank, 0.6)
    }])
  )
  return { rank, alpha: 2 * rank, modules }
}

/** A random adapter of `rank` on every `every`-th MatMul of the model, stored in the cache as `id@1.0.0`. */
export const storeRandomAdapter = (
  cacheRoot: string,
  model: "tiny-lm" | "tiny-encoder",
  id: string,
  rank: number,
  seed: number,
  every = 1
) =>
  Effect.gen(function*() {
    const bytes = new Uint8Array(fs.readFileSync(path.join(REFERENCE, model, "onnx", "model.onnx")))
    const weights = randomLoraWeights(bytes, seed, rank, every)
    yield* saveLocalAdapter(cacheRoot, {
      id,
      name: id,
      description: "random factors, for tests",
      version: "1.0.0",
      createdAt: new Date().toISOString(),
      baseModel: model,
      baseModelDigest: crypto.createHash("sha256").update(bytes).digest("hex"),
      training: { steps: 0, finalLoss: 0, samples: 0, duration: 0 },
      quality: {},
      sharing: { public: false, domain: "test", license: "MIT" }
    }, weights)
    return weights
  })

/** The loader's layer over a cache at `root` (trust store beside it) and onnxruntime-node. */
export const loaderLayer = (root: string, options: ModelLoaderOptions = {}) =>
  ModelLoader.layer(options).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        BlobStore.layer({ root }),
        TrustStore.Default(path.join(root, "keys")),
        Inference.node
      )
    )
  )
