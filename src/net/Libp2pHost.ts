/**
 * The node as a libp2p peer: TCP and WebSockets, Noise, Yamux, identify, ping and gossipsub, its peer
 * id the node key's. Everything above this file speaks in peer id strings, multiaddr strings and bytes:
 * libp2p's types stay here, and this module is loaded only when a node starts its peer (a CLI command
 * that never talks to peers never pays for importing libp2p).
 *
 * Discovery: bootstrap addresses and the operator's peer book are dialled at start; beyond them, peers
 * of peers are learnt from the pubsub peer-discovery topic (each peer announces its addresses there,
 * signed by its libp2p key) and dialled while the node has fewer than `targetPeers` connections.
 *
 * Gossipsub is hardened as its authors recommend: only our topics are allowed, every message is signed
 * (StrictSign) and validated by its topic's validator before it is forwarded, a rejected message
 * costs its sender score, and peers below the thresholds are no longer gossiped with, published to,
 * or heard at all (graylisted).
 */
import "../node/Polyfills.js"
import { noise } from "@chainsafe/libp2p-noise"
import { yamux } from "@chainsafe/libp2p-yamux"
import { bootstrap } from "@libp2p/bootstrap"
import { privateKeyFromRaw } from "@libp2p/crypto/keys"
import { gossipsub, TopicValidatorResult } from "@libp2p/gossipsub"
import type { GossipSub } from "@libp2p/gossipsub"
import { identify } from "@libp2p/identify"
import type { PeerId } from "@libp2p/interface"
import { peerIdFromString } from "@libp2p/peer-id"
import { ping } from "@libp2p/ping"
import { pubsubPeerDiscovery, TOPIC as DISCOVERY_TOPIC } from "@libp2p/pubsub-peer-discovery"
import { tcp } from "@libp2p/tcp"
import { lpStream } from "@libp2p/utils"
import { webSockets } from "@libp2p/websockets"
import { multiaddr } from "@multiformats/multiaddr"
import { createLibp2p } from "libp2p"
import { scoreThresholds, topicScore } from "./GossipScoring.js"

/** What a topic's validator says of a message: forward it, drop it quietly, or drop it and blame the sender. */
export type Verdict = "accept" | "ignore" | "reject"

export interface TopicSpec {
  readonly topic: string
  /** Decides before the message is delivered or forwarded; a reject lowers the sender's score. */
  readonly validate: (data: Uint8Array) => Verdict
  readonly onMessage: (data: Uint8Array, from: string) => void
}

export interface ProtocolSpec {
  /** A libp2p protocol id, e.g. `/edge-net/feed/1.0.0`. */
  readonly protocol: string
  /** Largest request accepted, in bytes. */
  readonly maxRequestBytes: number
  readonly handle: (request: Uint8Array, from: string) => Promise<Uint8Array>
}

/**
 * A protocol whose answer is a sequence of messages on one stream, each length-prefixed, which the
 * asker reads as they come while the server produces the next: a feed sent page after page. The
 * stream's window bounds how far the server runs ahead of a slow reader.
 */
export interface StreamProtocolSpec {
  readonly protocol: string
  /** Largest request accepted, in bytes. */
  readonly maxRequestBytes: number
  readonly serve: (request: Uint8Array, from: string) => AsyncIterable<Uint8Array>
}

export interface HostOptions {
  /** The node key's 32-byte seed and its raw public key: the peer id is derived from them. */
  readonly seed: Uint8Array
  readonly publicKey: Uint8Array
  readonly listen: ReadonlyArray<string>
  /** Multiaddrs with a `/p2p/<peer id>` part, dialled at start and redialled while below target. */
  readonly bootstrap: ReadonlyArray<string>
  readonly topics: ReadonlyArray<TopicSpec>
  readonly protocols: ReadonlyArray<ProtocolSpec>
  readonly streamProtocols?: ReadonlyArray<StreamProtocolSpec> | undefined
  /** How many connections the node tries to keep by dialling discovered peers (default 16). */
  readonly targetPeers?: number | undefined
  /** How often this node announces its addresses on the discovery topic (default 2 s). */
  readonly discoveryIntervalMs?: number | undefined
}

export interface ConnectedPeer {
  readonly peerId: string
  readonly addresses: ReadonlyArray<string>
  readonly direction: "inbound" | "outbound"
  /** Round-trip time of identify's or ping's last exchange, when known. */
  readonly latencyMs: number | null
}

