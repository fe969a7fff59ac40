/** Who this node is and where its journal stands, for /health, the Node RPC group and `node info`. */
import { Effect, Option, Schema } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import { Journal } from "../events/Journal.js"
import { NodeConfig } from "./NodeConfig.js"

export const VERSION = "0.1.0"

export const ChainHeadView = Schema.Struct({ position: Schema.Number, hash: Schema.String })

export const NodeInfoView = Schema.Struct({
  nodeId: Schema.String,
  publicKey: Schema.String,
  version: Schema.String,
  dataDir: Schema.String,
  startedAt: Schema.String,
  head: ChainHeadView,
  /** The network id signed commands must name, and the operator keys (k of n) named at genesis. */
  network: Schema.NullOr(Schema.String),
  operators: Schema.Array(Schema.String),
  operatorThreshold: Schema.Number
})
export type NodeInfoView = typeof NodeInfoView.Type

export class NodeStatus extends Effect.Service<NodeStatus>()("edge-net/NodeStatus", {
  effect: Effect.gen(function* () {
    const key = yield* NodeKey
    const journal = yield* Journal
    const config = yield* NodeConfig
    const charter = yield* NetworkCharter
    const startedAt = new Date().toISOString()
    const info = Effect.fn("NodeStatus.info")(function* () {
      const terms = Option.getOrUndefined(yield* charter.terms())
      return {
        nodeId: key.nodeId, publicKey: key.publicKey, version: VERSION, dataDir: config.dataDir, startedAt, head: yield* journal.head,
        network: terms?.network ?? null, operators: terms?.operators ?? [], operatorThreshold: terms?.threshold ?? 0
      }
    })
    return { info, head: journal.head } as const
  })
}) {}
