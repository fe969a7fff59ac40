/**
 * `edge-net-models adapters pull|report|peers`: adapters shared between peers with no registry
 * involved (seed 9.2). A running node does the peer work (`--node URL`, default `registry` in
 * models.yaml): it pulls chunk by chunk from the peers that announce the adapter, publishes a report
 * signed by your key, and shows who holds what. A pulled adapter is then copied into this machine's
 * models cache, checked again against the digests its publisher signed.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { adapterMetadataFile, loadAdapter } from "../compute/lora/AdapterFile.js"
import { localAdapterDir } from "../compute/lora/LocalAdapters.js"
import { parseManifest } from "../content/Manifest.js"
import { cacheDirectory } from "../content/ModelsConfig.js"
import { ed25519 } from "../domain/Ed25519.js"
import type { AdapterPullReceipt } from "../net/AdapterSwarm.js"
import * as Wire from "../net/AdapterWire.js"
import { CliError } from "./CliError.js"
import { asAnyKey, keyOption, loadKey } from "./CommandKeys.js"
import { configOption, ModelsSettings, withModels } from "./ModelsContext.js"
import { NodeClient } from "./NodeClient.js"
import { jsonOption, output } from "./Shared.js"

const fail = (message: string) => new CliError({ message })

const nodeUrlOption = Options.text("node").pipe(
  Options.withDescription("URL of the running node that talks to the peers (default: `registry` in models.yaml)"),
  Options.optional
)

/** Runs `use` against the node of `--node`, else of models.yaml's `registry`. */
const onNode = <A, E, R>(node: Option.Option<string>, use: (url: string) => Effect.Effect<A, E, R | NodeClient>) =>
  Effect.flatMap(ModelsSettings, ({ config }) => {
    const url = Option.getOrElse(node, () => config.registry).replace(/\/+$/, "")
    return Effect.provide(use(url), NodeClient.remote(url))
  })

const shortPeer = (peerId: string) => `…${peerId.slice(-8)}`

/** Copies the adapter the node now holds into the models cache, each file checked against the signed manifest. */
const copyToCache = (url: string, id: string, version: string) =>
  Effect.gen(function*() {
    const client = yield* NodeClient
    const { config } = yield* ModelsSettings
    const target = localAdapterDir(cacheDirectory(config), id, version)
    if (fs.existsSync(path.join(target, adapterMetadataFile))) return target
    const published = yield* client.call(client.rpc.RegistryGet({ id, version, kind: "adapter" }))
    const manifest = yield* Effect.mapError(parseManifest(published.manifest), (error) => fail(error.message))
    const staging = `${target}.part-${process.pid}`
    fs.mkdirSync(staging, { recursive: true })
    for (const artifact of Object.values(manifest.artifacts)) {
      const bytes = yield* Effect.tryPromise({
        try: () => fetch(`${url}/v1/blobs/sha256-${artifact.sha256}`).then((response) => response.arrayBuffer()),
        catch: (error) => fail(`cannot fetch ${artifact.filename} from ${url}: ${String(error)}`)
      })
      const digest = crypto.hash("sha256", new Uint8Array(bytes), "hex")
      if (digest !== artifact.sha256) {
        return yield* Effect.fail(fail(`${artifact.filename} from ${url} is not the signed one`))
      }
      fs.writeFileSync(path.join(staging, path.basename(artifact.filename)), new Uint8Array(bytes))
    }
    if (fs.existsSync(path.join(staging, adapterMetadataFile))) {
      yield* Effect.mapError(loadAdapter(staging), (error) => fail(error.message))
    }
    fs.mkdirSync(path.dirname(target), { recursive: true })
    fs.renameSync(staging, target)
    return target
  })