export interface Host {
  readonly peerId: string
  readonly addresses: () => ReadonlyArray<string>
  readonly connected: () => ReadonlyArray<ConnectedPeer>
  /** Dials an address (with its `/p2p/` part) and resolves with the peer id it reached. */
  readonly dial: (address: string) => Promise<string>
  readonly hangUp: (peerId: string) => Promise<void>
  readonly publish: (topic: string, data: Uint8Array) => Promise<number>
  /** Peers subscribed to `topic` that this node can send to. */
  readonly topicPeers: (topic: string) => number
  /** One request, one response, on a fresh stream; fails after `timeoutMs` or past `maxResponseBytes`. */
  readonly request: (
    peerId: string,
    protocol: string,
    data: Uint8Array,
    options: { readonly timeoutMs: number; readonly maxResponseBytes: number }
  ) => Promise<Uint8Array>
  /**
   * One request, its answer's messages as they arrive, decoded; the caller says which message is the
   * last (`isLast`), and leaving the loop early aborts the stream. Fails if no message comes for
   * `timeoutMs` or one is larger than `maxMessageBytes`.
   */
  readonly requestStream: <A>(
    peerId: string,
    protocol: string,
    data: Uint8Array,
    options: {
      readonly timeoutMs: number
      readonly maxMessageBytes: number
      readonly decode: (message: Uint8Array) => A
      readonly isLast: (message: A) => boolean
    }
  ) => AsyncIterable<A>
  readonly stop: () => Promise<void>
}

const verdictOf: Readonly<Record<Verdict, TopicValidatorResult>> = {
  accept: TopicValidatorResult.Accept,
  ignore: TopicValidatorResult.Ignore,
  reject: TopicValidatorResult.Reject
}

/** yamux's initial receive window per stream: one feed page (2,000 events, about 1.5 MB) and room to spare. */
const STREAM_WINDOW_BYTES = 4 * 1024 * 1024

