/**
 * `edge-net-models adapters`: the LoRA adapters on this machine (in the models cache) and on the
 * registry: list, import (ours or PEFT's layout), export, share through the registry, merge, train.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { MergeSpec } from "../actors/adapters/Adapters.js"
import { adapterFiles, Adapters } from "../actors/adapters/Adapters.js"
import { AdapterTraining } from "../actors/adapters/AdapterTraining.js"
import type { AdapterMetadata } from "../compute/lora/Adapter.js"
import { adapterMetadataFile, checkBaseModel, loadAdapter } from "../compute/lora/AdapterFile.js"
import { listLocalAdapters, localAdapterDir } from "../compute/lora/LocalAdapters.js"
import { peftConfigFile, peftWeightsFile } from "../compute/lora/Peft.js"
import type { MicroLoRAConfig } from "../compute/lora/train/TrainingConfig.js"
import type { TrainingTask } from "../compute/lora/train/TrainingData.js"
import { Tokenizer } from "../compute/tokenizer/Tokenizer.js"
import { tokenizerFromFile } from "../compute/tokenizer/TokenizerFile.js"
import { BlobStore } from "../content/BlobStore.js"
import { readManifest } from "../content/LocalModels.js"
import { cacheDirectory } from "../content/ModelsConfig.js"
import { idFromName } from "../content/Publish.js"
import { pushToRegistry } from "../content/Publish.js"
import { jsonDecoderSync, JsonObject } from "../domain/JsonText.js"
import { listAdapters } from "../http/RegistryClient.js"
import { writeFileAtomically } from "../node/AtomicFile.js"
import { adapterPeersCommands } from "./AdapterPeersCommands.js"
import { CliError } from "./CliError.js"
import {
  configOption,
  ModelsSettings,
  parseReference,
  registryOption,
  registryUrl,
  withModels
} from "./ModelsContext.js"
import { withTrust } from "./ModelsTrust.js"
import { jobServices } from "./NodeAccess.js"
import { stepReporter } from "./Progress.js"
import { keyOption, signerFor } from "./PublishCommands.js"
import { jsonOption, output, toJson } from "./Shared.js"

const fail = (message: string) => new CliError({ message })
const asCli = <A, E extends { readonly message: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (error) => fail(error.message))

const cacheRoot = Effect.map(ModelsSettings, ({ config }) => cacheDirectory(config))

/** `models/reference/tiny-lm/model.onnx` -> `tiny-lm`; `my-model.onnx` -> `my-model`. */
const modelIdOf = (modelFile: string) => {
  const base = path.basename(modelFile, ".onnx")
  const dir = path.basename(path.dirname(path.resolve(modelFile)))
  return idFromName(
    base === "model"
      ? (dir === "onnx" ? path.basename(path.dirname(path.dirname(path.resolve(modelFile)))) : dir)
      : base
  )
}

/** What a command that stores an adapter asks besides its own options: its listing and the CLI's usual flags. */
const storedAdapterOptions = {
  domain: Options.text("domain").pipe(Options.withDefault("general")),
  license: Options.text("license").pipe(Options.withDefault("unknown")),
  config: configOption,
  json: jsonOption
}

const describe = (adapter: AdapterMetadata) =>
  `${`${adapter.id}@${adapter.version}`.padEnd(28)} base ${adapter.baseModel.padEnd(16)} rank ${
    String(adapter.rank).padEnd(3)
  } ` +
  `${adapter.targetModules.length} module(s)  ${adapter.sharing.domain}${
    adapter.signature === undefined ? "" : `  signed by ${adapter.signature.keyId}`
  }`

