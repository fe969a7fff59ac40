/** Who this node is and where its journal stands, for /health, the Node RPC group and `node info`. */
import { Effect } from "effect"
import { NodeKey } from "../content/NodeKey.js"
import { Journal } from "../events/Journal.js"
import { NodeConfig } from "./NodeConfig.js"

export const VERSION = "0.1.0"

export class NodeStatus extends Effect.Service<NodeStatus>()("edge-net/NodeStatus", {
  effect: Effect.gen(function* () {
    const key = yield* NodeKey
    const journal = yield* Journal
    const config = yield* NodeConfig
    const startedAt = new Date().toISOString()
    const info = Effect.fn("NodeStatus.info")(function* () {
      return {
        nodeId: key.nodeId, publicKey: key.publicKey, version: VERSION, dataDir: config.dataDir, startedAt, head: yield* journal.head
      }
    })
    return { info, head: journal.head } as const
  })
}) {}
