/**
 * The node's HTTP server: the HttpApi handlers, Swagger UI at /docs (OpenAPI JSON at
 * /docs/openapi.json) and the RPC groups at /rpc, on one port, every route behind the guards
 * (Host, Origin, body size, error replies: Guards.ts).
 */
import { HttpApiBuilder, HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Data, Effect, Layer, Option } from "effect"
import { Ledger } from "../actors/economy/Ledger.js"
import { roundDeadlines } from "../actors/learning/RoundDeadlines.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { Journal } from "../events/Journal.js"
import { firstStartModelsLayer } from "../layers/FirstStartModels.js"
import { genesisParametersLayer } from "../layers/Genesis.js"
import { nodeServices } from "../layers/Node.js"
import type { NodeSettings } from "../layers/NodeConfig.js"
import {
  DEFAULT_HOST,
  DEFAULT_NETWORK,
  DEFAULT_PORT,
  httpLimitsOf,
  NodeConfig,
  p2pSettingsOf
} from "../layers/NodeConfig.js"
import { nodePolicies } from "../layers/NodePolicies.js"
import { NodeStatus } from "../layers/NodeStatus.js"
import { TelemetryConfig, TelemetryLive } from "../layers/Telemetry.js"
import { peerNodeLayer } from "../net/PeerNode.js"
import { signingClientLayer } from "../rpc/CommandSigning.js"
import { equivocationReports } from "../rpc/EquivocationReports.js"
import { gossipExchanges } from "../rpc/LearningPeers.js"
import { NodeApiRpcs } from "../rpc/NodeApiRpcs.js"
import { NodeApiRpcHandlers } from "../rpc/NodeRpcHandlers.js"
import { forwardedCommandsIntake, sequencedLayer } from "../rpc/Sequencing.js"
import { signedCommandsLayer } from "../rpc/SignedCommandsLive.js"
import { InferenceServing } from "../serve/OpenAi.js"
import { NodeApi } from "./Api.js"
import { boundedServer, closeLingeringConnections, NodeServer } from "./BoundedServer.js"
import { ContentHandlers } from "./ContentRoutes.js"
import { DashboardRoutes } from "./Dashboard.js"
import { DocsRoute } from "./Docs.js"
import { fastEmbeddingsLayer } from "./FastEmbeddings.js"
import { GuardsLayer } from "./Guards.js"
import { isWildcardAddress } from "./HostPolicy.js"
import { MetricsRoute } from "./Metrics.js"
import { OpenAiHandlers } from "./OpenAiRoutes.js"
import { ROUTE_PARAMETER_MAX_LENGTH } from "./RegistryApi.js"
import { publicBase, RegistryHandlers } from "./RegistryRoutes.js"

const SystemHandlers = HttpApiBuilder.group(
  NodeApi,
  "system",
  (handlers) => handlers.handle("health", () => Effect.flatMap(NodeStatus, (status) => status.health()))
)

const EventsHandlers = HttpApiBuilder.group(
  NodeApi,
  "events",
  (handlers) =>
    handlers.handle("list", ({ urlParams }) =>
      Effect.gen(function*() {
        const journal = yield* Journal
        const events = yield* journal.readAll(urlParams.from, urlParams.limit)
        const head = yield* journal.head
        return {
          events,
          next: events.length === 0 ? urlParams.from : events[events.length - 1]!.position + 1,
          head: head.position
        }
      }))
)

const LedgerHandlers = HttpApiBuilder.group(
  NodeApi,
  "ledger",
  (handlers) =>
    handlers.handle("balance", ({ path }) => Effect.flatMap(Ledger, (ledger) => ledger.balance(path.account)))
)

// Inference is served from the node's registry and blobs; its runtime loads on the first request. One
// instance (a layer is built once however many layers it is provided to): the router's handlers and
// the fast path share its queue and batches.
const InferenceServingLive = InferenceServing.Default

const ApiRoutes = HttpLayerRouter.addHttpApi(NodeApi, { openapiPath: "/docs/openapi.json" }).pipe(
  Layer.provide([SystemHandlers, EventsHandlers, LedgerHandlers, ContentHandlers, RegistryHandlers, OpenAiHandlers]),
  Layer.provide(InferenceServingLive)
)

// One set of handlers, one signature gate (its verifier threads) and one route to the economy's
// sequencer behind both RPC routes and the commands other nodes forward here.
const RpcHandlers = Layer.mergeAll(NodeApiRpcHandlers, signedCommandsLayer(), sequencedLayer)

/**
 * The node's RPC group served at `path`. A span per request is made only when telemetry exports spans
 * (an OTLP endpoint is configured): nobody reads them otherwise, and on a small request they cost
 * about a fifth of the node's CPU.
 */
const rpcRoute = (path: HttpLayerRouter.PathInput, protocol: "http" | "websocket") =>
  Layer.unwrapEffect(
    Effect.map(
      Effect.orDie(TelemetryConfig),
      ({ endpoint }) =>
        RpcServer.layerHttpRouter({ group: NodeApiRpcs, path, protocol, disableTracing: Option.isNone(endpoint) })
    )
  )

/** RPC over HTTP POST, NDJSON: one request per round trip, for curl and one-shot clients. */
const RpcRoute = rpcRoute("/rpc", "http").pipe(Layer.provide(RpcSerialization.layerNdjson))