const list = Command.make(
  "list",
  {
    remote: Options.boolean("remote").pipe(
      Options.withDescription("list the registry's shared adapters instead of this machine's")
    ),
    baseModel: Options.text("base-model").pipe(Options.optional),
    domain: Options.text("domain").pipe(Options.optional),
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(
      args.config,
      Effect.gen(function*() {
        if (args.remote) {
          const registry = yield* registryUrl(args.registry)
          const shared = yield* asCli(
            listAdapters(registry, {
              baseModel: Option.getOrUndefined(args.baseModel),
              domain: Option.getOrUndefined(args.domain)
            })
          )
          return yield* output(args.json, shared, (rows) =>
            rows.length === 0 ?
              `no adapters shared on ${registry}` :
              rows.map((row) =>
                `${`${row.id}@${row.version}`.padEnd(28)} base ${row.baseModel.padEnd(16)} rank ${
                  String(row.rank).padEnd(3)
                } ${row.domain}` +
                `${row.quality === undefined ? "" : `  quality ${row.quality.toFixed(2)}`}${
                  row.score === undefined ? "" : `  score ${row.score.toFixed(2)} (${row.reports ?? 0} report(s))`
                }  by ${row.keyId}`
              ).join("\n"))
        }
        const { adapters, unreadable } = yield* listLocalAdapters(yield* cacheRoot)
        const shown = adapters.filter((adapter) =>
          Option.getOrElse(Option.map(args.baseModel, (base) => adapter.baseModel === base), () => true) &&
          Option.getOrElse(
            Option.map(args.domain, (domain) => adapter.sharing.domain === domain),
            () => true
          )
        )
        for (const problem of unreadable) {
          yield* Effect.logWarning(`unreadable adapter: ${problem}`)
        }
        yield* output(
          args.json,
          shown,
          (
            rows
          ) => (rows.length === 0 ? "no adapters here (train, import or merge one)" : rows.map(describe).join("\n"))
        )
      })
    )
).pipe(Command.withDescription("the adapters on this machine, or with --remote those shared on the registry"))

const importCommand = Command.make(
  "import",
  {
    directory: Args.path({ name: "adapter-dir|adapter.json", exists: "yes" }),
    baseModel: Options.file("base-model", { exists: "yes" }).pipe(
      Options.withDescription(
        "the base model's ONNX file: PEFT adapters are matched to its layers, and every adapter is pinned to its sha256"
      ),
      Options.optional
    ),
    baseModelId: Options.text("base-model-id").pipe(
      Options.withDescription("the base model's id (default: from its file or directory name)"),
      Options.optional
    ),
    id: Options.text("id").pipe(Options.optional),
    name: Options.text("name").pipe(Options.optional),
    version: Options.text("model-version").pipe(
      Options.withDescription("version to store a PEFT adapter under (also --version)"),
      Options.withDefault("1.0.0")
    ),
    ...storedAdapterOptions
  },
  (args) =>
    withModels(
      args.config,
      withAdapters((adapters) =>
        Effect.gen(function*() {
          const checkBase = (metadata: AdapterMetadata) =>
            Option.isSome(args.baseModel) ? asCli(checkBaseModel(metadata, args.baseModel.value)) : Effect.void
          if (fs.statSync(args.directory).isFile()) {
            // One JSON file with the weights inline, as `adapters export --output adapter.json` writes it.
            const text = fs.readFileSync(args.directory, "utf8")
            const metadata = yield* asCli(adapters.importDocument(text, args.directory))
            yield* checkBase(metadata)
            return yield* output(args.json, metadata, (adapter) => `imported ${describe(adapter)}`)
          }
          if (fs.existsSync(path.join(args.directory, adapterMetadataFile))) {
            const { metadata } = yield* asCli(loadAdapter(args.directory))
            yield* checkBase(metadata)
            const stored = yield* asCli(adapters.importDirectory(args.directory))
            return yield* output(args.json, stored, (adapter) => `imported ${describe(adapter)}`)
          }
          if (!fs.existsSync(path.join(args.directory, peftConfigFile))) {
            return yield* Effect.fail(
              fail(`${args.directory} holds neither ${adapterMetadataFile} (edge-net) nor ${peftConfigFile} (PEFT)`)
            )
          }
          if (Option.isNone(args.baseModel)) {
            return yield* Effect.fail(
              fail("a PEFT adapter needs --base-model <model.onnx> to match its modules to the model's layers")
            )
          }
          const modelFile = args.baseModel.value
          const peft = yield* readPeftFiles(args.directory)
          const name = Option.getOrElse(args.name, () => path.basename(path.resolve(args.directory)))
          const metadata = yield* asCli(adapters.importPeft({
            ...peft,
            base: {
              id: Option.getOrElse(args.baseModelId, () => modelIdOf(modelFile)),
              bytes: fs.readFileSync(modelFile)
            },
            adapter: {
              id: Option.getOrElse(args.id, () => idFromName(name)),
              name,
              version: args.version,
              domain: args.domain,
              license: args.license
            }
          }))
          yield* output(args.json, metadata, (adapter) => `imported PEFT adapter as ${describe(adapter)}`)
        })
      )
    )
).pipe(
  Command.withDescription(
    "bring in an adapter: one JSON file as `export` writes it, or a directory, edge-net's (adapter.json) or PEFT's (adapter_config.json)"
  )
)

const exportCommand = Command.make(
  "export",
  {
    adapter: Args.text({ name: "id[@version]" }),
    output: Options.text("output").pipe(
      Options.withDescription("a directory, or a .json file for one JSON document with the weights inline")
    ),
    format: Options.choice("format", ["edge-net", "peft", "json"]).pipe(
      Options.withDescription(
        "edge-net or PEFT directory, or one JSON file (default: json when --output ends in .json, else edge-net)"
      ),
      Options.optional
    ),
    config: configOption
  },
  (args) =>
    withModels(
      args.config,
      withAdapters((adapters) =>
        Effect.gen(function*() {
          const reference = parseReference(args.adapter)
          const format = Option.getOrElse(
            args.format,
            () => (args.output.endsWith(".json") ? "json" as const : "edge-net" as const)
          )
          const { metadata } = yield* asCli(adapters.get(reference))
          if (format === "json") {
            const { text } = yield* asCli(adapters.exportDocument(reference))
            yield* writeFiles([[args.output, text]])
          } else if (format === "peft") {
            const files = yield* asCli(adapters.exportPeft(reference))
            yield* writeFiles([
              [path.join(args.output, peftWeightsFile), files.weights],
              [path.join(args.output, peftConfigFile), JSON.stringify(files.config, null, 2) + "\n"]
            ])
          } else {
            fs.mkdirSync(args.output, { recursive: true })
            const source = localAdapterDir(adapters.root, metadata.id, metadata.version)
            for (const file of adapterFiles(source)) {
              fs.copyFileSync(path.join(source, file), path.join(args.output, file))
            }
          }
          yield* Effect.sync(() =>
            console.log(`exported ${metadata.id}@${metadata.version} (${format}) to ${args.output}`)
          )
        })
      )
    )
).pipe(
  Command.withDescription(
    "write an adapter out as one JSON file (the seed's LoRAAdapter, weights inline), an edge-net adapter directory or in PEFT's layout"
  )
)

const share = Command.make(
  "share",
  {
    adapter: Args.text({ name: "id[@version]" }),
    domain: Options.text("domain").pipe(
      Options.withDescription("domain to list it under (default: the adapter's)"),
      Options.optional
    ),
    quality: Options.float("quality").pipe(
      Options.withDescription("quality score in 0..1 (default: the adapter's measured task accuracy)"),
      Options.optional
    ),
    key: keyOption,
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withTrust(
      args.config,
      withAdapters((adapters) =>
        Effect.gen(function*() {
          const signer = yield* signerFor(args.key)
          const manifest = yield* asCli(adapters.shareManifest({
            ...parseReference(args.adapter),
            domain: Option.getOrUndefined(args.domain),
            quality: Option.getOrUndefined(args.quality)
          }, signer))
          const registry = yield* registryUrl(args.registry)
          const uploaded = yield* pushToRegistry(registry, manifest)
          yield* output(
            args.json,
            { registry, uploaded, manifest },
            () =>
              `shared ${manifest.id}@${manifest.version} on ${registry} (signed by ${signer.keyId}; uploaded ${uploaded.length} file(s))`
          )
        })
      )
    )
).pipe(
  Command.withDescription(
    "publish an adapter to the registry (needs reputation above 0.7, at most 10 an hour, a quality score)"
  )
)

/** Runs `use` on the Adapters service over this machine's models cache. */
const withAdapters = <A, E, R>(use: (adapters: Adapters) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(Adapters, use).pipe(Effect.provide(Adapters.Default))

/** A PEFT directory's two files, read for `Adapters.importPeft`. */
const readPeftFiles = (directory: string) =>
  Effect.try({
    try: () => {
      const weightsFile = path.join(directory, peftWeightsFile)
      if (!fs.existsSync(weightsFile) && fs.existsSync(path.join(directory, "adapter_model.bin"))) {
        throw new Error(
          `${weightsFile} is missing; adapter_model.bin (a PyTorch pickle) is not read: save with safe_serialization=True`
        )
      }
      const configFile = path.join(directory, peftConfigFile)
      const text = fs.readFileSync(configFile, "utf8")
      let config: unknown
      try {
        config = JSON.parse(text)
      } catch (cause) {
        throw new Error(`${configFile} is not JSON (${(cause as Error).message})`)
      }
      return { config, weights: new Uint8Array(fs.readFileSync(weightsFile)) }
    },
    catch: (error) => fail((error as Error).message.split("\n")[0]!)
  })

/** Writes each file atomically (its directory made first). */
const writeFiles = (files: ReadonlyArray<readonly [string, string | Uint8Array]>) =>
  Effect.tryPromise({
    try: async () => {
      for (const [file, content] of files) {
        await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true })
        await writeFileAtomically(file, content)
      }
    },
    catch: (error) => fail((error as Error).message.split("\n")[0]!)
  })

/** The model to train on: its ONNX file, its tokenizer and its id. */
interface BaseModel {
  readonly modelFile: string
  readonly tokenizer: Tokenizer
  readonly id: string
}

const decodeJsonObject = jsonDecoderSync(JsonObject)
const readJsonFile = (
  file: string | undefined
) => (file === undefined ? undefined : decodeJsonObject(fs.readFileSync(file, "utf8"), file))

/**
 * A model directory (`model.onnx` or `onnx/model.onnx`, tokenizer.json beside it or above), a model
 * file with its tokenizer beside it, or the id of a model pulled into the cache (`tiny-lm[@1.0.0]`).
 */
const baseModelOf = (target: string) =>
  Effect.gen(function*() {
    if (fs.existsSync(target)) {
      const isDirectory = fs.statSync(target).isDirectory()
      const directory = isDirectory ? target : path.dirname(target)
      const modelFile = isDirectory
        ? [path.join(target, "model.onnx"), path.join(target, "onnx", "model.onnx")].find((file) => fs.existsSync(file))
        : target
      if (modelFile === undefined) {
        return yield* Effect.fail(fail(`${target} holds no model.onnx (nor onnx/model.onnx)`))
      }
      const tokenizerFile = [directory, path.dirname(directory)].map((dir) => path.join(dir, "tokenizer.json")).find((
        file
      ) => fs.existsSync(file))
      if (tokenizerFile === undefined) {
        return yield* Effect.fail(
          fail(`no tokenizer.json beside ${modelFile}: training reads text through the model's tokenizer`)
        )
      }
      return {
        modelFile,
        tokenizer: yield* asCli(tokenizerFromFile(tokenizerFile)),
        id: modelIdOf(modelFile)
      } satisfies BaseModel
    }
    const store = yield* BlobStore
    const { id, version } = parseReference(target)
    const manifest = yield* asCli(readManifest(store.root, id, version)).pipe(
      Effect.mapError(() =>
        fail(`${target} is neither a path nor a model pulled here (edge-net-models pull ${id} brings it)`)
      )
    )
    const byName = new Map(
      Object.values(manifest.artifacts).map((artifact) => [artifact.filename, store.pathOf(artifact.sha256)])
    )
    const model = [...byName.keys()].find((name) => name.endsWith(".onnx"))
    const tokenizerFile = byName.get("tokenizer.json")
    if (model === undefined || tokenizerFile === undefined) {
      return yield* Effect.fail(
        fail(`${manifest.id}@${manifest.version} has no ONNX model and tokenizer.json to train on`)
      )
    }
    const tokenizer = yield* Effect.try({
      try: () =>
        Tokenizer.fromJson(
          readJsonFile(tokenizerFile),
          readJsonFile(byName.get("tokenizer_config.json")) ?? {},
          readJsonFile(byName.get("config.json")) ?? {}
        ),
      catch: (error) => fail(`${manifest.id}@${manifest.version}: ${(error as Error).message}`)
    })
    return { modelFile: byName.get(model)!, tokenizer, id: manifest.id } satisfies BaseModel
  })

const optionalFloat = (name: string, description: string) =>
  Options.float(name).pipe(Options.withDescription(description), Options.optional)
const optionalInteger = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional)
const listOf = (text: string) => text.split(",").map((item) => item.trim()).filter((item) => item !== "")

