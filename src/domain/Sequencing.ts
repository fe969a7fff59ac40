/**
 * Where the economy's commands run: on the network's sequencer, named at genesis. Every economy RPC
 * (ledger, staking, market, governance, operator issuance) carries the `Sequenced` middleware: on
 * the sequencer, or on a node whose charter names none, it runs the command here; on any other node
 * it forwards the command, signature and all, to the sequencer and relays its answer.
 */
import { RpcMiddleware } from "@effect/rpc"
import { Context, Schema } from "effect"

export class SequencerUnreachable extends Schema.TaggedError<SequencerUnreachable>()("SequencerUnreachable", {
  /** The sequencer's node key. */
  sequencer: Schema.String,
  detail: Schema.String
}) {
  override get message() {
    return `cannot reach the economy's sequencer ${this.sequencer}: ${this.detail}`
  }
}

export class Sequenced extends RpcMiddleware.Tag<Sequenced>()("edge-net/Sequenced", {
  wrap: true,
  failure: SequencerUnreachable
}) {}

/**
 * Annotates a command that a peer may send to this node over the command protocol and this node runs
 * itself, whoever sequences the economy: learning between peers (a peer's update to the node that
 * holds the round, a gossip push). The node's gate checks its signature as for any command.
 */
export class AnsweredByPeers extends Context.Reference<AnsweredByPeers>()("edge-net/AnsweredByPeers", {
  defaultValue: () => false
}) {}
