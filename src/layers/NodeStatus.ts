/** Who this node is and where its journal stands, for /health, /metrics, the Node RPC group and `node info`. */
import { Effect, Option, Schema } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import { Checkpoints, DeadLetter } from "../events/Checkpoints.js"
import { Journal } from "../events/Journal.js"
import { NodeConfig } from "./NodeConfig.js"
import { VERSION } from "./Version.js"

/** Dead letters shown whole by /health and `node info`; the count covers all of them. */
export const DEAD_LETTERS_SHOWN = 20

export const ChainHeadView = Schema.Struct({ position: Schema.Number, hash: Schema.String })

export const PolicyView = Schema.Struct({ name: Schema.String, checkpoint: Schema.Number, lag: Schema.Number })

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
  operatorThreshold: Schema.Number,
  /** The node key that sequences the network's economy; null when each node sequences its own. */
  sequencer: Schema.NullOr(Schema.String),
  /** Each policy's checkpoint, and its lag: events of the log it has still to look at. */
  policies: Schema.Array(PolicyView),
  /** Events a policy gave up on after its retries (all of them counted, the newest shown). */
  deadLetterCount: Schema.Number,
  deadLetters: Schema.Array(DeadLetter)
})
export type NodeInfoView = typeof NodeInfoView.Type

export class NodeStatus extends Effect.Service<NodeStatus>()("edge-net/NodeStatus", {
  effect: Effect.gen(function*() {
    const key = yield* NodeKey
    const journal = yield* Journal
    const checkpoints = yield* Checkpoints
    const config = yield* NodeConfig
    const charter = yield* NetworkCharter
    const startedAt = new Date().toISOString()

    /** Each policy's checkpoint and how many events of the log it has still to look at. */
    const policies = Effect.fn("NodeStatus.policies")(function*() {
      const head = yield* journal.head
      const all = yield* checkpoints.all
      return all.map(({ name, position }) => ({
        name,
        checkpoint: position,
        lag: Math.max(0, head.position - position)
      }))
    })

    /** Events policies gave up on: a node that has any is up but "degraded" until an operator looks. */
    const deadLetters = Effect.fn("NodeStatus.deadLetters")(function*() {
      return { count: yield* checkpoints.deadLetterCount, newest: yield* checkpoints.deadLetters(DEAD_LETTERS_SHOWN) }
    })

    const health = Effect.fn("NodeStatus.health")(function*() {
      const letters = yield* deadLetters()
      return {
        status: letters.count === 0 ? "ok" as const : "degraded" as const,
        nodeId: key.nodeId,
        head: yield* journal.head,
        deadLetterCount: letters.count,
        deadLetters: letters.newest
      }
    })

    const info = Effect.fn("NodeStatus.info")(function*() {
      const terms = Option.getOrUndefined(yield* charter.terms())
      const letters = yield* deadLetters()
      return {
        nodeId: key.nodeId,
        publicKey: key.publicKey,
        version: VERSION,
        dataDir: config.dataDir,
        startedAt,
        head: yield* journal.head,
        network: terms?.network ?? null,
        operators: terms?.operators ?? [],
        operatorThreshold: terms?.threshold ?? 0,
        sequencer: terms?.sequencer ?? null,
        policies: yield* policies(),
        deadLetterCount: letters.count,
        deadLetters: letters.newest
      }
    })
    return { info, health, policies, head: journal.head } as const
  })
}) {}
