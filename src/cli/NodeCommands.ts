/** `edge-net node start|info|dead-letters`: run a node in the foreground, describe one, or tend its dead letters. */
import { Command, Options } from "@effect/cli"
import { Effect, Layer, Option } from "effect"
import { configFile, keysDirectory, loadConfig } from "../content/ModelsConfig.js"
import { exposureWarning, isLoopbackAddress, publicUrlProblem } from "../http/HostPolicy.js"
import { nodeLive } from "../http/Server.js"
import { Environment, type EnvironmentSettings } from "../layers/Environment.js"
import { corsOriginProblem, DEFAULT_HOST, DEFAULT_PORT } from "../layers/NodeConfig.js"
import { heapFollowsLoad } from "../node/IdleHeap.js"
import { CliError } from "./CliError.js"
import { deadLettersCommand } from "./DeadLetterCommands.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { peersLines } from "./PeersCommands.js"
import { dataOption, jsonOption, nodeOption, output, settingsFor } from "./Shared.js"

const port = Options.integer("port").pipe(
  Options.withDescription(`HTTP port (default $EDGE_NET_PORT, else ${DEFAULT_PORT})`),
  Options.optional
)
const host = Options.text("host").pipe(
  Options.withDescription(`address to listen on (default $EDGE_NET_HOST, else ${DEFAULT_HOST})`),
  Options.optional
)
const allowHost = Options.text("allow-host").pipe(
  Options.withDescription(
    "another name clients reach the node by (Host header), e.g. node.lan or node.lan:8080; repeatable"
  ),
  Options.repeated
)
const publicUrl = Options.text("public-url").pipe(
  Options.withDescription("the URL clients reach the node at through a reverse proxy, e.g. https://node.example.com"),
  Options.optional
)

const corsOrigin = Options.text("cors-origin").pipe(
  Options.withDescription(
    "an origin whose pages may read the registry and blobs (GET, HEAD), e.g. https://app.example, or *; repeatable (adds to $EDGE_NET_CORS_ORIGINS)"
  ),
  Options.repeated
)

const bootstrap = Options.text("bootstrap").pipe(
  Options.withDescription(
    "a peer address to dial at start, e.g. /ip4/10.0.0.2/tcp/7879/p2p/12D3KooW...; repeatable (adds to $EDGE_NET_BOOTSTRAP)"
  ),
  Options.repeated
)
const follow = Options.text("follow").pipe(
  Options.withDescription(
    "a peer id whose journal feed this node copies and verifies; repeatable (adds to $EDGE_NET_FOLLOW)"
  ),
  Options.repeated
)
const p2pListen = Options.text("p2p-listen").pipe(
  Options.withDescription(
    "a multiaddr the peer listens on; repeatable (default $EDGE_NET_P2P_LISTEN, else TCP on port+1 and WebSockets on port+2)"
  ),
  Options.repeated
)

const checkedPort = (port: Option.Option<number>) =>
  Option.match(port, {
    onNone: () => Effect.succeed(undefined),
    onSome: (value) =>
      Number.isSafeInteger(value) && value >= 1 && value <= 65535
        ? Effect.succeed(value)
        : Effect.fail(new CliError({ message: `invalid --port ${value}: expected a port number from 1 to 65535` }))
  })

/**
 * The trust store of this machine's `edge-net-models` when its registry is the node about to start,
 * where the node trusts its own key once it published the first-start models; else undefined.
 */
const cliTrustDirFor = (environment: EnvironmentSettings, host: string, port: number) =>
  loadConfig(configFile(Option.getOrUndefined(environment.modelsConfig))).pipe(
    Effect.map((config) => {
      const registry = URL.canParse(config.registry) ? new URL(config.registry) : undefined
      const sameNode = registry !== undefined && Number(registry.port || 80) === port &&
        (isLoopbackAddress(registry.hostname) || registry.hostname === host)
      return sameNode ? keysDirectory(config) : undefined
    }),
    // A broken models.yaml is the CLI's to report; the node starts regardless.
    Effect.orElseSucceed(() => undefined)
  )

const checkedPublicUrl = (url: Option.Option<string>) => {
  const problem = Option.flatMapNullable(url, publicUrlProblem)
  return Option.isSome(problem)
    ? Effect.fail(new CliError({ message: problem.value }))
    : Effect.succeed(Option.getOrUndefined(url))
}

