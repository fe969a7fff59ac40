/**
 * `edge-net learn round open|submit|aggregate|close|show`: federated rounds on a node, through its RPC
 * (`LearnRound*`), each step signed by the account it names (the coordinator, or the submitting peer):
 * against a running node with `--node URL`, or in process on a data directory.
 */
import { Args, Command, Options } from "@effect/cli"
import { Duration, Effect, Option } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { RuleSpec } from "../actors/learning/FederatedRound.js"
import type { GossipView, RoundView } from "../actors/learning/LearningRpc.js"
import { CliError } from "./CliError.js"
import { asAnyKey, asOperator, asOwner, keyOption, parseAccount } from "./CommandKeys.js"
import { parseReference } from "./ModelsContext.js"
import { withNodeClient } from "./NodeAccess.js"
import { dataOption, jsonOption, nodeOption, output } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption }
const roundArg = Args.text({ name: "round-id" })
const fail = (message: string) => new CliError({ message })

/** The round in a few lines: its state, its updates, and the verdict on each once aggregated. */
export const describeRound = (round: RoundView, roundId: string) => {
  const spec = round.spec!
  const verdicts = new Map((round.outcome?.verdicts ?? []).map((verdict) => [verdict.peer, verdict]))
  return [
    `round ${roundId}: ${round.status}${
      round.closedBecause === null ? "" : ` (${round.closedBecause})`
    }, ${spec.rule._tag} on ${spec.base.id}@${spec.base.version}, ${round.updates.length}/${spec.quorum} update(s), until ${
      new Date(spec.deadline).toISOString()
    }`,
    ...round.updates.map((update) => {
      const verdict = verdicts.get(update.peer)
      return `  ${update.peer}  ${update.digest.slice(0, 12)}  ${update.samples} samples` +
        (verdict === undefined ? "" : `  ${verdict.kept ? "kept" : "EXCLUDED"}: ${verdict.reason}`)
    }),
    ...(round.outcome === null
      ? []
      : [
        `  result ${round.outcome.result.id}@${round.outcome.result.version} (${round.outcome.rule}, ${round.outcome.samples} samples)`
      ])
  ].join("\n")
}

const ruleOf = (
  rule: string,
  trim: Option.Option<number>,
  attackers: Option.Option<number>,
  selected: Option.Option<number>
): RuleSpec | string => {
  switch (rule) {
    case "fedavg":
    case "median":
    case "reputation":
      return { _tag: rule }
    case "trimmed-mean":
      return { _tag: "trimmed-mean", trim: Option.getOrElse(trim, () => 0.2) }
    case "krum":
      return Option.isNone(attackers) ? "krum needs --attackers F" : { _tag: "krum", attackers: attackers.value }
    default:
      return Option.isNone(attackers) || Option.isNone(selected)
        ? "multi-krum needs --attackers F and --selected M"
        : { _tag: "multi-krum", attackers: attackers.value, selected: selected.value }
  }
}

const open = Command.make("open", {
  roundId: roundArg,
  coordinator: Options.text("coordinator").pipe(Options.withDescription("the coordinator's account (its key signs)")),
  base: Options.text("base").pipe(Options.withDescription("the adapter every peer starts from: id[@version]")),
  task: Options.text("task").pipe(Options.withDefault("general")),
  rule: Options.choice("rule", ["fedavg", "median", "trimmed-mean", "krum", "multi-krum", "reputation"]).pipe(
    Options.withDefault("fedavg" as const)
  ),
  trim: Options.float("trim").pipe(Options.withDescription("trimmed mean: share cut at each end"), Options.optional),
  attackers: Options.integer("attackers").pipe(Options.withDescription("Krum's f"), Options.optional),
  selected: Options.integer("selected").pipe(Options.withDescription("Multi-Krum's m"), Options.optional),
  quorum: Options.integer("quorum").pipe(Options.withDefault(2)),
  duration: Options.text("duration").pipe(
    Options.withDescription("how long it takes updates, e.g. 10 minutes"),
    Options.withDefault("10 minutes")
  ),
  result: Options.text("result").pipe(Options.withDescription("where the aggregate is stored: id[@version]")),
  key: keyOption,
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const rule = ruleOf(args.rule, args.trim, args.attackers, args.selected)
      if (typeof rule === "string") return yield* Effect.fail(fail(rule))
      const duration = Duration.decodeUnknown(args.duration)
      if (Option.isNone(duration)) {
        return yield* Effect.fail(fail(`invalid --duration ${args.duration}: e.g. 10 minutes`))
      }
      const result = parseReference(args.result)
      const round = yield* asOwner(args.key, args.coordinator)(client.call(client.rpc.LearnRoundOpen({
        roundId: args.roundId,
        coordinator: yield* parseAccount(args.coordinator),
        base: parseReference(args.base),
        task: args.task,
        rule,
        durationMs: Math.round(Duration.toMillis(duration.value)),
        quorum: args.quorum,
        result: { id: result.id, version: result.version ?? "1.0.0" }
      })))
      yield* output(args.json, round, (view) => describeRound(view, args.roundId))
    }))).pipe(Command.withDescription("open a federated round on an adapter the node keeps"))

