/**
 * `edge-net jobs`: ask a node to do work on a model it holds, as any other program would through its
 * RPC (`OptimizerRun`, `AdapterTrain`), signed by the operator's key, watching the progress stream:
 * against a running node with `--node URL`, or in process on a data directory. `jobs show` reads a
 * job back from the node's journal.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { TrainingProgressEvent } from "../actors/adapters/AdapterTraining.js"
import type { OptimizeProgress, OptimizeSettings } from "../actors/optimizer/OptimizeRun.js"
import { parseCalibrationJsonl } from "../compute/Calibration.js"
import { parseByteSize } from "../content/ModelsConfig.js"
import { explainText } from "./AuditCommands.js"
import { CliError } from "./CliError.js"
import { asOperator, keyOption } from "./CommandKeys.js"
import { withNode, withNodeClient } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { formatBytes, stepReporter } from "./Progress.js"
import { dataOption, jsonOption, nodeOption, output } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption, key: keyOption }
const fail = (message: string) => new CliError({ message })

/** `id` or `id@version`: a model in the node's registry. */
const modelSourceOf = (reference: string) => {
  const at = reference.lastIndexOf("@")
  return at > 0 ? { id: reference.slice(0, at), version: reference.slice(at + 1) } : { id: reference }
}

/** Runs a progress stream to its end, telling each event; the last is the outcome. */
export const watch = <A extends { readonly _tag: string }, E>(
  stream: Stream.Stream<A, E>,
  tell: (event: A) => void
) =>
  Stream.runFold(stream, undefined as A | undefined, (_, event) => {
    tell(event)
    return event
  })

const optimize = Command.make("optimize", {
  model: Args.text({ name: "model[@version]" }).pipe(Args.withDescription("a model in the node's registry")),
  quantization: Options.choice("quantization", ["INT8", "INT8_DYNAMIC", "INT4", "GPTQ", "AWQ", "FP16", "auto", "none"])
    .pipe(Options.withDefault("INT8" as const)),
  blockSize: Options.choice("block-size", ["32", "64", "128"]).pipe(Options.withDefault("32" as const)),
  calibration: Options.file("calibration-data", { exists: "yes" }).pipe(
    Options.withDescription("JSONL of {\"text\": ...}, sent with the request (default: seeded random inputs)"),
    Options.optional
  ),
  sizeBudget: Options.text("size-budget").pipe(Options.optional),
  minCosine: Options.float("min-cosine").pipe(Options.optional),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const budget = Option.map(args.sizeBudget, (text) => parseByteSize(text) ?? Number.NaN)
      if (Option.isSome(budget) && !Number.isFinite(budget.value)) {
        return yield* Effect.fail(fail(`invalid --size-budget: expected e.g. 2MB or 512KiB`))
      }
      const calibrationFile = Option.getOrUndefined(args.calibration)
      const calibrationTexts = calibrationFile === undefined ? undefined : yield* Effect.try({
        try: () => parseCalibrationJsonl(fs.readFileSync(calibrationFile, "utf8"), calibrationFile),
        catch: (error) => fail((error as Error).message)
      })
      const settings: OptimizeSettings = {
        quantization: args.quantization,
        blockSize: Number(args.blockSize) as 32 | 64 | 128,
        ...(Option.isSome(budget) ? { sizeBudgetBytes: budget.value } : {}),
        ...(Option.isSome(args.minCosine) ? { qualityBar: { cosine: args.minCosine.value } } : {})
      }
      const progress = stepReporter(args.json)
      const last = yield* asOperator(args.key, args.data)(
        client.call(watch(
          client.rpc.OptimizerRun({
            model: modelSourceOf(args.model),
            settings,
            ...(calibrationTexts === undefined ? {} : { calibrationTexts })
          }),
          (event: OptimizeProgress) => {
            if (event._tag === "OptimizeStep") progress.update(event.step, event.done, event.total)
          }
        ))
      ).pipe(Effect.ensuring(Effect.sync(progress.done)))
      if (last?._tag !== "OptimizeFinished") {
        return yield* Effect.fail(fail("the node ended the job without an outcome"))
      }
      yield* output(args.json, last, (done) =>
        [
          `optimizer job ${done.jobId} ${done.status}: ${args.model} as ${args.quantization} is sha256 ${done.artifact.sha256} (${
            formatBytes(done.artifact.size)
          }, ${((done.report.sizeRatio ?? Number.NaN) * 100).toFixed(1)}% of the original)`,
          `  output cosine vs FP32 on held-out inputs ${(done.report.cosine ?? Number.NaN).toFixed(5)}` +
          (done.reasons.length === 0 ? "" : `; refused: ${done.reasons.join("; ")}`)
        ].join("\n"))
    }))).pipe(Command.withDescription("ask a node to optimize a model from its registry, watching the job"))

