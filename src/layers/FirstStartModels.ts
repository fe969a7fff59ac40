/**
 * Models on first start: a node publishes the reference models (tiny-lm, tiny-encoder) in FP32, INT8
 * and INT4, and Silero VAD when its package is installed, into its own registry, signed with its key,
 * in the background once it serves; a model already published is left as it is, so a restart does nothing.
 * The heavy part (reading, quantizing, storing) runs in a child process, FirstStartProcess.ts.
 */
import { Effect, Layer, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import type { JobReport } from "../actors/optimizer/RunRecord.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { BlobStore } from "../content/BlobStore.js"
import type { ModelManifest } from "../content/Manifest.js"
import type { ManifestSigner } from "../content/ManifestSigning.js"
import { signManifest } from "../content/ManifestSigning.js"
import { NodeKey } from "../content/NodeKey.js"
import { TrustStore } from "../content/TrustStore.js"
import { childReports } from "../node/ChildReports.js"
import { moduleProcess } from "../node/ModuleWorker.js"
import { NodeConfig } from "./NodeConfig.js"

export const FIRST_START_VERSION = "1.0.0"

export type Precision = "FP32" | "INT8" | "INT4"

/** One model of the first-start catalog: where its files are, and how it is derived. */
export interface CatalogEntry {
  readonly id: string
  readonly type: string
  readonly precision: Precision
  /** The FP32 ONNX file (the one quantized for INT8 / INT4). */
  readonly model: string
  /** Tokenizer and configuration files published beside the model. */
  readonly companions: ReadonlyArray<string>
  readonly license: string
  readonly family: string
}

const REFERENCE_MODELS = [
  { name: "tiny-encoder", type: "embedding" },
  { name: "tiny-lm", type: "text-generation" }
] as const
const COMPANIONS = ["tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json"]
const SILERO_VAD = path.join("node_modules", "@ricky0123", "vad-web", "dist", "silero_vad_v5.onnx")

/** The nearest folder above this module holding `relative`: the checkout's, or the package's. */
const findAbove = (relative: string): string | undefined => {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = path.join(dir, relative)
    if (fs.existsSync(candidate)) return candidate
    const parent = path.dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/** What a new node publishes, from the reference models beside the sources and the packages installed. */
export const firstStartCatalog = (): ReadonlyArray<CatalogEntry> => {
  const reference = findAbove(path.join("models", "reference", "tiny-lm", "onnx", "model.onnx"))
  const entries: Array<CatalogEntry> = []
  for (const { name, type } of reference === undefined ? [] : REFERENCE_MODELS) {
    const dir = path.resolve(reference ?? "", "..", "..", "..", name)
    const companions = COMPANIONS.map((file) => path.join(dir, file)).filter((file) => fs.existsSync(file))
    for (const precision of ["FP32", "INT8", "INT4"] as const) {
      entries.push({
        id: precision === "FP32" ? name : `${name}-${precision.toLowerCase()}`,
        type,
        precision,
        model: path.join(dir, "onnx", "model.onnx"),
        companions,
        license: "MIT",
        family: name
      })
    }
  }
  // A real pretrained model (Silero VAD v5, MIT), when the package that ships it is installed.
  const vad = findAbove(SILERO_VAD)
  if (vad !== undefined) {
    entries.push({
      id: "silero-vad",
      type: "audio-classification",
      precision: "FP32",
      model: vad,
      companions: [],
      license: "MIT",
      family: "silero-vad"
    })
  }
  return entries
}

/** The optimizer job that quantized a first-start model, named in its manifest. */
export const firstStartJobId = (id: string) => `first-start-${id}`

/** What the node asks of its first-start process (FirstStartProcess.ts). */
export interface FirstStartOrder {
  readonly entries: ReadonlyArray<CatalogEntry>
  /** The node's blob store. */
  readonly blobs: { readonly root: string; readonly maxBytes: number }
  /** Named in each manifest; the node signs it. */
  readonly publisher: { readonly keyId: string; readonly publicKey: string }
  /** Where the quantized files wait to be stored. */
  readonly staging: string
}

/** What the first-start process tells the node, in order: each optimizer job, each manifest (then `Done`). */
export type FirstStartReport =
  | JobReport
  | { readonly _tag: "Described"; readonly id: string; readonly precision: Precision; readonly manifest: ModelManifest }

/**
 * Publishes every catalog model the registry does not hold yet; returns the ids it published. A child
 * process prepares them (FirstStartProcess.ts); this process records the optimizer jobs as they start
 * and end, signs each manifest with the node's key and publishes it to the registry.
 */
export const publishFirstStartModels = Effect.fn("FirstStartModels.publish")(function*(
  catalog: ReadonlyArray<CatalogEntry>
) {
  const registry = yield* Registry
  const optimizer = yield* Optimizer
  const store = yield* BlobStore
  const key = yield* NodeKey
  const config = yield* NodeConfig
  const signer: ManifestSigner = { keyId: key.nodeId, publicKey: key.publicKey, sign: (message) => key.sign(message) }
  const entries: Array<CatalogEntry> = []
  for (const entry of catalog) {
    const held = yield* Effect.either(registry.get(entry.id, FIRST_START_VERSION))
    if (held._tag === "Left") entries.push(entry)
  }
  if (entries.length === 0) return []
  const order: FirstStartOrder = {
    entries,
    blobs: { root: store.root, maxBytes: store.maxBytes },
    publisher: { keyId: signer.keyId, publicKey: signer.publicKey },
    staging: path.join(config.dataDir, "first-start")
  }
  const published: Array<string> = []
  const reports = childReports<FirstStartReport>(
    () => moduleProcess(import.meta.url, "./FirstStartProcess"),
    order,
    "the first-start process"
  )
  yield* Stream.runForEach(reports, (report) =>
    Effect.gen(function*() {
      switch (report._tag) {
        case "Described": {
          yield* registry.publish(signManifest(report.manifest, signer))
          published.push(report.id)
          return yield* Effect.logInfo(
            `published ${report.id}@${FIRST_START_VERSION} (${report.precision}) to this node's registry`
          )
        }
        default:
          return yield* optimizer.recordReport(report)
      }
    }))
  return published
})

/**
 * Trusts the node's key in the trust store of this machine's `edge-net-models`, whose registry is this
 * node: the user who runs the node owns its key, so the models it signed pull without another step.
 */
export const trustInCli = (keysDir: string) =>
  Effect.gen(function*() {
    const key = yield* NodeKey
    const trusted = yield* Effect.provide(
      Effect.flatMap(TrustStore, (store) => store.list()),
      TrustStore.Default(keysDir)
    )
    if (trusted.some((entry) => entry.keyId === key.nodeId && entry.publicKey === key.publicKey)) return false
    yield* Effect.provide(
      Effect.flatMap(TrustStore, (store) => store.trust(key.nodeId, key.publicKey)),
      TrustStore.Default(keysDir)
    )
    yield* Effect.logInfo(`edge-net-models on this machine now trusts this node's key ${key.nodeId} (${keysDir})`)
    return true
  })

/**
 * The first-start publication as a background fiber of the node: it starts once the node's services
 * are up, logs what it published, and a failure is one warning (the node serves on without them).
 */
export const firstStartModelsLayer = Layer.scopedDiscard(
  Effect.gen(function*() {
    const config = yield* NodeConfig
    if (config.firstStartModels !== true) return
    const work = Effect.gen(function*() {
      const whole = firstStartCatalog()
      const asked = config.firstStartIds
      const unknown = asked?.filter((id) => !whole.some((entry) => entry.id === id)) ?? []
      if (unknown.length > 0) {
        yield* Effect.logWarning(
          `EDGE_NET_FIRST_START_MODELS names ${unknown.join(", ")}, not in the catalog (${
            whole.map((entry) => entry.id).join(", ")
          })`
        )
      }
      const catalog = asked === undefined ? whole : whole.filter((entry) => asked.includes(entry.id))
      if (catalog.length === 0) {
        return yield* Effect.logWarning("no reference models to publish: the registry starts empty")
      }
      const published = yield* publishFirstStartModels(catalog)
      if (published.length > 0) {
        yield* Effect.logInfo(`first-start models ready: ${published.join(", ")}`)
      }
      if (config.cliTrustDir !== undefined) yield* trustInCli(config.cliTrustDir)
    }).pipe(
      Effect.catchAllCause((cause) =>
        Effect.logWarning("publishing the first-start models failed; the node serves on without them", cause)
      )
    )
    yield* Effect.forkScoped(work)
  })
)