const submit = Command.make("submit", {
  roundId: roundArg,
  peer: Options.text("peer").pipe(Options.withDescription("the submitting account (its key signs)")),
  adapter: Options.file("adapter", { exists: "yes" }).pipe(
    Options.withDescription("the adapter trained from the round's base, as one JSON document (adapters export)")
  ),
  samples: Options.integer("samples").pipe(Options.withDescription("examples the update was trained on")),
  key: keyOption,
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const document = yield* Effect.try({
        try: () => fs.readFileSync(args.adapter, "utf8"),
        catch: (error) => fail(`cannot read ${args.adapter}: ${(error as Error).message}`)
      })
      const round = yield* asOwner(args.key, args.peer)(client.call(client.rpc.LearnRoundSubmit({
        roundId: args.roundId,
        peer: yield* parseAccount(args.peer),
        document,
        samples: args.samples
      })))
      yield* output(args.json, round, (view) => describeRound(view, args.roundId))
    }))).pipe(Command.withDescription("submit a peer's update to a round"))

const aggregate = Command.make("aggregate", {
  roundId: roundArg,
  coordinator: Options.text("coordinator"),
  key: keyOption,
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const round = yield* asOwner(args.key, args.coordinator)(client.call(client.rpc.LearnRoundAggregate({
        roundId: args.roundId,
        coordinator: yield* parseAccount(args.coordinator)
      })))
      yield* output(args.json, round, (view) => describeRound(view, args.roundId))
    }))).pipe(Command.withDescription("aggregate a round's updates by its rule (its coordinator)"))

const close = Command.make(
  "close",
  { roundId: roundArg, key: keyOption, ...common },
  (args) =>
    withNodeClient(args, (client) =>
      Effect.gen(function*() {
        const round = yield* asAnyKey(args.key)(client.call(client.rpc.LearnRoundClose({ roundId: args.roundId })))
        yield* output(args.json, round, (view) => describeRound(view, args.roundId))
      }))
).pipe(Command.withDescription("close a round whose deadline has passed"))

const show = Command.make(
  "show",
  { roundId: roundArg, ...common },
  (args) =>
    withNodeClient(args, (client) =>
      Effect.gen(function*() {
        const round = yield* client.call(client.rpc.LearnRound({ roundId: args.roundId }))
        yield* output(args.json, round, (view) => describeRound(view, args.roundId))
      }))
).pipe(Command.withDescription("a round, its updates and the verdict on each"))

const SHA256 = /^sha256:([0-9a-f]{64})$/

/** `id[@version]` in the node's registry, or `sha256:<hex>` of a blob it holds (then `--tokenizer` too). */
const modelSourceOf = (reference: string, tokenizer: Option.Option<string>) => {
  const blob = SHA256.exec(reference)
  if (blob !== null) {
    const tokenizerBlob = Option.map(tokenizer, (text) => SHA256.exec(text)?.[1])
    if (Option.isSome(tokenizerBlob) && tokenizerBlob.value === undefined) {
      return `invalid --tokenizer ${Option.getOrElse(tokenizer, () => "")}: expected sha256:<64 hex digits>`
    }
    return { sha256: blob[1]!, ...(Option.isSome(tokenizerBlob) ? { tokenizer: tokenizerBlob.value! } : {}) }
  }
  const at = reference.lastIndexOf("@")
  return at > 0 ? { id: reference.slice(0, at), version: reference.slice(at + 1) } : { id: reference }
}