const optionalNumber = (name: string, description: string) =>
  Options.float(name).pipe(Options.withDescription(description), Options.optional)

const train = Command.make("train", {
  model: Args.text({ name: "model[@version]" }).pipe(Args.withDescription("a model in the node's registry")),
  text: Options.file("text", { exists: "yes" }).pipe(
    Options.withDescription("the training data, sent with the request: plain text (LM) or JSON lines {text, label}")
  ),
  id: Options.text("id").pipe(Options.withDescription("the adapter's id")),
  version: Options.text("model-version").pipe(Options.withDefault("1.0.0")),
  rank: Options.integer("rank").pipe(Options.withDefault(4)),
  maxSteps: optionalNumber("max-steps", "stop after this many optimizer steps"),
  epochs: optionalNumber("epochs", "passes over the data (default 1)"),
  batchSize: optionalNumber("batch-size", "samples per step (default 8)"),
  learningRate: optionalNumber("learning-rate", "peak learning rate (default 1e-3)"),
  window: optionalNumber("window", "tokens per language-model window (default 128)"),
  seed: optionalNumber("seed", "seed of shuffles and initialization (default 0)"),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const content = fs.readFileSync(args.text, "utf8")
      const given = <K extends string>(key: K, option: Option.Option<number>) =>
        Option.match(option, { onNone: () => ({}), onSome: (value) => ({ [key]: value }) as Record<K, number> })
      const settings = {
        rank: args.rank,
        ...given("maxSteps", args.maxSteps),
        ...given("epochs", args.epochs),
        ...given("batchSize", args.batchSize),
        ...given("learningRate", args.learningRate),
        ...given("window", args.window),
        ...given("seed", args.seed)
      }
      const progress = stepReporter(args.json)
      const last = yield* asOperator(args.key, args.data)(
        client.call(watch(
          client.rpc.AdapterTrain({
            base: modelSourceOf(args.model),
            data: { content, name: path.basename(args.text) },
            settings,
            adapter: { id: args.id, version: args.version }
          }),
          (event: TrainingProgressEvent) => {
            if (event._tag === "TrainingStep") progress.update("train", event.step, event.totalSteps)
            else if (event._tag === "TrainingPhase" && event.phase !== "train") progress.update(event.phase, 0, 1)
          }
        ))
      ).pipe(Effect.ensuring(Effect.sync(progress.done)))
      if (last?._tag !== "TrainingFinished") {
        return yield* Effect.fail(fail("the node ended the job without an outcome"))
      }
      yield* output(args.json, last, (done) =>
        `training job ${done.jobId}: adapter ${done.adapter.id}@${done.adapter.version} on ${args.model}, ${done.metric} ${
          done.before.toFixed(4)
        } -> ${
          done.after.toFixed(4)
        } in ${done.steps} steps (${done.trainSamples} samples, ${done.heldOutSamples} held out)`)
    }))).pipe(Command.withDescription("ask a node to train a LoRA adapter on your data, watching the job"))

const show = Command.make("show", {
  kind: Args.choice([["optimize", "optimizer-job"], ["train", "training-job"]] as const, { name: "optimize|train" }),
  id: Args.text({ name: "job-id" }),
  data: dataOption,
  node: nodeOption,
  json: jsonOption
}, ({ data, id, json, kind, node }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const view = yield* client.call(client.rpc.AuditExplain({ kind, id }))
      yield* output(json, view, explainText)
    })
  )).pipe(Command.withDescription("a job's events in the node's journal and what they say"))

export const jobsCommand = Command.make("jobs").pipe(
  Command.withDescription("work a node does for you: optimize a model, train an adapter, and read the jobs back"),
  Command.withSubcommands([optimize, train, show])
)