const start = Command.make(
  "start",
  { data: dataOption, port, host, allowHost, publicUrl, corsOrigin, bootstrap, follow, p2pListen },
  ({ allowHost, bootstrap, corsOrigin, data, follow, host, p2pListen, port, publicUrl }) =>
    Effect.gen(function*() {
      const environment = yield* Environment
      const url = yield* checkedPublicUrl(publicUrl)
      const listenPort = yield* checkedPort(port)
      const badOrigin = corsOrigin.map(corsOriginProblem).find((problem) => problem !== undefined)
      if (badOrigin !== undefined) return yield* Effect.fail(new CliError({ message: `--cors-origin: ${badOrigin}` }))
      const settings = yield* settingsFor(data, {
        ...(Option.isSome(host) ? { host: host.value } : {}),
        ...(listenPort === undefined ? {} : { port: listenPort }),
        genesisParameters: environment.genesisParameters,
        ...(environment.network === undefined ? {} : { network: environment.network }),
        ...(environment.operators === undefined ? {} : { operators: environment.operators }),
        ...(environment.operatorThreshold === undefined ? {} : { operatorThreshold: environment.operatorThreshold }),
        ...(environment.sequencer === undefined ? {} : { sequencer: environment.sequencer }),
        allowedHosts: allowHost,
        ...(url === undefined ? {} : { publicUrl: url }),
        corsOrigins: [...environment.corsOrigins, ...corsOrigin],
        p2p: {
          ...(p2pListen.length > 0
            ? { listen: p2pListen }
            : Option.isSome(environment.p2pListen)
            ? { listen: environment.p2pListen.value }
            : {}),
          bootstrap: [...environment.bootstrap, ...bootstrap],
          follow: [...environment.follow, ...follow]
        }
      })
      const cliTrustDir = settings.firstStartModels === true
        ? yield* cliTrustDirFor(environment, settings.host, settings.port)
        : undefined
      const warning = exposureWarning(settings.host)
      return yield* Effect.logInfo(`edge-net node starting, data in ${settings.dataDir}`).pipe(
        Effect.zipRight(warning === undefined ? Effect.void : Effect.logWarning(warning)),
        // Layer.launch, with the young generation held (edge-net.ts) until the node, built, is at work.
        Effect.zipRight(Effect.scoped(
          Layer.build(nodeLive({ ...settings, cliTrustDir })).pipe(
            Effect.zipRight(
              Effect.acquireRelease(Effect.sync(() => heapFollowsLoad()), (stop) => Effect.sync(stop))
            ),
            Effect.zipRight(Effect.never)
          )
        )),
        Effect.onInterrupt(() => Effect.logInfo("edge-net node stopped"))
      )
    })
).pipe(Command.withDescription(
  "run a node: SQLite journal, HTTP API (/health, /v1/events, /docs) and RPC (/rpc); EDGE_NET_GENESIS=name=value,... sets parameters never changed yet; " +
    "at first start EDGE_NET_NETWORK, EDGE_NET_OPERATORS (public keys), EDGE_NET_OPERATOR_THRESHOLD and EDGE_NET_SEQUENCER (self, a public key or a peer id) found the network (default: this node's key, 1 of 1, each node its own sequencer)"
))

const firstLine = (text: string) => text.split("\n", 1)[0] ?? ""

const info = Command.make(
  "info",
  { data: dataOption, node: nodeOption, json: jsonOption },
  ({ data, json, node }) =>
    withNode(
      data,
      node,
      Effect.flatMap(NodeClient, (client) =>
        Effect.zipWith(client.info, client.call(client.rpc.PeersList()), (info, peers) => ({ ...info, peers }))).pipe(
          Effect.flatMap((info) =>
            output(json, info, (i) =>
              [
                `node       ${i.nodeId}`,
                `public key ${i.publicKey}`,
                `version    ${i.version}`,
                `data       ${i.dataDir}`,
                `journal    ${i.head.position} events, head ${i.head.hash}`,
                `network    ${i.network ?? "(no charter yet)"}, operators ${i.operatorThreshold} of [${
                  i.operators.join(", ")
                }]`,
                `sequencer  ${
                  i.sequencer === null
                    ? "none (this node sequences its own economy)"
                    : i.sequencer === i.publicKey
                    ? "this node"
                    : i.sequencer
                }`,
                ...i.policies.map((p) =>
                  `policy     ${p.name} at ${p.checkpoint}, ${p.lag} behind`
                ),
                `dead       ${i.deadLetterCount} dead letter${i.deadLetterCount === 1 ? "" : "s"}`,
                ...i.deadLetters.map((d) =>
                  `  ${d.policy} gave up on position ${d.position} (${d.eventType} on ${d.streamId}) after ${d.attempts} attempts at ${d.failedAt}: ${
                    firstLine(d.error)
                  }`
                ),
                ...(Option.isSome(node) ? [`started    ${i.startedAt}`] : []),
                ...peersLines(i.peers)
              ].join("\n"))
          )
        )
    )
).pipe(Command.withDescription("who the node is and where its journal stands"))

export const nodeCommand = Command.make("node").pipe(
  Command.withDescription("run or inspect a node"),
  Command.withSubcommands([start, info, deadLettersCommand])
)