const join = Command.make("join", {
  roundId: roundArg,
  at: Options.text("at").pipe(Options.withDescription("the peer id of the node that holds the round")),
  model: Options.text("model").pipe(
    Options.withDescription(
      "the round's base model on this node: id[@version] in its registry, or sha256:<hex> of a blob"
    )
  ),
  tokenizer: Options.text("tokenizer").pipe(
    Options.withDescription("with --model sha256:..., the blob of its tokenizer.json: sha256:<hex>"),
    Options.optional
  ),
  text: Options.file("text", { exists: "yes" }).pipe(
    Options.withDescription("this node's training data, sent with the request: plain text (LM) or JSON lines")
  ),
  steps: Options.integer("steps").pipe(
    Options.withDescription("optimizer steps of local training"),
    Options.withDefault(20)
  ),
  learningRate: Options.float("learning-rate").pipe(Options.optional),
  window: Options.integer("window").pipe(Options.withDescription("tokens per language-model window"), Options.optional),
  seed: Options.integer("seed").pipe(Options.optional),
  key: keyOption,
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const model = modelSourceOf(args.model, args.tokenizer)
      if (typeof model === "string") return yield* Effect.fail(fail(model))
      const content = yield* Effect.try({
        try: () => fs.readFileSync(args.text, "utf8"),
        catch: (error) => fail(`cannot read ${args.text}: ${(error as Error).message}`)
      })
      const round = yield* asOperator(args.key, args.data)(client.call(client.rpc.LearnRoundJoin({
        roundId: args.roundId,
        at: args.at,
        model,
        data: { content, name: path.basename(args.text) },
        steps: args.steps,
        ...Option.match(args.learningRate, { onNone: () => ({}), onSome: (learningRate) => ({ learningRate }) }),
        ...Option.match(args.window, { onNone: () => ({}), onSome: (window) => ({ window }) }),
        ...Option.match(args.seed, { onNone: () => ({}), onSome: (seed) => ({ seed }) })
      })))
      yield* output(args.json, round, (view) => describeRound(view, args.roundId))
    }))).pipe(
    Command.withDescription(
      "join a round another node holds: train from its base on this node's data and send the signed update to it"
    )
  )

/** The node's gossip learning in a few lines. */
export const describeGossip = (view: GossipView) =>
  [
    `gossip: ${view.status}${
      view.adapter === null ? "" : ` on ${view.adapter.id}@${view.adapter.version}`
    }, ${view.merges} merge(s)${
      view.settings === null
        ? ""
        : `, fanout ${view.settings.fanout} every ${view.settings.intervalMs} ms, ${view.settings.samples} samples`
    }`,
    ...(view.last === null
      ? []
      : [
        `  last: ${view.last.from.slice(0, 12)}'s update (${view.last.samples} samples, reputation ${
          view.last.reputation.toFixed(2)
        }) merged with weights ${view.last.ownWeight} / ${view.last.theirWeight}`
      ])
  ].join("\n")

const gossipStart = Command.make("start", {
  adapter: Options.text("adapter").pipe(Options.withDescription("the adapter this node gossips: id[@version]")),
  samples: Options.integer("samples").pipe(Options.withDescription("examples behind it: its weight in each merge")),
  fanout: Options.integer("fanout").pipe(Options.withDescription("neighbours per exchange"), Options.withDefault(2)),
  interval: Options.text("interval").pipe(
    Options.withDescription("time between exchanges, e.g. 30 seconds"),
    Options.withDefault("30 seconds")
  ),
  key: keyOption,
  ...common
}, (args) =>
  withNodeClient(args, (client) =>
    Effect.gen(function*() {
      const interval = Duration.decodeUnknown(args.interval)
      if (Option.isNone(interval)) {
        return yield* Effect.fail(fail(`invalid --interval ${args.interval}: e.g. 30 seconds`))
      }
      const view = yield* asOperator(args.key, args.data)(client.call(client.rpc.LearnGossipStart({
        adapter: parseReference(args.adapter),
        samples: args.samples,
        fanout: args.fanout,
        intervalMs: Math.round(Duration.toMillis(interval.value))
      })))
      yield* output(args.json, view, describeGossip)
    }))).pipe(Command.withDescription("merge this node's adapter with its neighbours' every interval"))

const gossipStop = Command.make(
  "stop",
  { key: keyOption, ...common },
  (args) =>
    withNodeClient(args, (client) =>
      Effect.gen(function*() {
        const view = yield* asOperator(args.key, args.data)(client.call(client.rpc.LearnGossipStop({})))
        yield* output(args.json, view, describeGossip)
      }))
).pipe(Command.withDescription("stop gossip learning (the merged adapters stay)"))

const gossipShow = Command.make(
  "show",
  { ...common },
  (args) =>
    withNodeClient(args, (client) =>
      Effect.gen(function*() {
        const view = yield* client.call(client.rpc.LearnGossip({}))
        yield* output(args.json, view, describeGossip)
      }))
).pipe(Command.withDescription("the node's gossip learning: its adapter now and its last merge"))

export const learnCommand = Command.make("learn").pipe(
  Command.withDescription("learn together: federated rounds and gossip of adapters between peers"),
  Command.withSubcommands([
    Command.make("round").pipe(
      Command.withDescription("federated rounds: open, join, submit, aggregate, close, show"),
      Command.withSubcommands([open, join, submit, aggregate, close, show])
    ),
    Command.make("gossip").pipe(
      Command.withDescription("gossip learning with no coordinator: start, stop, show"),
      Command.withSubcommands([gossipStart, gossipStop, gossipShow])
    )
  ])
)
