/**
 * An adapter as one JSON file, the seed's `LoRAAdapter` (model-distribution 5.3) with its weights
 * inline: `weights: { <module>: { lora_A, lora_B } }` as row-major number lists ([rank, in] and
 * [out, rank]), a classifier's head beside them. Every float32 is written in full, so importing the
 * file rebuilds the very bytes exported: the checksum matches and the signature still verifies.
 */
import { Effect, Either, ParseResult, Schema } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { sha256, toHex } from "../../content/Sha256.js"
import { writeFileAtomically } from "../../node/AtomicFile.js"
import type { AdapterMetadata, LoraModule } from "./Adapter.js"
import {
  AdapterFileError,
  adapterMetadataFile,
  adapterWeightsFile,
  encodeAdapterWeights,
  loadAdapter,
  parseAdapterMetadata
} from "./AdapterFile.js"
import { classifierHeadFile, encodeClassifierHead } from "./ClassifierHeadFile.js"
import { readSafetensors } from "./Safetensors.js"

const Numbers = Schema.Array(Schema.Number)

/** What the JSON file adds to adapter.json's fields. */
const Inline = Schema.Struct({
  weights: Schema.Record({ key: Schema.String, value: Schema.Struct({ lora_A: Numbers, lora_B: Numbers }) }),
  /** How adapter.safetensors stores the factors (F16 halves the file); F32 when absent. */
  weightsDtype: Schema.optionalWith(Schema.Literal("F32", "F16"), { exact: true }),
  classifierHead: Schema.optionalWith(
    Schema.Struct({ hidden: Schema.Number, classes: Schema.Number, weight: Numbers, bias: Numbers }),
    { exact: true }
  )
})

const decodeInline = Schema.decodeUnknownEither(Inline)

const invalid = (file: string, problem: string) => new AdapterFileError({ path: file, kind: "Invalid", problem })

const fileSystem = (file: string, cause: unknown) =>
  new AdapterFileError({
    path: file,
    kind: "FileSystem",
    problem: cause instanceof Error ? cause.message.split("\n")[0]! : String(cause)
  })

/** The adapter stored in `directory` as one JSON document (its text, one line), with its metadata. */
export const adapterDocument = Effect.fn("AdapterJson.adapterDocument")(function*(directory: string) {
  const adapter = yield* loadAdapter(directory)
  const weightsFile = path.join(directory, adapterWeightsFile)
  const stored = yield* Effect.try({
    try: () => readSafetensors(new Uint8Array(fs.readFileSync(weightsFile))),
    catch: (cause) => fileSystem(weightsFile, cause)
  })
  const dtype = [...stored.tensors.values()][0]?.dtype === "F16" ? "F16" : "F32"
  const weights = Object.fromEntries(adapter.metadata.targetModules.map((module) => {
    const factors = adapter.weights.modules[module]!
    return [module, { lora_A: Array.from(factors.A), lora_B: Array.from(factors.B) }]
  }))
  const head = adapter.classifier?.head
  const document = {
    ...adapter.metadata,
    weights,
    ...(dtype === "F32" ? {} : { weightsDtype: dtype }),
    ...(head === undefined
      ? {}
      : {
        classifierHead: {
          hidden: head.hidden,
          classes: head.classes,
          weight: Array.from(head.weight),
          bias: Array.from(head.bias)
        }
      })
  }
  return { metadata: adapter.metadata, text: JSON.stringify(document) + "\n" }
})

/** Writes the adapter stored in `directory` to `file` as one JSON document. */
export const exportAdapterJson = Effect.fn("AdapterJson.exportAdapterJson")(function*(directory: string, file: string) {
  const { metadata, text } = yield* adapterDocument(directory)
  yield* Effect.tryPromise({
    try: () => writeFileAtomically(file, text),
    catch: (cause) => fileSystem(file, cause)
  })
  return metadata
})

const moduleFrom = (
  name: string,
  rank: number,
  factors: { readonly lora_A: ReadonlyArray<number>; readonly lora_B: ReadonlyArray<number> }
): LoraModule | string => {
  const inFeatures = factors.lora_A.length / rank
  const outFeatures = factors.lora_B.length / rank
  if (!Number.isInteger(inFeatures) || !Number.isInteger(outFeatures) || inFeatures === 0 || outFeatures === 0) {
    return `weights.${name}: lora_A (${factors.lora_A.length} values) and lora_B (${factors.lora_B.length}) are not [rank, in] and [out, rank] for rank ${rank}`
  }
  return { inFeatures, outFeatures, A: Float32Array.from(factors.lora_A), B: Float32Array.from(factors.lora_B) }
}

