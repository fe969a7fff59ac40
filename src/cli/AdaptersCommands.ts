/**
 * `edge-net-models adapters`: the LoRA adapters on this machine (in the models cache) and on the
 * registry: list, import (ours or PEFT's layout), export, share through the registry, merge, train.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import type { AdapterMetadata } from "../compute/lora/Adapter.js"
import type { AdapterDescription } from "../compute/lora/AdapterFile.js"
import { adapterMetadataFile, adapterWeightsFile, checkBaseModel, loadAdapter } from "../compute/lora/AdapterFile.js"
import { loraTargets } from "../compute/lora/GraphLora.js"
import { exportPeft, importPeft, peftConfigFile } from "../compute/lora/Peft.js"
import { readModel } from "../compute/onnx/OnnxModel.js"
import { idFromName } from "../content/Publish.js"
import { buildManifest, pushToRegistry } from "../content/Publish.js"
import { listLocalAdapters, loadLocalAdapter, localAdapterDir, saveLocalAdapter } from "../content/LocalAdapters.js"
import { cacheDirectory } from "../content/ModelsConfig.js"
import { listAdapters } from "../content/RegistryClient.js"
import { CliError } from "./CliError.js"
import { configOption, ModelsSettings, parseReference, registryOption, registryUrl, withModels, withTrust } from "./ModelsContext.js"
import { keyOption, signerFor } from "./PublishCommands.js"
import { jsonOption, output } from "./Shared.js"

const fail = (message: string) => new CliError({ message })
const asCli = <A, E extends { readonly message: string }, R>(effect: Effect.Effect<A, E, R>) => Effect.mapError(effect, (error) => fail(error.message))

const cacheRoot = Effect.map(ModelsSettings, ({ config }) => cacheDirectory(config))

const sha256OfFile = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex")

/** `models/reference/tiny-lm/model.onnx` -> `tiny-lm`; `my-model.onnx` -> `my-model`. */
const modelIdOf = (modelFile: string) => {
  const base = path.basename(modelFile, ".onnx")
  const dir = path.basename(path.dirname(path.resolve(modelFile)))
  return idFromName(base === "model" ? (dir === "onnx" ? path.basename(path.dirname(path.dirname(path.resolve(modelFile)))) : dir) : base)
}

const describe = (adapter: AdapterMetadata) =>
  `${`${adapter.id}@${adapter.version}`.padEnd(28)} base ${adapter.baseModel.padEnd(16)} rank ${String(adapter.rank).padEnd(3)} ` +
  `${adapter.targetModules.length} module(s)  ${adapter.sharing.domain}${adapter.signature === undefined ? "" : `  signed by ${adapter.signature.keyId}`}`