const train = Command.make(
  "train",
  {
    model: Args.text({ name: "model" }).pipe(
      Args.withDescription(
        "a model directory (model.onnx and tokenizer.json), its ONNX file, or a pulled model's id[@version]"
      )
    ),
    data: Options.file("data", { exists: "yes" }).pipe(
      Options.withDescription(
        "plain text (paragraphs split by blank lines) for a language model, or JSON lines {\"text\", \"label\"} for a classifier"
      )
    ),
    task: Options.choice("task", ["auto", "lm", "classify"]).pipe(
      Options.withDescription("auto: classify for .jsonl files, lm otherwise"),
      Options.withDefault("auto" as const)
    ),
    id: Options.text("id").pipe(
      Options.withDescription("adapter id (default: <model>-<data file name>)"),
      Options.optional
    ),
    name: Options.text("name").pipe(Options.optional),
    version: Options.text("model-version").pipe(
      Options.withDescription("version to store the adapter under (also --version)"),
      Options.withDefault("1.0.0")
    ),
    domain: Options.text("domain").pipe(Options.withDefault("general")),
    license: Options.text("license").pipe(Options.withDefault("unknown")),
    rank: Options.integer("rank").pipe(Options.withDefault(4)),
    alpha: optionalFloat("alpha", "scale is alpha / rank (default 2 x rank)"),
    dropout: optionalFloat("dropout", "dropout on each adapter branch's input while training (default 0)"),
    targetModules: Options.text("target-modules").pipe(
      Options.withDescription(
        "comma-separated module names or suffixes, e.g. c_attn,c_proj (default: every MatMul weight)"
      ),
      Options.optional
    ),
    learningRate: optionalFloat("learning-rate", "peak learning rate (default 1e-3)"),
    weightDecay: optionalFloat("weight-decay", "AdamW weight decay (default 0.01)"),
    schedule: Options.choice("schedule", ["cosine", "linear", "constant"]).pipe(Options.withDefault("cosine" as const)),
    warmupSteps: optionalInteger("warmup-steps", "steps of linear warmup (default 0)"),
    epochs: Options.integer("epochs").pipe(Options.withDefault(1)),
    maxSteps: optionalInteger("max-steps", "stop after this many optimizer steps"),
    batchSize: optionalInteger("batch-size", "samples per forward/backward pass (default 8)"),
    accumulation: optionalInteger("gradient-accumulation", "micro-batches per optimizer step (default 1)"),
    maxGradNorm: optionalFloat("max-grad-norm", "clip the gradient norm to this, 0 for none (default 1)"),
    replayAlpha: optionalFloat(
      "replay-alpha",
      "draw each step's samples by prioritized replay, in proportion to loss^alpha (e.g. 0.6; default: epochs' shuffles)"
    ),
    replayBeta: optionalFloat(
      "replay-beta",
      "prioritized replay's importance-sampling exponent at the start (default 0.4)"
    ),
    seed: Options.integer("seed").pipe(Options.withDefault(0)),
    checkpointEvery: Options.integer("checkpoint-every").pipe(
      Options.withDescription("steps between checkpoints; an interrupted run resumes from the last (0: none)"),
      Options.withDefault(10)
    ),
    window: Options.integer("window").pipe(
      Options.withDescription("tokens per language-model window"),
      Options.withDefault(128)
    ),
    maxTokens: Options.integer("max-tokens").pipe(
      Options.withDescription("tokens a classification example is cut to"),
      Options.withDefault(64)
    ),
    heldOut: Options.float("held-out").pipe(
      Options.withDescription("share of the data held out to measure before and after"),
      Options.withDefault(0.1)
    ),
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(
      args.config,
      Effect.gen(function*() {
        const { modelFile, tokenizer, id: baseModel } = yield* baseModelOf(args.model)
        const id = Option.getOrElse(
          args.id,
          () => idFromName(`${baseModel}-${path.basename(args.data).replace(/\.[^.]*$/, "")}`)
        )
        if (id === "") return yield* Effect.fail(fail("the adapter id is empty: give --id"))
        const root = yield* cacheRoot
        const target = localAdapterDir(root, id, args.version)
        if (fs.existsSync(path.join(target, adapterMetadataFile))) {
          return yield* Effect.fail(
            fail(`adapter ${id}@${args.version} is already stored here (give another --model-version or --id)`)
          )
        }
        const task: TrainingTask | undefined = args.task === "auto"
          ? undefined
          : args.task === "lm"
          ? "causal-lm"
          : "classification"
        const some = <A>(option: Option.Option<A>) => Option.getOrUndefined(option)
        const trainingConfig: MicroLoRAConfig = {
          rank: args.rank,
          alpha: some(args.alpha),
          dropout: some(args.dropout),
          learningRate: some(args.learningRate),
          weightDecay: some(args.weightDecay),
          schedule: args.schedule,
          warmupSteps: some(args.warmupSteps),
          epochs: args.epochs,
          maxSteps: some(args.maxSteps),
          batchSize: some(args.batchSize),
          gradientAccumulationSteps: some(args.accumulation),
          maxGradNorm: some(args.maxGradNorm),
          seed: args.seed,
          checkpointEvery: args.checkpointEvery,
          replay: Option.isNone(args.replayAlpha) && Option.isNone(args.replayBeta)
            ? undefined
            : { alpha: some(args.replayAlpha), beta: some(args.replayBeta) }
        }
        const progress = stepReporter(args.json)
        // The job is recorded in the node's journal at $EDGE_NET_HOME (else ./.edge-net) when one is there.
        const { layer, recorded } = yield* jobServices(Option.none())
        const trained = yield* Effect.flatMap(AdapterTraining, (training) =>
          training.train(
            {
              base: { bytes: new Uint8Array(fs.readFileSync(modelFile)), tokenizer, id: baseModel },
              data: { content: fs.readFileSync(args.data, "utf8"), name: args.data },
              task,
              config: trainingConfig,
              targetNames: Option.getOrUndefined(Option.map(args.targetModules, listOf)),
              dataOptions: { windowLength: args.window, maxTokens: args.maxTokens, heldOutFraction: args.heldOut },
              adapter: {
                id,
                version: args.version,
                name: Option.getOrUndefined(args.name),
                domain: args.domain,
                license: args.license
              },
              storeRoot: root
            },
            (event) => {
              if (event._tag === "TrainingStep") progress.update("train", event.step, event.totalSteps)
              else if (event._tag === "TrainingPhase" && event.phase === "resume") {
                Effect.runSync(Effect.logInfo(`resuming from the checkpoint at step ${event.detail}`))
              } else if (event._tag === "TrainingPhase" && event.phase !== "train") progress.update(event.phase, 0, 1)
            }
          )).pipe(
            Effect.provide(layer),
            Effect.mapError((error) => fail(error.message)),
            Effect.ensuring(Effect.sync(progress.done))
          )
        const { jobId, metadata, outcome } = trained
        const { result } = outcome
        const isLm = outcome.metric === "heldOutLoss"
        const figure = isLm
          ? `held-out loss ${outcome.before.toFixed(4)} -> ${outcome.after.toFixed(4)} nats/token (perplexity ${
            Math.exp(outcome.before).toFixed(1)
          } -> ${Math.exp(outcome.after).toFixed(1)})`
          : `held-out accuracy ${(outcome.before * 100).toFixed(1)}% (linear probe) -> ${
            (outcome.after * 100).toFixed(1)
          }% (adapter)`
        const summary = {
          event: "done",
          adapter: metadata,
          ...(recorded ? { jobId } : {}),
          task: outcome.task,
          metric: outcome.metric,
          before: outcome.before,
          after: outcome.after,
          steps: result.steps,
          trainSamples: outcome.trainSamples,
          heldOutSamples: outcome.heldOutSamples,
          durationMs: result.durationMs,
          ...(outcome.resumedFrom === undefined ? {} : { resumedFrom: outcome.resumedFrom })
        }
        yield* Effect.sync(() =>
          console.log(
            args.json ?
              toJson(summary) :
              `trained ${describe(metadata)}\n${figure}; ${result.steps} steps in ${
                (result.durationMs / 1000).toFixed(1)
              } s` +
              `${outcome.resumedFrom === undefined ? "" : ` (resumed at step ${outcome.resumedFrom})`}` +
              `${recorded ? `\nrecorded as training job ${jobId}` : ""}`
          )
        )
      })
    )
).pipe(
  Command.withDescription(
    "train a LoRA adapter on your text (language model) or labelled JSON lines (classifier), measured before and after on held-out data"
  )
)

const merge = Command.make(
  "merge",
  {
    adapters: Args.text({ name: "id[@version]" }).pipe(Args.atLeast(2)),
    method: Options.choice("method", ["ties", "dare", "task_arithmetic"]),
    id: Options.text("id").pipe(
      Options.withAlias("output"),
      Options.withDescription("id of the merged adapter (also --output, as the seed writes it)")
    ),
    version: Options.text("model-version").pipe(
      Options.withDescription("its version (also --version)"),
      Options.withDefault("1.0.0")
    ),
    weights: Options.text("weights").pipe(
      Options.withDescription(
        "comma-separated weight per adapter (task_arithmetic: default all 1; dare: default all 1)"
      ),
      Options.optional
    ),
    trim: Options.float("trim").pipe(
      Options.withDescription("ties: fraction of each update's smallest entries removed"),
      Options.withDefault(0.8)
    ),
    signElection: Options.choice("sign-election", ["majority", "weighted"]).pipe(
      Options.withDescription("ties: one vote per adapter, or votes weighted by magnitude"),
      Options.withDefault("weighted" as const)
    ),
    scaling: Options.float("scaling").pipe(
      Options.withDescription("ties: scale of the merged update"),
      Options.withDefault(1)
    ),
    dropRate: Options.float("drop-rate").pipe(
      Options.withDescription("dare: probability of dropping each entry"),
      Options.withDefault(0.5)
    ),
    noRescale: Options.boolean("no-rescale").pipe(
      Options.withDescription("dare: keep survivors as they are instead of dividing by 1 - drop rate")
    ),
    seed: Options.integer("seed").pipe(
      Options.withDescription("dare: seed of the drops (recorded in the result)"),
      Options.withDefault(0)
    ),
    rank: optionalInteger("rank", "rank of the merged adapter (default: the largest input rank)"),
    alpha: optionalFloat("alpha", "alpha of the merged adapter (default: its rank)"),
    ...storedAdapterOptions
  },
  (args) =>
    withModels(
      args.config,
      withAdapters((adapters) =>
        Effect.gen(function*() {
          const weights = Option.getOrUndefined(Option.map(args.weights, (text) => listOf(text).map(Number)))
          if (weights !== undefined && !weights.every(Number.isFinite)) {
            return yield* Effect.fail(
              fail(`--weights needs numbers, one per adapter (got "${Option.getOrElse(args.weights, () => "")}")`)
            )
          }
          const spec: MergeSpec = args.method === "ties"
            ? { method: "ties", trimFraction: args.trim, signElection: args.signElection, scalingCoef: args.scaling }
            : args.method === "dare"
            ? { method: "dare", dropRate: args.dropRate, rescale: !args.noRescale, seed: args.seed, weights }
            : { method: "task_arithmetic", weights }
          const { adapter: metadata, report } = yield* asCli(adapters.merge({
            adapters: args.adapters.map(parseReference),
            spec,
            adapter: { id: args.id, version: args.version, domain: args.domain, license: args.license },
            rank: Option.getOrUndefined(args.rank),
            alpha: Option.getOrUndefined(args.alpha)
          }))
          const worst = Math.max(...Object.values(report.modules).map((module) => module.refactorError))
          yield* output(args.json, { adapter: metadata, report }, () =>
            `merged ${report.adapters.join(" + ")} by ${args.method} into ${describe(metadata)}\n` +
            `re-factored to rank ${report.rank}: worst module relative error ${worst.toExponential(2)}` +
            (report.random === undefined
              ? ""
              : `; ${report.random.draws} draws of ${report.random.generator} seed ${report.random.seed}`) +
            (worst > 0.05
              ? `\nrank ${report.rank} loses ${
                (worst * 100).toFixed(0)
              }% of the merged update in some module: a higher --rank keeps more`
              : ""))
        })
      )
    )
).pipe(Command.withDescription("merge adapters of one base model by TIES, DARE or task arithmetic into a new adapter"))

export const adaptersCommand = Command.make("adapters").pipe(
  Command.withDescription(
    "LoRA adapters: list, import, export, share, merge, train; pull, report, peers between nodes"
  ),
  Command.withSubcommands([list, train, importCommand, exportCommand, share, merge, ...adapterPeersCommands])
)
