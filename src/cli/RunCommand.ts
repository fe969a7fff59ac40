/**
 * `edge-net-models run <id|dir|model.onnx> --prompt ... | --embed ...`: try a model. A directory (or a
 * model file) needs tokenizer.json beside it; an id is a model pulled into the cache.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option, Stream } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { Inference } from "../compute/inference/Inference.js"
import { readModelFolder } from "../compute/inference/ModelFolder.js"
import { loadLocalAdapter } from "../compute/lora/LocalAdapters.js"
import { BlobStore } from "../content/BlobStore.js"
import { readManifest } from "../content/LocalModels.js"
import { cacheDirectory } from "../content/ModelsConfig.js"
import { modelSourceOf } from "../sdk/ModelLoader.js"
import { CliError } from "./CliError.js"
import { configOption, ModelsSettings, parseReference, withModels } from "./ModelsContext.js"
import { jsonOption, output } from "./Shared.js"

/** The model's files, from a directory, a model file with its siblings, or a pulled id's artifacts. */
const sourceOf = (target: string) =>
  Effect.gen(function*() {
    if (fs.existsSync(target)) {
      const dir = fs.statSync(target).isDirectory() ? target : path.dirname(target)
      return dir
    }
    const store = yield* BlobStore
    const reference = parseReference(target)
    const manifest = yield* readManifest(store.root, reference.id, reference.version).pipe(
      Effect.mapError((error) => new CliError({ message: error.message }))
    )
    return yield* modelSourceOf(store, manifest).pipe(
      Effect.mapError((error) => new CliError({ message: error.message }))
    )
  })

/** A stored adapter, checked (checksum, signature when signed). */
const localAdapter = (reference: string) =>
  Effect.gen(function*() {
    const { config } = yield* ModelsSettings
    const { id, version } = parseReference(reference)
    return yield* loadLocalAdapter(cacheDirectory(config), id, version).pipe(
      Effect.mapError((error) => new CliError({ message: error.message }))
    )
  })

export const runCommand = Command.make(
  "run",
  {
    target: Args.text({ name: "id|dir|model.onnx" }),
    prompt: Options.text("prompt").pipe(Options.optional),
    embed: Options.text("embed").pipe(Options.repeated),
    maxTokens: Options.integer("max-tokens").pipe(Options.withDefault(48)),
    temperature: Options.float("temperature").pipe(Options.withDefault(0)),
    topK: Options.integer("top-k").pipe(Options.optional),
    topP: Options.float("top-p").pipe(Options.optional),
    backend: Options.choice("backend", ["node", "web"]).pipe(Options.withDefault("node" as const)),
    adapter: Options.text("adapter").pipe(
      Options.withDescription(
        "run with a LoRA adapter from this machine (id[@version]); it must be made for this model"
      ),
      Options.optional
    ),
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(
      args.config,
      Effect.scoped(
        Effect.gen(function*() {
          const inference = yield* Inference
          const found = yield* sourceOf(args.target)
          const source = typeof found === "string"
            ? yield* readModelFolder(found).pipe(Effect.mapError((error) => new CliError({ message: error.message })))
            : found
          const adapter = Option.isNone(args.adapter) ? undefined : yield* localAdapter(args.adapter.value)
          if (adapter !== undefined) {
            const digest = crypto.createHash("sha256").update(source.model).digest("hex")
            const { id, version, baseModel, baseModelDigest } = adapter.metadata
            if (digest !== baseModelDigest) {
              return yield* Effect.fail(
                new CliError({
                  message:
                    `adapter ${id}@${version} was made for base model ${baseModel} (sha256 ${baseModelDigest}), not this one (sha256 ${digest})`
                })
              )
            }
          }
          const slots = adapter === undefined
            ? undefined
            : { rank: adapter.weights.rank, modules: adapter.metadata.targetModules }
          const handle = yield* inference.loadModel({ ...source, adapterSlots: slots }).pipe(
            Effect.mapError((error) => new CliError({ message: error.message }))
          )
          if (args.embed.length > 0) {
            const vectors = yield* inference.embedBatch(handle, args.embed, { adapter }).pipe(
              Effect.mapError((error) => new CliError({ message: error.message }))
            )
            return yield* output(
              args.json,
              args.embed.map((text, i) => ({ text, embedding: Array.from(vectors[i]!) })),
              (rows) =>
                rows.map((r) =>
                  `${r.text}: [${
                    r.embedding.slice(0, 6).map((v) => v.toFixed(4)).join(", ")
                  }, ...] (${r.embedding.length} dims)`
                ).join("\n")
            )
          }
          if (Option.isNone(args.prompt)) {
            return yield* Effect.fail(
              new CliError({ message: "give --prompt TEXT to generate or --embed TEXT to embed" })
            )
          }
          const options = {
            maxNewTokens: args.maxTokens,
            temperature: args.temperature,
            adapter,
            ...(Option.isSome(args.topK) ? { topK: args.topK.value } : {}),
            ...(Option.isSome(args.topP) ? { topP: args.topP.value } : {})
          }
          if (args.json) {
            const result = yield* inference.generate(handle, args.prompt.value, options).pipe(
              Effect.mapError((error) => new CliError({ message: error.message }))
            )
            return yield* output(true, result, () => "")
          }
          yield* Stream.runForEach(inference.generateStream(handle, args.prompt.value, options), (piece) =>
            Effect.sync(() => process.stdout.write(piece))).pipe(
              Effect.mapError((error) =>
                new CliError({ message: error.message })
              )
            )
          yield* Effect.sync(() => process.stdout.write("\n"))
        })
      ).pipe(Effect.provide(args.backend === "web" ? Inference.web : Inference.node))
    )
).pipe(
  Command.withDescription(
    "generate from a language model (--prompt) or embed texts (--embed) with a model dir, file or pulled id"
  )
)