const list = Command.make(
  "list",
  {
    remote: Options.boolean("remote").pipe(Options.withDescription("list the registry's shared adapters instead of this machine's")),
    baseModel: Options.text("base-model").pipe(Options.optional),
    domain: Options.text("domain").pipe(Options.optional),
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(args.config, Effect.gen(function* () {
      if (args.remote) {
        const registry = yield* registryUrl(args.registry)
        const shared = yield* asCli(listAdapters(registry, { baseModel: Option.getOrUndefined(args.baseModel), domain: Option.getOrUndefined(args.domain) }))
        return yield* output(args.json, shared, (rows) =>
          rows.length === 0 ? `no adapters shared on ${registry}` : rows.map((row) =>
            `${`${row.id}@${row.version}`.padEnd(28)} base ${row.baseModel.padEnd(16)} rank ${String(row.rank).padEnd(3)} ${row.domain}` +
            `${row.quality === undefined ? "" : `  quality ${row.quality.toFixed(2)}`}  by ${row.keyId}`).join("\n"))
      }
      const { adapters, unreadable } = yield* listLocalAdapters(yield* cacheRoot)
      const shown = adapters.filter((adapter) =>
        Option.getOrElse(Option.map(args.baseModel, (base) => adapter.baseModel === base), () => true) &&
        Option.getOrElse(Option.map(args.domain, (domain) => adapter.sharing.domain === domain), () => true))
      for (const problem of unreadable) yield* Effect.logWarning(`unreadable adapter: ${problem}`)
      yield* output(args.json, shown, (rows) => (rows.length === 0 ? "no adapters here (train, import or merge one)" : rows.map(describe).join("\n")))
    }))
).pipe(Command.withDescription("the adapters on this machine, or with --remote those shared on the registry"))

const importCommand = Command.make(
  "import",
  {
    directory: Args.directory({ name: "adapter-dir", exists: "yes" }),
    baseModel: Options.file("base-model", { exists: "yes" }).pipe(
      Options.withDescription("the base model's ONNX file: PEFT adapters are matched to its layers, and every adapter is pinned to its sha256"),
      Options.optional
    ),
    baseModelId: Options.text("base-model-id").pipe(Options.withDescription("the base model's id (default: from its file or directory name)"), Options.optional),
    id: Options.text("id").pipe(Options.optional),
    name: Options.text("name").pipe(Options.optional),
    version: Options.text("model-version").pipe(Options.withDescription("version to store a PEFT adapter under (also --version)"), Options.withDefault("1.0.0")),
    domain: Options.text("domain").pipe(Options.withDefault("general")),
    license: Options.text("license").pipe(Options.withDefault("unknown")),
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(args.config, Effect.gen(function* () {
      const root = yield* cacheRoot
      if (fs.existsSync(path.join(args.directory, adapterMetadataFile))) {
        // Ours: checked (checksum, signature when signed) and copied byte for byte, so its signature stays valid.
        const { metadata } = yield* asCli(loadAdapter(args.directory))
        if (Option.isSome(args.baseModel)) yield* asCli(checkBaseModel(metadata, args.baseModel.value))
        const target = localAdapterDir(root, metadata.id, metadata.version)
        if (fs.existsSync(path.join(target, adapterMetadataFile))) return yield* Effect.fail(fail(`adapter ${metadata.id}@${metadata.version} is already stored here`))
        fs.mkdirSync(target, { recursive: true })
        for (const file of [adapterWeightsFile, adapterMetadataFile]) fs.copyFileSync(path.join(args.directory, file), path.join(target, file))
        return yield* output(args.json, metadata, (adapter) => `imported ${describe(adapter)}`)
      }
      if (!fs.existsSync(path.join(args.directory, peftConfigFile))) {
        return yield* Effect.fail(fail(`${args.directory} holds neither ${adapterMetadataFile} (edge-net) nor ${peftConfigFile} (PEFT)`))
      }
      if (Option.isNone(args.baseModel)) return yield* Effect.fail(fail("a PEFT adapter needs --base-model <model.onnx> to match its modules to the model's layers"))
      const modelFile = args.baseModel.value
      const model = yield* Effect.try({ try: () => readModel(new Uint8Array(fs.readFileSync(modelFile))), catch: (error) => fail(`${modelFile}: ${(error as Error).message}`) })
      const peft = yield* asCli(importPeft(args.directory, { targets: loraTargets(model).map((target) => target.module) }))
      const baseModel = Option.getOrElse(args.baseModelId, () => modelIdOf(modelFile))
      const name = Option.getOrElse(args.name, () => path.basename(path.resolve(args.directory)))
      const description: AdapterDescription = {
        id: Option.getOrElse(args.id, () => idFromName(name)),
        name,
        description: `imported from PEFT${peft.baseModelNameOrPath === undefined ? "" : ` (base ${peft.baseModelNameOrPath})`}`,
        version: args.version,
        createdAt: new Date().toISOString(),
        baseModel,
        baseModelDigest: sha256OfFile(modelFile),
        training: { steps: 0, finalLoss: 0, samples: 0, duration: 0 },
        quality: {},
        sharing: { public: false, domain: args.domain, license: args.license }
      }
      const metadata = yield* asCli(saveLocalAdapter(root, description, peft.weights))
      yield* output(args.json, metadata, (adapter) => `imported PEFT adapter as ${describe(adapter)}`)
    }))
).pipe(Command.withDescription("bring in an adapter directory: edge-net's (adapter.json) or PEFT's (adapter_config.json)"))

const exportCommand = Command.make(
  "export",
  {
    adapter: Args.text({ name: "id[@version]" }),
    output: Options.directory("output"),
    format: Options.choice("format", ["edge-net", "peft"]).pipe(Options.withDefault("edge-net" as const)),
    config: configOption
  },
  (args) =>
    withModels(args.config, Effect.gen(function* () {
      const { id, version } = parseReference(args.adapter)
      const root = yield* cacheRoot
      const { metadata, weights } = yield* asCli(loadLocalAdapter(root, id, version))
      if (args.format === "peft") {
        yield* asCli(exportPeft(args.output, weights, { baseModelNameOrPath: metadata.baseModel }))
      } else {
        fs.mkdirSync(args.output, { recursive: true })
        const source = localAdapterDir(root, metadata.id, metadata.version)
        for (const file of [adapterWeightsFile, adapterMetadataFile]) fs.copyFileSync(path.join(source, file), path.join(args.output, file))
      }
      yield* Effect.sync(() => console.log(`exported ${metadata.id}@${metadata.version} (${args.format}) to ${args.output}`))
    }))
).pipe(Command.withDescription("write an adapter out as an edge-net adapter directory or in PEFT's layout"))

const share = Command.make(
  "share",
  {
    adapter: Args.text({ name: "id[@version]" }),
    domain: Options.text("domain").pipe(Options.withDescription("domain to list it under (default: the adapter's)"), Options.optional),
    quality: Options.float("quality").pipe(Options.withDescription("quality score in 0..1 (default: the adapter's measured task accuracy)"), Options.optional),
    key: keyOption,
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withTrust(args.config, Effect.gen(function* () {
      const { id, version } = parseReference(args.adapter)
      const root = yield* cacheRoot
      const { metadata } = yield* asCli(loadLocalAdapter(root, id, version))
      const quality = Option.getOrElse(args.quality, () => metadata.quality.taskAccuracy)
      if (quality !== undefined && !(quality >= 0 && quality <= 1)) return yield* Effect.fail(fail(`invalid --quality ${quality}: expected a score in 0..1`))
      const signer = yield* signerFor(args.key)
      const directory = localAdapterDir(root, metadata.id, metadata.version)
      const manifest = yield* buildManifest({
        files: [path.join(directory, adapterWeightsFile), path.join(directory, adapterMetadataFile)],
        id: metadata.id,
        name: metadata.name,
        version: metadata.version,
        type: "adapter",
        license: metadata.sharing.license,
        adapter: {
          baseModel: metadata.baseModel,
          baseModelDigest: metadata.baseModelDigest,
          rank: metadata.rank,
          alpha: metadata.alpha,
          targetModules: [...metadata.targetModules],
          domain: Option.getOrElse(args.domain, () => metadata.sharing.domain),
          ...(quality === undefined ? {} : { quality })
        },
        expiresInDays: 365,
        signer
      })
      const registry = yield* registryUrl(args.registry)
      const uploaded = yield* pushToRegistry(registry, manifest)
      yield* output(args.json, { registry, uploaded, manifest }, () =>
        `shared ${manifest.id}@${manifest.version} on ${registry} (signed by ${signer.keyId}; uploaded ${uploaded.length} file(s))`)
    }))
).pipe(Command.withDescription("publish an adapter to the registry (needs reputation above 0.7, at most 10 an hour, a quality score)"))

export const adaptersCommand = Command.make("adapters").pipe(
  Command.withDescription("LoRA adapters: list, import, export, share, merge, train"),
  Command.withSubcommands([list, importCommand, exportCommand, share])
)