/**
 * Stores the adapter of JSON file `file` in the directory `directoryFor` names (which must not hold
 * one yet): the weights rebuilt must have the metadata's checksum, then it is read back and checked
 * like any stored adapter (signature included). Returns its metadata.
 */
export const importAdapterJson = Effect.fn("AdapterJson.importAdapterJson")(
  function*(file: string, directoryFor: (metadata: AdapterMetadata) => string) {
    const text = yield* Effect.tryPromise({
      try: () => fsp.readFile(file, "utf8"),
      catch: (cause) => fileSystem(file, cause)
    })
    return yield* importAdapterDocument(text, file, directoryFor)
  }
)

/** `importAdapterJson` of a document's text; `file` names it in errors. */
export const importAdapterDocument = Effect.fn("AdapterJson.importAdapterDocument")(
  function*(text: string, file: string, directoryFor: (metadata: AdapterMetadata) => string) {
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (cause) => invalid(file, `is not JSON (${cause instanceof Error ? cause.message : String(cause)})`)
    })
    const inline = yield* Either.mapLeft(decodeInline(json), (error) =>
      invalid(
        file,
        `is not an adapter with its weights: ${
          ParseResult.TreeFormatter.formatErrorSync(error).split("\n").pop()?.trim()
        }`
      ))
    if (typeof json !== "object" || json === null) {
      return yield* invalid(file, "must be a JSON object")
    }
    const fields = Object.fromEntries(
      Object.entries(json).filter(([key]) => !Object.hasOwn(Inline.fields, key))
    )
    const metadata = yield* Either.mapLeft(parseAdapterMetadata(fields), (problem) => invalid(file, problem))
    const modules: Record<string, LoraModule> = {}
    if (Object.keys(inline.weights).sort().join("\n") !== [...metadata.targetModules].sort().join("\n")) {
      return yield* invalid(
        file,
        `weights holds modules ${Object.keys(inline.weights).sort().join(", ")}, but targetModules lists ${
          [...metadata.targetModules].sort().join(", ")
        }`
      )
    }
    // In targetModules' order, the order the exporter's safetensors had: the same bytes, the same checksum.
    for (const name of metadata.targetModules) {
      const module = moduleFrom(name, metadata.rank, inline.weights[name]!)
      if (typeof module === "string") return yield* invalid(file, module)
      modules[name] = module
    }
    const bytes = encodeAdapterWeights(
      { rank: metadata.rank, alpha: metadata.alpha, modules },
      inline.weightsDtype ?? "F32"
    )
    if (toHex(sha256(bytes)) !== metadata.checksum) {
      return yield* new AdapterFileError({
        path: file,
        kind: "Checksum",
        problem: `its weights have sha256 ${toHex(sha256(bytes))}, but checksum says ${metadata.checksum}`
      })
    }
    const head = inline.classifierHead
    const labels = metadata.classifier?.labels
    if ((head === undefined) !== (labels === undefined)) {
      return yield* invalid(
        file,
        "classifier and classifierHead come together, or not at all"
      )
    }
    const headBytes = head === undefined || labels === undefined
      ? undefined
      : encodeClassifierHead({
        hidden: head.hidden,
        classes: head.classes,
        weight: Float32Array.from(head.weight),
        bias: Float32Array.from(head.bias)
      }, labels)
    const directory = directoryFor(metadata)
    if (fs.existsSync(path.join(directory, adapterMetadataFile))) {
      return yield* invalid(
        file,
        `adapter ${metadata.id}@${metadata.version} is already stored here`
      )
    }
    yield* Effect.tryPromise({
      try: async () => {
        await fsp.mkdir(directory, { recursive: true })
        await writeFileAtomically(path.join(directory, adapterWeightsFile), bytes)
        if (headBytes !== undefined) await writeFileAtomically(path.join(directory, classifierHeadFile), headBytes)
        await writeFileAtomically(path.join(directory, adapterMetadataFile), JSON.stringify(metadata, null, 2) + "\n")
      },
      catch: (cause) => fileSystem(directory, cause)
    })
    // Checked as every stored adapter is (head checksum, signature): a bad one leaves nothing behind.
    return yield* loadAdapter(directory).pipe(
      Effect.map((adapter) => adapter.metadata),
      Effect.tapError(() => Effect.promise(() => fsp.rm(directory, { recursive: true, force: true })))
    )
  }
)