/**
 * RPC over one WebSocket per client, MessagePack: requests multiplexed on a connection that stays
 * open, for programs that send many commands (no HTTP request, parse and reply per command).
 */
const RpcSocketRoute = rpcRoute("/rpc/ws", "websocket").pipe(Layer.provide(RpcSerialization.layerMsgPack))

/** The Node.js server with the configured bounds, not yet listening. */
const NodeServerBounded: Layer.Layer<NodeServer, never, NodeConfig> = Layer.effect(
  NodeServer,
  Effect.map(NodeConfig, (config) => boundedServer(httpLimitsOf(config))())
)

/** The node could not listen where it was told to (the port taken, the address not this machine's...). */
export class ListenError
  extends Data.TaggedError("ListenError")<{ readonly address: string; readonly reason: string }>
{
  override get message() {
    return `cannot listen on ${this.address}: ${this.reason}`
  }
}

/** The Node.js server on the configured host and port, with the configured bounds; at shutdown, lingering connections closed. */
export const NodeServerLive = Layer.provideMerge(
  closeLingeringConnections,
  Layer.unwrapEffect(
    Effect.map(
      Effect.all([NodeConfig, NodeServer]),
      ([config, server]) =>
        NodeHttpServer.layer(() => server, { host: config.host, port: config.port }).pipe(
          // @effect/platform's ServeError says only "ServeError"; the system's reason is its cause.
          Layer.mapError((error) =>
            new ListenError({
              address: `${config.host}:${config.port}`,
              reason: error.cause instanceof Error ? error.cause.message : String(error.cause)
            })
          )
        )
    )
  )
).pipe(Layer.provideMerge(NodeServerBounded))

/** Everything the router serves, behind the guards. */
const RouterLive = HttpLayerRouter.serve(
  Layer.mergeAll(
    ApiRoutes,
    DocsRoute,
    RpcRoute,
    RpcSocketRoute,
    MetricsRoute,
    DashboardRoutes,
    GuardsLayer,
    forwardedCommandsIntake,
    equivocationReports().pipe(Layer.provide(signingClientLayer))
  ).pipe(Layer.provide(RpcHandlers)),
  {
    disableLogger: true,
    // The router's default bound on a path parameter (100 characters) is shorter than the ids it serves.
    routerConfig: { maxParamLength: ROUTE_PARAMETER_MAX_LENGTH }
  }
)

/**
 * Serves everything on the configured host and port until the layer's scope closes: POST
 * /v1/embeddings first on Node's request event (FastEmbeddings.ts), on the same InferenceServing as
 * the router's handlers, then the router, which is serving before the fast path is put in front of it.
 */
export const HttpServerLive = Layer.unwrapEffect(Effect.map(NodeServer, fastEmbeddingsLayer)).pipe(
  Layer.provide(RouterLive),
  Layer.provide(InferenceServingLive),
  Layer.provide(NodeServerLive)
)

/** Where the node is reached, once it listens: its public URL, else its address (loopback for a wildcard). */
const nodeUrl = Effect.gen(function*() {
  const config = yield* NodeConfig
  const server = yield* HttpServer.HttpServer
  if (config.publicUrl !== undefined) return config.publicUrl.replace(/\/$/, "")
  const port = server.address._tag === "TcpAddress" ? server.address.port : config.port
  const host = isWildcardAddress(config.host)
    ? "127.0.0.1"
    : config.host.includes(":")
    ? `[${config.host}]`
    : config.host
  return `http://${host}:${port}`
})

/** What `npm start` tells its user once the node listens: where the dashboard is, and one command to try. */
const startupNotice = Layer.effectDiscard(
  Effect.gen(function*() {
    const url = yield* nodeUrl
    const registry = url === `http://${DEFAULT_HOST}:${DEFAULT_PORT}` ? "" : ` --registry ${url}`
    yield* Effect.logInfo(`dashboard: ${url}/ui`)
    yield* Effect.logInfo(`try: npx edge-net-models list${registry}`)
  })
).pipe(Layer.provide(NodeServerLive))

/** The node's libp2p peer, on the network its charter names. */
const peerLive = (settings: NodeSettings) =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const terms = yield* (yield* NetworkCharter).terms()
      const network = terms._tag === "Some" ? terms.value.network : settings.network ?? DEFAULT_NETWORK
      const blobsUrl = publicBase(settings)
      return peerNodeLayer({
        dataDir: settings.dataDir,
        network,
        ...p2pSettingsOf(settings),
        ...(blobsUrl === "" ? {} : { blobsUrl })
      })
    })
  )

/**
 * Everything `edge-net node start` runs: genesis settings, services, policies, the libp2p peer (its
 * `Peers` shadows the services' peer book), and the server on host:port, traced over OTLP when
 * configured (layers/Telemetry.ts).
 */
export const nodeLive = (settings: NodeSettings) =>
  Layer.mergeAll(HttpServerLive, nodePolicies, roundDeadlines, gossipExchanges, firstStartModelsLayer, startupNotice)
    .pipe(
      Layer.provide(peerLive(settings)),
      Layer.provide(genesisParametersLayer(settings.genesisParameters ?? {})),
      Layer.provide(nodeServices(settings)),
      Layer.provide(TelemetryLive)
    )