export const startHost = async (options: HostOptions): Promise<Host> => {
  const privateKey = privateKeyFromRaw(Uint8Array.from([...options.seed, ...options.publicKey]))
  const topics = [...options.topics.map((spec) => spec.topic), DISCOVERY_TOPIC]
  const node = await createLibp2p({
    privateKey,
    addresses: { listen: [...options.listen] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    // Each request/response runs on a fresh stream. At yamux's initial window (256 KiB) a feed page
    // of 1.5 MB waits for five window updates, each sent only when the busy receiver's event loop
    // gets to it: most of a page's transfer time was spent there. A window that holds a whole page
    // at once lets the source send it in one go (the window still bounds what one stream buffers).
    streamMuxers: [yamux({ streamOptions: { initialStreamWindowSize: STREAM_WINDOW_BYTES } })],
    peerDiscovery: [
      ...(options.bootstrap.length === 0 ? [] : [bootstrap({ list: [...options.bootstrap], timeout: 100 })]),
      pubsubPeerDiscovery({ interval: options.discoveryIntervalMs ?? 2_000 })
    ],
    services: {
      identify: identify(),
      ping: ping(),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        allowedTopics: topics,
        maxInboundDataLength: 1024 * 1024,
        scoreThresholds,
        scoreParams: {
          topics: Object.fromEntries(options.topics.map((spec) => [spec.topic, topicScore])),
          // One IP may hold many peers on loopback and in tests; a colocation penalty would punish them all.
          IPColocationFactorWeight: 0
        }
      })
    }
  })
  const pubsub = node.services.pubsub as GossipSub
  const target = options.targetPeers ?? 16

  for (const spec of options.topics) {
    pubsub.topicValidators.set(spec.topic, (_peer, message) => {
      try {
        return verdictOf[spec.validate(message.data)]
      } catch {
        return TopicValidatorResult.Reject
      }
    })
    pubsub.subscribe(spec.topic)
  }
  const byTopic = new Map(options.topics.map((spec) => [spec.topic, spec]))
  pubsub.addEventListener("message", (event) => {
    const message = event.detail
    const spec = byTopic.get(message.topic)
    if (spec === undefined) return
    const from = message.type === "signed" ? message.from.toString() : "unknown"
    spec.onMessage(message.data, from)
  })

  // libp2p only records what discovery finds; dialling is ours, up to the target number of peers.
  node.addEventListener("peer:discovery", (event) => {
    const peer = event.detail.id
    if (peer.equals(node.peerId) || node.getConnections(peer).length > 0) return
    if (node.getPeers().length >= target) return
    node.dial(peer).catch(() => undefined)
  })

  for (const spec of options.protocols) {
    await node.handle(spec.protocol, async (stream, connection) => {
      const framed = lpStream(stream, { maxDataLength: spec.maxRequestBytes })
      try {
        const request = await framed.read({ signal: AbortSignal.timeout(30_000) })
        const response = await spec.handle(request.subarray(), connection.remotePeer.toString())
        await framed.write(response)
        await stream.close()
      } catch (error) {
        stream.abort(error instanceof Error ? error : new Error(String(error)))
      }
    }, { maxInboundStreams: 64 })
  }

  for (const spec of options.streamProtocols ?? []) {
    await node.handle(spec.protocol, async (stream, connection) => {
      const framed = lpStream(stream, { maxDataLength: spec.maxRequestBytes })
      try {
        const request = await framed.read({ signal: AbortSignal.timeout(30_000) })
        for await (const message of spec.serve(request.subarray(), connection.remotePeer.toString())) {
          // Resolves once the message is in the stream's window: a slow reader holds the server here.
          await framed.write(message)
        }
        await stream.close()
      } catch (error) {
        stream.abort(error instanceof Error ? error : new Error(String(error)))
      }
    }, { maxInboundStreams: 64 })
  }

  const peerOf = (peerId: string): PeerId => peerIdFromString(peerId)

  return {
    peerId: node.peerId.toString(),
    addresses: () => node.getMultiaddrs().map((address) => address.toString()),
    connected: () =>
      node.getConnections().map((connection) => ({
        peerId: connection.remotePeer.toString(),
        addresses: [connection.remoteAddr.toString()],
        direction: connection.direction,
        latencyMs: connection.rtt ?? null
      })),
    dial: async (address) => {
      const connection = await node.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) })
      return connection.remotePeer.toString()
    },
    hangUp: async (peerId) => {
      await node.hangUp(peerOf(peerId))
    },
    publish: async (topic, data) => (await pubsub.publish(topic, data)).recipients.length,
    topicPeers: (topic) => pubsub.getSubscribers(topic).length,
    request: async (peerId, protocol, data, { maxResponseBytes, timeoutMs }) => {
      const signal = AbortSignal.timeout(timeoutMs)
      const stream = await node.dialProtocol(peerOf(peerId), protocol, { signal })
      const framed = lpStream(stream, { maxDataLength: maxResponseBytes })
      try {
        await framed.write(data, { signal })
        const response = await framed.read({ signal })
        await stream.close({ signal }).catch(() => undefined)
        return response.subarray()
      } catch (error) {
        stream.abort(error instanceof Error ? error : new Error(String(error)))
        throw error
      }
    },
    requestStream: async function*<A>(
      peerId: string,
      protocol: string,
      data: Uint8Array,
      { decode, isLast, maxMessageBytes, timeoutMs }: {
        readonly timeoutMs: number
        readonly maxMessageBytes: number
        readonly decode: (message: Uint8Array) => A
        readonly isLast: (message: A) => boolean
      }
    ): AsyncGenerator<A> {
      const stream = await node.dialProtocol(peerOf(peerId), protocol, { signal: AbortSignal.timeout(timeoutMs) })
      const framed = lpStream(stream, { maxDataLength: maxMessageBytes })
      let finished = false
      try {
        await framed.write(data, { signal: AbortSignal.timeout(timeoutMs) })
        while (!finished) {
          const message = decode((await framed.read({ signal: AbortSignal.timeout(timeoutMs) })).subarray())
          finished = isLast(message)
          yield message
        }
      } finally {
        // Whether the caller read on past the last message or stopped there, the stream is closed (a
        // stream left open counts against the server's inbound streams); one left early is aborted,
        // and the server stops sending.
        if (finished) await stream.close({ signal: AbortSignal.timeout(timeoutMs) }).catch(() => undefined)
        else stream.abort(new Error("the reader stopped"))
      }
    },
    stop: async () => {
      await node.stop()
    }
  }
}
