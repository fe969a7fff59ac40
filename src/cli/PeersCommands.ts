/**
 * `edge-net peers list|add|remove`: the node's libp2p peers, the feeds it follows and the fork proofs
 * it holds. Against a running node (`--node URL`) they act on its live peer; on a data dir they read
 * and edit its peer book, which the node dials at its next start.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect } from "effect"
import type { PeersView } from "../net/Peers.js"
import { asOperator, keyOption } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption }

/** The peers section of `peers list` and `node info`. */
export const peersLines = (view: PeersView): Array<string> => [
  view.peerId === null
    ? "peer       not running here (the peer book only; pass --node URL to ask a running node)"
    : `peer       ${view.peerId}`,
  ...view.listening.map((address) => `listening  ${address}`),
  `peers      ${view.peers.filter((peer) => peer.connected).length} connected, ${view.peers.length} known`,
  ...view.peers.map((peer) =>
    `  ${peer.peerId} ${peer.connected ? "connected" : "not connected"} (${peer.source}${
      peer.follow ? ", followed" : ""
    }${peer.latencyMs === null ? "" : `, ${peer.latencyMs} ms`}) ${peer.addresses.join(" ")}`
  ),
  ...view.feeds.map((feed) =>
    `feed       ${feed.peerId} at ${feed.position} of ${feed.announced} announced: ${feed.status}${
      feed.problem === null ? "" : ` (${feed.problem})`
    }`
  ),
  ...view.forkProofs.map((proof) =>
    `FORK       key ${proof.publicKey} signed two histories: head ${proof.first.position} ${proof.first.hash} is not on the chain of head ${proof.second.position} ${proof.second.hash}`
  )
]

const list = Command.make("list", common, ({ data, json, node }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const view = yield* client.call(client.rpc.PeersList())
      yield* output(json, view, (v) => peersLines(v).join("\n"))
    })
  )).pipe(Command.withDescription("who the node is on the network, its peers, the feeds it follows, fork proofs"))

const add = Command.make("add", {
  address: Args.text({ name: "address" }),
  follow: Options.boolean("follow").pipe(
    Options.withDescription("also keep a verified copy of the peer's journal feed")
  ),
  key: keyOption,
  ...common
}, ({ address, data, follow, json, key, node }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const peer = yield* asOperator(key, data)(client.call(client.rpc.PeersAdd({ address, follow })))
      yield* output(json, peer, (p) =>
        `${p.connected ? "connected to" : "added to the peer book (dialled when the node starts):"} ${p.peerId}${
          p.follow ? ", following its feed" : ""
        }`)
    })
  )).pipe(
    Command.withDescription(
      "dial a peer (/ip4/.../tcp/PORT/p2p/ID) and keep it in the peer book; --follow copies its feed"
    )
  )

const remove = Command.make("remove", {
  peerId: Args.text({ name: "peer-id" }),
  key: keyOption,
  ...common
}, ({ data, json, key, node, peerId }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const removed = yield* asOperator(key, data)(client.call(client.rpc.PeersRemove({ peerId })))
      yield* output(json, { peerId, removed }, (r) => r.removed ? `removed ${r.peerId}` : `${r.peerId} was not a peer`)
    })
  )).pipe(Command.withDescription("hang up on a peer, stop following its feed, and forget it"))

export const peersCommand = Command.make("peers").pipe(
  Command.withDescription("the node's libp2p peers"),
  Command.withSubcommands([list, add, remove])
)
