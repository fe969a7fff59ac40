/**
 * The node's HTTP server: the HttpApi handlers, Swagger UI at /docs (OpenAPI JSON at
 * /docs/openapi.json) and the RPC groups at /rpc, on one port.
 */
import { HttpApiBuilder, HttpApiSwagger, HttpLayerRouter } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { Ledger } from "../actors/economy/Ledger.js"
import { LedgerRpcs } from "../actors/economy/LedgerRpc.js"
import { RegistryRpcs } from "../actors/registry/RegistryRpc.js"
import { Registry } from "../actors/registry/RegistryService.js"
import { Journal } from "../events/Journal.js"
import { NodeAudit } from "../node/NodeAudit.js"
import { NodeConfig } from "../node/NodeConfig.js"
import { NodeStatus } from "../node/NodeStatus.js"
import { NodeApiRpcs } from "../rpc/NodeApiRpcs.js"
import { NodeRpcs } from "../rpc/NodeRpc.js"
import { NodeApi } from "./Api.js"
import { ContentHandlers } from "./ContentRoutes.js"
import { RegistryHandlers } from "./RegistryRoutes.js"

const SystemHandlers = HttpApiBuilder.group(NodeApi, "system", (handlers) =>
  handlers.handle("health", () =>
    Effect.flatMap(NodeStatus, (status) => status.info()).pipe(
      Effect.map((info) => ({ status: "ok" as const, nodeId: info.nodeId, head: info.head }))
    )))

const EventsHandlers = HttpApiBuilder.group(NodeApi, "events", (handlers) =>
  handlers.handle("list", ({ urlParams }) =>
    Effect.gen(function* () {
      const journal = yield* Journal
      const events = yield* journal.readAll(urlParams.from, urlParams.limit)
      const head = yield* journal.head
      return { events, next: events.length === 0 ? urlParams.from : events[events.length - 1]!.position + 1, head: head.position }
    })))

const LedgerHandlers = HttpApiBuilder.group(NodeApi, "ledger", (handlers) =>
  handlers.handle("balance", ({ path }) => Effect.flatMap(Ledger, (ledger) => ledger.balance(path.account))))

const NodeRpcHandlers = NodeRpcs.toLayer(
  Effect.gen(function* () {
    const status = yield* NodeStatus
    const audit = yield* NodeAudit
    return {
      NodeInfo: () => status.info(),
      JournalHead: () => status.head,
      AuditVerify: () => audit.verify(),
      AuditReplay: () => audit.replay()
    }
  })
)

const LedgerRpcHandlers = LedgerRpcs.toLayer(
  Effect.gen(function* () {
    const ledger = yield* Ledger
    return {
    LedgerBalance: ({ account }) => ledger.balance(account),
    LedgerMint: ({ account, amount, operationId }) => ledger.mint(account, amount, operationId),
    LedgerTransfer: ({ from, to, amount, transferId }) => ledger.transfer(from, to, amount, transferId),
    LedgerHold: ({ account, holdId, amount }) => ledger.hold(account, holdId, amount),
    LedgerRelease: ({ account, holdId }) => ledger.release(account, holdId),
    LedgerCapture: ({ account, holdId, to, amount }) => ledger.capture(account, holdId, to, amount)
    }
  })
)

const RegistryRpcHandlers = RegistryRpcs.toLayer(
  Effect.gen(function* () {
    const registry = yield* Registry
    return {
      RegistryList: (filter) => registry.list(filter),
      RegistryGet: ({ id, kind, version }) => registry.get(id, version, kind),
      RegistryVersions: ({ id, kind }) => registry.versions(id, kind),
      RegistryPublish: ({ allowOlder, manifest }) => registry.publish(manifest, { allowOlder, kind: "model" }),
      RegistryYank: (request) => registry.yank(request),
      AdapterList: (filter) => registry.listAdapters(filter),
      AdapterPublish: ({ allowOlder, manifest }) => registry.publishAdapter(manifest, { allowOlder })
    }
  })
)

const ApiRoutes = HttpLayerRouter.addHttpApi(NodeApi, { openapiPath: "/docs/openapi.json" }).pipe(
  Layer.provide([SystemHandlers, EventsHandlers, LedgerHandlers, ContentHandlers, RegistryHandlers])
)

const DocsRoute = HttpApiSwagger.layerHttpLayerRouter({ api: NodeApi, path: "/docs" })

const RpcRoute = RpcServer.layerHttpRouter({ group: NodeApiRpcs, path: "/rpc", protocol: "http" }).pipe(
  Layer.provide([NodeRpcHandlers, LedgerRpcHandlers, RegistryRpcHandlers, RpcSerialization.layerNdjson])
)

/** Serves everything on the configured host and port until the layer's scope closes. */
export const HttpServerLive = HttpLayerRouter.serve(Layer.mergeAll(ApiRoutes, DocsRoute, RpcRoute), { disableLogger: true }).pipe(
  Layer.provide(
    Layer.unwrapEffect(Effect.map(NodeConfig, (config) => NodeHttpServer.layer(createServer, { host: config.host, port: config.port })))
  )
)
