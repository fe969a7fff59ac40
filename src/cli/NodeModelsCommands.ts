/**
 * `edge-net registry`: the models a node holds, through its RPC (`ModelsPull`, `ModelsVerify`,
 * `ModelsPublish`, `ModelsTrust`, `ModelsUntrust`, `ModelsTrusted`) as any other program would reach
 * them, signed by the operator's key: against a running node with `--node URL`, or in process on a
 * data directory. `edge-net-models pull|verify|publish` run the same Models service on this
 * machine's cache.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import type { PublishReceipt } from "../actors/registry/Registry.js"
import type { PullReceiptView } from "../content/Models.js"
import { CliError } from "./CliError.js"
import { asOperator, keyOption } from "./CommandKeys.js"
import { watch } from "./JobsCommands.js"
import { describePull, verificationFailed, verifiedLine } from "./ModelsCommands.js"
import { parseReference } from "./ModelsContext.js"
import { withNodeClient } from "./NodeAccess.js"
import { progressReporter } from "./Progress.js"
import { dataOption, jsonOption, nodeOption, output } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption, key: keyOption }
const fail = (message: string) => new CliError({ message })

const pull = Command.make("pull", {
  model: Args.text({ name: "id[@version]" }),
  from: Options.text("from").pipe(Options.withDescription("URL of the registry node to pull from")),
  source: Options.choice("source", ["http", "ipfs", "peer"]).pipe(
    Options.withDescription("take bytes only from this kind of source (default: all)"),
    Options.optional
  ),
  allowRollback: Options.boolean("allow-rollback").pipe(
    Options.withDescription("accept a version older than one the node trusted before")
  ),
  noList: Options.boolean("no-list").pipe(
    Options.withDescription("keep the model in the node's store without listing it in its registry")
  ),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const reference = parseReference(args.model)
      const progress = progressReporter(args.json)
      let pulled: typeof PullReceiptView.Type | undefined
      let listed: PublishReceipt | undefined
      yield* asOperator(args.key, args.data)(
        client.call(watch(
          client.rpc.ModelsPull({
            id: reference.id,
            version: reference.version,
            registry: args.from.replace(/\/+$/, ""),
            sources: Option.match(args.source, { onNone: () => undefined, onSome: (kind) => [kind] }),
            allowRollback: args.allowRollback,
            list: !args.noList
          }),
          (event) => {
            if (event._tag === "PullProgress") progress.update({ ...event, etaSeconds: event.etaSeconds })
            else if (event._tag === "Pulled") pulled = event.receipt
            else if (event._tag === "Listed") listed = event.receipt
            else {
              progress.done()
              if (args.json) console.log(JSON.stringify({ event: "source-dropped", ...event }))
              else console.error(`edge-net: dropped ${event.source}: ${event.reason}`)
            }
          }
        ))
      ).pipe(Effect.ensuring(Effect.sync(progress.done)))
      if (pulled === undefined) return yield* Effect.fail(fail("the node ended the pull without a receipt"))
      yield* output(args.json, { event: "done", ...pulled, listed }, () =>
        describePull(pulled!) +
        (listed === undefined ? "" : `\n  listed in the node's registry at position ${listed.position}`))
    }))).pipe(
    Command.withDescription("have the node pull a model from another registry, verified against the keys it trusts")
  )

const verify = Command.make("verify", {
  model: Args.text({ name: "id[@version]" }),
  checkSignature: Options.boolean("check-signature"),
  data: dataOption,
  node: nodeOption,
  json: jsonOption
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const report = yield* client.call(
        client.rpc.ModelsVerify({ ...parseReference(args.model), checkSignature: args.checkSignature })
      )
      if (args.json) yield* output(true, report, () => "")
      if (!report.ok) return yield* Effect.fail(fail(verificationFailed(report)))
      if (!args.json) yield* output(false, report, verifiedLine)
    }))).pipe(
    Command.withDescription("have the node re-hash a model it holds and, with --check-signature, check its signatures")
  )

const artifactOf = (text: string) => {
  const match = /^(?:sha256[:-])?([0-9a-f]{64})(?:=(.+))?$/.exec(text)
  return match === null ? undefined : { sha256: match[1]!, filename: match[2] ?? "model.onnx" }
}

const publish = Command.make("publish", {
  blobs: Args.text({ name: "sha256[=filename]" }).pipe(
    Args.withDescription(
      "a blob the node holds (an optimizer job's output, say), under a file name (default model.onnx)"
    ),
    Args.atLeast(1)
  ),
  name: Options.text("name"),
  version: Options.text("model-version").pipe(Options.withDescription("semantic version of this release")),
  type: Options.text("type").pipe(Options.withDescription("text-generation, embedding, ...")),
  id: Options.text("id").pipe(Options.optional),
  family: Options.text("family").pipe(Options.optional),
  quantization: Options.choice("quantization", ["FP32", "FP16", "INT8", "INT4"]).pipe(Options.optional),
  license: Options.text("license").pipe(Options.optional),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const artifacts = args.blobs.map(artifactOf)
      const bad = args.blobs.find((_, index) => artifacts[index] === undefined)
      if (bad !== undefined) {
        return yield* Effect.fail(fail(`not a blob digest: ${bad} (expected sha256:<64 hex>[=filename])`))
      }
      const [first, ...rest] = artifacts.filter((artifact) => artifact !== undefined)
      const published = yield* asOperator(args.key, args.data)(
        client.call(client.rpc.ModelsPublish({
          artifacts: [first!, ...rest],
          name: args.name,
          version: args.version,
          type: args.type,
          id: Option.getOrUndefined(args.id),
          family: Option.getOrUndefined(args.family),
          quantization: Option.getOrUndefined(args.quantization),
          license: Option.getOrUndefined(args.license)
        }))
      )
      yield* output(
        args.json,
        published,
        ({ receipt }) =>
          `published ${receipt.id}@${receipt.version} in the node's registry, signed by ${receipt.keyId} (position ${receipt.position})`
      )
    }))).pipe(Command.withDescription("publish blobs the node holds under a manifest it signs with its key"))

const trust = Command.make("trust", {
  keyId: Args.text({ name: "key-id" }),
  publicKey: Args.text({ name: "public-key" }).pipe(Args.withDescription("64 hex characters")),
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const trusted = yield* asOperator(args.key, args.data)(
        client.call(client.rpc.ModelsTrust({ keyId: args.keyId, publicKey: args.publicKey }))
      )
      yield* output(args.json, trusted, (key) => `the node now trusts ${key.keyId} (${key.publicKey}) to sign models`)
    }))).pipe(Command.withDescription("have the node trust a publisher key for the models it pulls"))

const untrust = Command.make(
  "untrust",
  { keyId: Args.text({ name: "key-id" }), ...common },
  (args) =>
    withNodeClient(args, (client) =>
      Effect.gen(function*() {
        const { removed } = yield* asOperator(args.key, args.data)(
          client.call(client.rpc.ModelsUntrust({ keyId: args.keyId }))
        )
        yield* output(
          args.json,
          { removed },
          () => removed ? `the node no longer trusts ${args.keyId}` : `the node did not trust ${args.keyId}`
        )
      }))
).pipe(Command.withDescription("stop the node trusting a publisher key"))

const trusted = Command.make(
  "trusted",
  { data: dataOption, node: nodeOption, json: jsonOption },
  (args) =>
    withNodeClient(args, (client) =>
      Effect.gen(function*() {
        const keys = yield* client.call(client.rpc.ModelsTrusted({}))
        yield* output(args.json, keys, (all) =>
          all.length === 0
            ? "the node trusts no publisher key (add one with `edge-net registry trust`)"
            : all.map((key) => `${key.keyId.padEnd(24)} ${key.publicKey}`).join("\n"))
      }))
).pipe(Command.withDescription("the publisher keys the node trusts"))

export const nodeModelsCommand = Command.make("registry").pipe(
  Command.withDescription("the models a node holds: pull into it, verify, publish, and the keys it trusts"),
  Command.withSubcommands([pull, verify, publish, trust, untrust, trusted])
)
