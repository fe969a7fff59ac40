/**
 * `edge-net adapters`: the adapters a node keeps, through its RPC as any other program would reach
 * them (`AdaptersStored`, `AdapterMerge`, `AdapterImport`, `AdapterImportPeft`, `AdapterExport`,
 * `AdapterShare`), signed by the operator's key: against a running node with `--node URL`, or in
 * process on a data directory. `edge-net-models adapters` runs the same service on this machine's
 * models cache.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { MergeSpec } from "../actors/adapters/Adapters.js"
import { peftConfigFile, peftWeightsFile } from "../compute/lora/Peft.js"
import { writeFileAtomically } from "../node/AtomicFile.js"
import { CliError } from "./CliError.js"
import { asOperator, keyOption } from "./CommandKeys.js"
import { parseReference } from "./ModelsContext.js"
import { withNodeClient } from "./NodeAccess.js"
import { dataOption, jsonOption, nodeOption, output } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption, key: keyOption }
const fail = (message: string) => new CliError({ message })

interface Described {
  readonly id: string
  readonly version: string
  readonly baseModel: string
  readonly rank: number
  readonly targetModules: ReadonlyArray<string>
  readonly sharing: { readonly domain: string }
}

const describe = (adapter: Described) =>
  `${`${adapter.id}@${adapter.version}`.padEnd(28)} base ${adapter.baseModel.padEnd(16)} rank ${
    String(adapter.rank).padEnd(3)
  } ${adapter.targetModules.length} module(s)  ${adapter.sharing.domain}`

const list = Command.make("list", {
  baseModel: Options.text("base-model").pipe(Options.optional),
  domain: Options.text("domain").pipe(Options.optional),
  data: dataOption,
  node: nodeOption,
  json: jsonOption
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const stored = yield* client.call(client.rpc.AdaptersStored({
        baseModel: Option.getOrUndefined(args.baseModel),
        domain: Option.getOrUndefined(args.domain)
      }))
      yield* output(args.json, stored, ({ adapters, unreadable }) =>
        [
          adapters.length === 0 ? "the node keeps no adapters (train, import or merge one)" : "",
          ...adapters.map(describe),
          ...unreadable.map((problem) => `unreadable: ${problem}`)
        ].filter((line) => line !== "").join("\n"))
    }))).pipe(Command.withDescription("the adapters the node keeps"))

const merge = Command.make("merge", {
  adapters: Args.text({ name: "id[@version]" }).pipe(Args.atLeast(2)),
  method: Options.choice("method", ["ties", "dare", "task_arithmetic"]),
  id: Options.text("id").pipe(Options.withDescription("id of the merged adapter")),
  version: Options.text("model-version").pipe(Options.withDefault("1.0.0")),
  weights: Options.text("weights").pipe(
    Options.withDescription("comma-separated weight per adapter (task_arithmetic, dare)"),
    Options.optional
  ),
  rank: Options.integer("rank").pipe(Options.optional),
  domain: Options.text("domain").pipe(Options.optional),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const weights = Option.getOrUndefined(
        Option.map(args.weights, (text) => text.split(",").map((part) => Number(part.trim())))
      )
      if (weights !== undefined && !weights.every(Number.isFinite)) {
        return yield* Effect.fail(
          fail(`invalid --weights "${Option.getOrElse(args.weights, () => "")}": expected numbers`)
        )
      }
      const spec: MergeSpec = args.method === "ties"
        ? { method: "ties" }
        : args.method === "dare"
        ? { method: "dare", weights }
        : { method: "task_arithmetic", weights }
      const { adapter, report } = yield* asOperator(args.key, args.data)(client.call(client.rpc.AdapterMerge({
        adapters: args.adapters.map(parseReference),
        spec,
        adapter: { id: args.id, version: args.version, domain: Option.getOrUndefined(args.domain) },
        rank: Option.getOrUndefined(args.rank)
      })))
      const worst = Math.max(...Object.values(report.modules).map((module) => module.refactorError))
      yield* output(args.json, { adapter, report }, () =>
        `merged ${report.adapters.join(" + ")} by ${args.method} into ${describe(adapter)}\n` +
        `re-factored to rank ${report.rank}: worst module relative error ${worst.toExponential(2)}`)
    }))).pipe(Command.withDescription("merge adapters the node keeps by TIES, DARE or task arithmetic"))

const importCommand = Command.make("import", {
  source: Args.path({ name: "adapter.json|peft-dir", exists: "yes" }),
  baseModel: Options.text("base-model").pipe(
    Options.withDescription("a PEFT adapter's base model in the node's registry, id[@version]"),
    Options.optional
  ),
  id: Options.text("id").pipe(Options.optional),
  version: Options.text("model-version").pipe(Options.withDefault("1.0.0")),
  domain: Options.text("domain").pipe(Options.optional),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const signed = asOperator(args.key, args.data)
      if (fs.statSync(args.source).isFile()) {
        const adapter = yield* signed(client.call(client.rpc.AdapterImport({
          document: fs.readFileSync(args.source, "utf8")
        })))
        return yield* output(args.json, adapter, (stored) => `imported ${describe(stored)}`)
      }
      const configFile = path.join(args.source, peftConfigFile)
      const weightsFile = path.join(args.source, peftWeightsFile)
      if (!fs.existsSync(configFile) || !fs.existsSync(weightsFile)) {
        return yield* Effect.fail(fail(`${args.source} holds no ${peftConfigFile} and ${peftWeightsFile} (PEFT)`))
      }
      if (Option.isNone(args.baseModel)) {
        return yield* Effect.fail(fail("a PEFT adapter needs --base-model <id[@version]> from the node's registry"))
      }
      const adapter = yield* signed(client.call(client.rpc.AdapterImportPeft({
        config: fs.readFileSync(configFile, "utf8"),
        weights: new Uint8Array(fs.readFileSync(weightsFile)),
        base: parseReference(args.baseModel.value),
        adapter: {
          id: Option.getOrUndefined(args.id),
          name: path.basename(path.resolve(args.source)),
          version: args.version,
          domain: Option.getOrUndefined(args.domain)
        }
      })))
      yield* output(args.json, adapter, (stored) => `imported PEFT adapter as ${describe(stored)}`)
    }))).pipe(Command.withDescription("give the node an adapter: one JSON document, or a PEFT directory"))

const exportCommand = Command.make("export", {
  adapter: Args.text({ name: "id[@version]" }),
  output: Options.text("output").pipe(Options.withDescription("a .json file, or a directory for PEFT's layout")),
  format: Options.choice("format", ["json", "peft"]).pipe(Options.optional),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const format = Option.getOrElse(
        args.format,
        () => (args.output.endsWith(".json") ? "json" as const : "peft" as const)
      )
      const exported = yield* asOperator(args.key, args.data)(client.call(client.rpc.AdapterExport({
        ...parseReference(args.adapter),
        format
      })))
      const files: ReadonlyArray<readonly [string, string | Uint8Array]> = exported._tag === "AdapterDocument"
        ? [[args.output, exported.document]]
        : [[path.join(args.output, peftWeightsFile), exported.weights], [
          path.join(args.output, peftConfigFile),
          exported.config
        ]]
      yield* Effect.tryPromise({
        try: async () => {
          for (const [file, content] of files) {
            await fs.promises.mkdir(path.dirname(path.resolve(file)), { recursive: true })
            await writeFileAtomically(file, content)
          }
        },
        catch: (error) => fail((error as Error).message.split("\n")[0]!)
      })
      yield* output(
        args.json,
        { adapter: exported.adapter, format, output: args.output },
        () => `exported ${exported.adapter.id}@${exported.adapter.version} (${format}) to ${args.output}`
      )
    }))).pipe(Command.withDescription("write out an adapter the node keeps, as one JSON document or in PEFT's layout"))

const share = Command.make("share", {
  adapter: Args.text({ name: "id[@version]" }),
  domain: Options.text("domain").pipe(Options.optional),
  quality: Options.float("quality").pipe(
    Options.withDescription("quality score in 0..1 (default: the adapter's measured task accuracy)"),
    Options.optional
  ),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const receipt = yield* asOperator(args.key, args.data)(client.call(client.rpc.AdapterShare({
        ...parseReference(args.adapter),
        domain: Option.getOrUndefined(args.domain),
        quality: Option.getOrUndefined(args.quality)
      })))
      yield* output(args.json, receipt, (shared) =>
        `shared ${shared.id}@${shared.version} on the node's registry, signed by its key ${shared.keyId}${
          shared.duplicate ? " (already shared)" : ""
        }`)
    }))).pipe(
    Command.withDescription("share an adapter the node keeps through its registry, signed with the node's key")
  )

export const nodeAdaptersCommand = Command.make("adapters").pipe(
  Command.withDescription("the adapters a node keeps: list, merge, import, export, share"),
  Command.withSubcommands([list, merge, importCommand, exportCommand, share])
)
