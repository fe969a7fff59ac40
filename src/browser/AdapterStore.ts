/**
 * LoRA adapters trained in the page (Training.ts), kept in IndexedDB under a name with the model they
 * were trained on, so a later visit runs them again: an InferenceSession opened with `adapterSlots`
 * applies one per call (`embed(texts, { adapter })`, `generate(prompt, { adapter })`).
 */
import { Either, ParseResult, Schema } from "effect"
import { requestDone, transactionDone } from "./IndexedDb.js"
import type { LoadedModel } from "./ModelLoader.js"
import type { TrainedAdapter } from "./Training.js"

const Count = Schema.Int.pipe(Schema.positive())

const Factors = Schema.Struct({
  inFeatures: Count,
  outFeatures: Count,
  /** [rank, inFeatures], row-major. */
  A: Schema.instanceOf(Float32Array),
  /** [outFeatures, rank], row-major. */
  B: Schema.instanceOf(Float32Array)
})

/** An adapter as the store keeps it: what it was trained on, and its factors (as the node's LoraWeights). */
const SavedAdapterSchema = Schema.Struct({
  metadata: Schema.Struct({
    id: Schema.NonEmptyTrimmedString,
    /** The model it was trained on, `id@version`. */
    baseModel: Schema.String,
    /** SHA-256 of that model's ONNX file: the adapter runs on those exact weights only. */
    baseModelDigest: Schema.String.pipe(Schema.pattern(/^[0-9a-f]{64}$/)),
    createdAt: Schema.String,
    steps: Schema.Int,
    finalLoss: Schema.Number
  }),
  weights: Schema.Struct({
    rank: Count,
    alpha: Schema.Number,
    modules: Schema.Record({ key: Schema.String, value: Factors })
  }).pipe(
    Schema.filter((weights) => {
      for (const [module, { A, B, inFeatures, outFeatures }] of Object.entries(weights.modules)) {
        if (A.length !== weights.rank * inFeatures || B.length !== outFeatures * weights.rank) {
          return `module ${module}: factors of ${A.length} and ${B.length} values are not [${weights.rank}, ${inFeatures}] and [${outFeatures}, ${weights.rank}]`
        }
      }
      return Object.keys(weights.modules).length > 0 || "the adapter adapts no module"
    })
  )
})

/** An adapter kept in the page, ready to hand to a session's `embed` or `generate`. */
export type SavedAdapter = typeof SavedAdapterSchema.Type

/** One line: which adapter, and what went wrong (a bad name, a damaged record, IndexedDB refusing). */
export class AdapterStoreError extends Error {
  override readonly name = "AdapterStoreError"
}

const ADAPTERS = "adapters"
const failure = (reason: string) => new AdapterStoreError(reason)
const decodeSaved = Schema.decodeUnknownEither(SavedAdapterSchema)

/** The stored record as a SavedAdapter, or the one-line reason it is not one. */
const checked = (record: unknown, source: string): SavedAdapter =>
  Either.getOrThrowWith(
    decodeSaved(record),
    (error) => new AdapterStoreError(`${source}: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n")[0]}`)
  )

const openDatabase = (name: string): Promise<IDBDatabase> => {
  const request = indexedDB.open(name, 1)
  request.onupgradeneeded = () => {
    request.result.createObjectStore(ADAPTERS, { keyPath: "metadata.id" })
  }
  return requestDone(request, failure)
}

/** The page's adapters by name (`databaseName` separates stores, e.g. per test). */
export class AdapterStore {
  private constructor(private readonly db: IDBDatabase) {}

  /** Opens (or creates) the store; default database `edge-net-adapters`. */
  static async open(options: { readonly databaseName?: string | undefined } = {}): Promise<AdapterStore> {
    if (typeof indexedDB === "undefined") throw new AdapterStoreError("this page has no IndexedDB")
    return new AdapterStore(await openDatabase(options.databaseName ?? "edge-net-adapters"))
  }

  /**
   * Keeps `trained` (trainAdapter's result on `model`) as `id`, replacing an adapter of that name;
   * returns it as a session takes it.
   */
  async save(id: string, model: LoadedModel, trained: TrainedAdapter): Promise<SavedAdapter> {
    const digest = model.manifest.artifacts["model"]?.sha256
    if (digest === undefined) throw new AdapterStoreError(`${model.id}@${model.version} has no artifact named model`)
    const adapter = checked({
      metadata: {
        id,
        baseModel: `${model.id}@${model.version}`,
        baseModelDigest: digest,
        createdAt: new Date().toISOString(),
        steps: trained.steps,
        finalLoss: trained.losses.at(-1) ?? Number.NaN
      },
      weights: trained.weights
    }, `adapter "${id.slice(0, 80)}"`)
    const transaction = this.db.transaction(ADAPTERS, "readwrite")
    transaction.objectStore(ADAPTERS).put(adapter)
    await transactionDone(transaction, failure)
    return adapter
  }

  /** The adapter named `id`, or undefined when the store has none. */
  async load(id: string): Promise<SavedAdapter | undefined> {
    const record = await requestDone<unknown>(
      this.db.transaction(ADAPTERS, "readonly").objectStore(ADAPTERS).get(id),
      failure
    )
    return record === undefined ? undefined : checked(record, `the stored adapter "${id.slice(0, 80)}"`)
  }

  /** What the store holds: every adapter's metadata, by name. */
  async list(): Promise<Array<SavedAdapter["metadata"]>> {
    const records = await requestDone<Array<unknown>>(
      this.db.transaction(ADAPTERS, "readonly").objectStore(ADAPTERS).getAll(),
      failure
    )
    return records.map((record, index) => checked(record, `stored adapter ${index}`).metadata)
      .sort((a, b) => a.id.localeCompare(b.id))
  }

  /** Forgets the adapter named `id` (nothing happens when there is none). */
  async delete(id: string): Promise<void> {
    const transaction = this.db.transaction(ADAPTERS, "readwrite")
    transaction.objectStore(ADAPTERS).delete(id)
    await transactionDone(transaction, failure)
  }

  /** Closes the database connection. */
  close(): void {
    this.db.close()
  }
}