const pull = Command.make(
  "pull",
  {
    adapter: Args.text({ name: "id" }),
    version: Options.text("model-version").pipe(
      Options.withDescription("the version to pull (default: the newest announced)"),
      Options.optional
    ),
    node: nodeUrlOption,
    key: keyOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(
      args.config,
      onNode(args.node, (url) =>
        Effect.gen(function*() {
          const client = yield* NodeClient
          const receipt: AdapterPullReceipt = yield* asAnyKey(args.key)(
            client.call(client.rpc.AdapterPeersPull({ id: args.adapter, version: Option.getOrUndefined(args.version) }))
          )
          const stored = yield* copyToCache(url, receipt.id, receipt.version)
          yield* output(args.json, { ...receipt, stored }, (r) =>
            [
              r.alreadyHeld
                ? `${r.id}@${r.version} was already held by the node`
                : `pulled ${r.id}@${r.version} (${r.bytes} bytes, ${r.chunks} chunks) from ${
                  r.sources.map((source) => `${shortPeer(source.peerId)} ${source.chunks}`).join(", ")
                }`,
              ...r.refused.map((row) => `refused chunk ${row.chunk} from ${shortPeer(row.peerId)}: ${row.reason}`),
              `stored in ${r.stored}`
            ].join("\n"))
        }))
    )
).pipe(
  Command.withDescription("pull an adapter from the peers that announce it, chunk by chunk, into the node and here")
)

const report = Command.make(
  "report",
  {
    adapter: Args.text({ name: "id" }),
    score: Options.float("score").pipe(Options.withDescription("the quality you measured, in 0..1")),
    feedback: Options.text("feedback").pipe(Options.withDefault("")),
    node: nodeUrlOption,
    key: keyOption,
    config: configOption,
    json: jsonOption
  },
  (args) =>
    withModels(
      args.config,
      Effect.gen(function*() {
        if (!(args.score >= 0 && args.score <= 1)) {
          return yield* Effect.fail(fail(`invalid --score ${args.score}: expected a score in 0..1`))
        }
        const [name] = args.key
        if (name === undefined) {
          return yield* Effect.fail(fail("a report is signed by its reporter: pass --key NAME|FILE"))
        }
        const reporter = yield* loadKey(name)
        const signed = Wire.signReport(reporter.seed, {
          adapterId: args.adapter,
          reporterId: ed25519.publicKeyOf(reporter.seed),
          qualityScore: args.score,
          feedback: args.feedback,
          timestamp: Date.now(),
          signature: new Uint8Array(0)
        })
        const hex = Buffer.from(Wire.encodeReport(signed)).toString("hex")
        yield* onNode(args.node, () =>
          Effect.gen(function*() {
            const client = yield* NodeClient
            const receipt = yield* asAnyKey(args.key)(client.call(client.rpc.AdapterPeersReport({ report: hex })))
            yield* output(args.json, receipt, (r) =>
              `reported ${r.id} at ${args.score} as ${reporter.name}${
                r.score === undefined ? "" : `: its score is now ${r.score.toFixed(3)} from ${r.reports} report(s)`
              }`)
          }))
      })
    )
).pipe(Command.withDescription("publish a quality report on an adapter to every peer, signed by your key"))

const peers = Command.make(
  "peers",
  { node: nodeUrlOption, config: configOption, json: jsonOption },
  (args) =>
    withModels(
      args.config,
      onNode(args.node, () =>
        Effect.gen(function*() {
          const client = yield* NodeClient
          const view = yield* client.call(client.rpc.AdapterPeersList())
          yield* output(args.json, view, (v) =>
            [
              ...(v.adapters.length === 0 ? ["no adapter announced by a peer"] : []),
              ...v.adapters.map((row) =>
                `${`${row.id}@${row.version}`.padEnd(28)} base ${row.baseModel.padEnd(16)} rank ${
                  String(row.rank).padEnd(3)
                } ${row.domain}  quality ${row.announcedQuality.toFixed(2)}  held by ${
                  row.holders.map(shortPeer).join(" ")
                }${row.heldHere ? " and here" : ""}`
              ),
              ...v.strikes.map((row) => `strikes    ${row.peerId}: ${row.strikes}`),
              ...v.refused.map((line) => `refused    ${line}`)
            ].join("\n"))
        }))
    )
).pipe(Command.withDescription("the adapters peers announce to the node, who holds each, and what was refused"))

export const adapterPeersCommands = [pull, report, peers] as const
