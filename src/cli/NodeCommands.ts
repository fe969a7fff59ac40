/** `edge-net node start|info`: run a node in the foreground, or describe one. */
import { Command, Options } from "@effect/cli"
import { Effect, Layer, Option } from "effect"
import { exposureWarning, publicUrlProblem } from "../http/HostPolicy.js"
import { parseCharterSettings } from "../layers/Charter.js"
import { parseGenesisParameters } from "../layers/Genesis.js"
import { nodeLive } from "../http/Server.js"
import { DEFAULT_HOST, DEFAULT_PORT } from "../layers/NodeConfig.js"
import { CliError } from "./CliError.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output, settingsFor, withNode } from "./Shared.js"

const port = Options.integer("port").pipe(Options.withDescription(`HTTP port (default ${DEFAULT_PORT})`), Options.withDefault(DEFAULT_PORT))
const host = Options.text("host").pipe(Options.withDescription(`address to listen on (default ${DEFAULT_HOST})`), Options.withDefault(DEFAULT_HOST))
const allowHost = Options.text("allow-host").pipe(
  Options.withDescription("another name clients reach the node by (Host header), e.g. node.lan or node.lan:8080; repeatable"),
  Options.repeated
)
const publicUrl = Options.text("public-url").pipe(
  Options.withDescription("the URL clients reach the node at through a reverse proxy, e.g. https://node.example.com"),
  Options.optional
)

const genesisFromEnvironment = Effect.try({
  try: () => ({ genesisParameters: parseGenesisParameters(process.env["EDGE_NET_GENESIS"]), ...parseCharterSettings(process.env) }),
  catch: (error) => new CliError({ message: error instanceof Error ? error.message : String(error) })
})

const checkedPublicUrl = (url: Option.Option<string>) => {
  const problem = Option.flatMapNullable(url, publicUrlProblem)
  return Option.isSome(problem) ? Effect.fail(new CliError({ message: problem.value })) : Effect.succeed(Option.getOrUndefined(url))
}

const start = Command.make("start", { data: dataOption, port, host, allowHost, publicUrl }, ({ allowHost, data, host, port, publicUrl }) =>
  Effect.flatMap(Effect.zip(genesisFromEnvironment, checkedPublicUrl(publicUrl)), ([genesis, url]) => {
    const settings = settingsFor(data, { host, port, ...genesis, allowedHosts: allowHost, ...(url === undefined ? {} : { publicUrl: url }) })
    const warning = exposureWarning(host)
    return Effect.logInfo(`edge-net node starting, data in ${settings.dataDir}`).pipe(
      Effect.zipRight(warning === undefined ? Effect.void : Effect.logWarning(warning)),
      Effect.zipRight(Layer.launch(nodeLive(settings))),
      Effect.onInterrupt(() => Effect.logInfo("edge-net node stopped"))
    )
  })
).pipe(Command.withDescription(
  "run a node: SQLite journal, HTTP API (/health, /v1/events, /docs) and RPC (/rpc); EDGE_NET_GENESIS=name=value,... sets parameters never changed yet; " +
    "at first start EDGE_NET_NETWORK, EDGE_NET_OPERATORS (public keys) and EDGE_NET_OPERATOR_THRESHOLD found the network (default: this node's key, 1 of 1)"
))

const info = Command.make("info", { data: dataOption, node: nodeOption, json: jsonOption }, ({ data, json, node }) =>
  withNode(
    data,
    node,
    Effect.flatMap(NodeClient, (client) => client.info).pipe(
      Effect.flatMap((info) =>
        output(json, info, (i) =>
          [
            `node       ${i.nodeId}`,
            `public key ${i.publicKey}`,
            `version    ${i.version}`,
            `data       ${i.dataDir}`,
            `journal    ${i.head.position} events, head ${i.head.hash}`,
            `network    ${i.network ?? "(no charter yet)"}, operators ${i.operatorThreshold} of [${i.operators.join(", ")}]`,
            ...(Option.isSome(node) ? [`started    ${i.startedAt}`] : [])
          ].join("\n"))
      )
    )
  )).pipe(Command.withDescription("who the node is and where its journal stands"))

export const nodeCommand = Command.make("node").pipe(
  Command.withDescription("run or inspect a node"),
  Command.withSubcommands([start, info])
)
