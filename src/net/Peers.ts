/**
 * The node's view of its peers, its views declared once as Schema: who it is on the network, who it is
 * connected to, whose feeds it follows and how far, and the fork proofs it holds. A running node
 * answers from its libp2p peer (net/PeerNode.ts); a data dir without a running node answers from its
 * peer book alone (`offline`), and changes made there take effect when the node starts.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { BlobHolder } from "../content/RegistryTransfer.js"
import { ForkProof } from "../events/ForkProof.js"
import type { AdapterPullReceipt, AdapterReportReceipt, AdapterSwarmView } from "./AdapterSwarm.js"
import type { ForwardedAnswer, ForwardedCommand } from "./CommandWire.js"
import type { BookEntry } from "./PeerBook.js"
import { openPeerBook, PeerAddress, peerIdOfAddress, PeerIdText } from "./PeerBook.js"

export class PeersError extends Schema.TaggedError<PeersError>()("PeersError", { message: Schema.String }) {}

export const PeerView = Schema.Struct({
  peerId: Schema.String,
  addresses: Schema.Array(Schema.String),
  connected: Schema.Boolean,
  /** "book": named by the operator; "bootstrap": from the node's settings; "discovered": a peer of a peer. */
  source: Schema.Literal("book", "bootstrap", "discovered"),
  follow: Schema.Boolean,
  latencyMs: Schema.NullOr(Schema.Number)
})
export type PeerView = typeof PeerView.Type

export const FeedView = Schema.Struct({
  peerId: Schema.String,
  publicKey: Schema.String,
  /** Where the verified copy stands. */
  position: Schema.Number,
  hash: Schema.String,
  /** The newest head the source announced or served. */
  announced: Schema.Number,
  /** When this node first heard of that head (ms since the epoch); null before any. */
  announcedAt: Schema.NullOr(Schema.Number),
  /** "following", or what the follower caught: the source served a head below one it signed before, or a history that does not extend the copy. */
  status: Schema.Literal("following", "rolled back", "diverged"),
  problem: Schema.NullOr(Schema.String)
})
export type FeedView = typeof FeedView.Type

export const PeersView = Schema.Struct({
  /** Null when the node's peer is not running (answered from the peer book). */
  peerId: Schema.NullOr(Schema.String),
  listening: Schema.Array(Schema.String),
  peers: Schema.Array(PeerView),
  feeds: Schema.Array(FeedView),
  forkProofs: Schema.Array(ForkProof)
})
export type PeersView = typeof PeersView.Type

export interface PeersService {
  readonly view: Effect.Effect<PeersView>
  /** The fork proofs the node holds (the view's, without building the rest of it). */
  readonly forkProofs: Effect.Effect<ReadonlyArray<ForkProof>>
  /** Dials the address (when running) and writes it to the peer book; `follow` keeps a copy of its feed. */
  readonly add: (address: string, follow: boolean) => Effect.Effect<PeerView, PeersError>
  /** Hangs up (when running), stops following and forgets the peer. */
  readonly remove: (peerId: string) => Effect.Effect<boolean, PeersError>
  /** Sends a command to the node whose key is `publicKey` (the sequencer) and returns its answer. */
  readonly forward: (publicKey: string, command: ForwardedCommand) => Effect.Effect<ForwardedAnswer, PeersError>
  /** The peers that announced holding the blob (SHA-256 hex) lately, with where they serve it. */
  readonly holders: (sha256: string) => Effect.Effect<ReadonlyArray<BlobHolder>>
  /** Answers the commands other nodes forward here with `answer` (the node's RPC server, in process). */
  readonly acceptForwarded: (
    answer: (command: ForwardedCommand) => Effect.Effect<ForwardedAnswer>
  ) => Effect.Effect<void>
  /** Adapters shared between peers (net/AdapterPeer.ts); a node whose peer is not running has none. */
  readonly adapters: AdapterPeersService
}

/** The adapter swarm as a running node offers it: who holds what, pull from peers, publish a signed report. */
export interface AdapterPeersService {
  readonly view: Effect.Effect<AdapterSwarmView, PeersError>
  readonly pull: (id: string, version: string | undefined) => Effect.Effect<AdapterPullReceipt, PeersError>
  /** A report encoded and signed by its reporter (AdapterReport), hex. */
  readonly report: (reportHex: string) => Effect.Effect<AdapterReportReceipt, PeersError>
}

const notRunning = Effect.fail(
  new PeersError({ message: "adapters are shared between running nodes: ask a node that runs (--node URL)" })
)

export class Peers extends Context.Tag("edge-net/Peers")<Peers, PeersService>() {}

export const bookEntryOf = (address: string, follow: boolean): Effect.Effect<BookEntry, PeersError> =>
  Effect.mapError(
    Schema.decodeUnknown(PeerAddress)(address),
    () =>
      new PeersError({
        message:
          `invalid peer address "${address}": expected a multiaddr ending in /p2p/<peer id>, e.g. /ip4/10.0.0.2/tcp/7879/p2p/12D3KooW...`
      })
  ).pipe(Effect.map((checked) => ({ peerId: peerIdOfAddress(checked), address: checked, follow })))

export const checkedPeerId = (peerId: string) =>
  Effect.mapError(
    Schema.decodeUnknown(PeerIdText)(peerId),
    () => new PeersError({ message: `invalid peer id "${peerId}": expected base58 text such as 12D3KooW...` })
  )

/** Peers of a data dir whose node is not running: the book, read and edited on disk. */
export const offline = (dataDir: string) =>
  Layer.effect(
    Peers,
    Effect.gen(function*() {
      const book = () =>
        openPeerBook(dataDir).pipe(Effect.mapError((error) => new PeersError({ message: error.message })))
      return {
        view: book().pipe(
          Effect.map((opened): PeersView => ({
            peerId: null,
            listening: [],
            peers: opened.entries().map((entry) => ({
              peerId: entry.peerId,
              addresses: [entry.address],
              connected: false,
              source: "book" as const,
              follow: entry.follow,
              latencyMs: null
            })),
            feeds: [],
            forkProofs: []
          })),
          Effect.orDie
        ),
        forkProofs: Effect.succeed([]),
        add: (address, follow) =>
          Effect.gen(function*() {
            const entry = yield* bookEntryOf(address, follow)
            const opened = yield* book()
            yield* opened.put(entry)
            return {
              peerId: entry.peerId,
              addresses: [entry.address],
              connected: false,
              source: "book" as const,
              follow,
              latencyMs: null
            }
          }).pipe(
            Effect.catchTag("PeerBookError", (error) => Effect.fail(new PeersError({ message: error.message })))
          ),
        remove: (peerId) =>
          Effect.gen(function*() {
            const checked = yield* checkedPeerId(peerId)
            return yield* (yield* book()).remove(checked)
          }).pipe(
            Effect.catchTag("PeerBookError", (error) => Effect.fail(new PeersError({ message: error.message })))
          ),
        forward: () =>
          Effect.fail(
            new PeersError({
              message: "this node's peer is not running: send the command to a running node (--node URL)"
            })
          ),
        holders: () => Effect.succeed([]),
        acceptForwarded: () => Effect.void,
        adapters: { view: notRunning, pull: () => notRunning, report: () => notRunning }
      }
    })
  )
