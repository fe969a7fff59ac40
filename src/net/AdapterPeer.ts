/**
 * The adapter swarm (net/AdapterSwarm.ts) on a running node's libp2p peer: announcements on
 * `edge-net/<network>/adapters/1`, reports on `edge-net/<network>/adapter-reports/1`, chunks over
 * `/edge-net/adapter/1.0.0`. The node announces what it holds every `announceIntervalMs` and as soon
 * as that changes (a share or a pull), under the sharing gates of its registry.
 */
import { Config, Effect, Runtime, Schedule } from "effect"
import { base58btc } from "multiformats/bases/base58"
import { AdapterSharingGate } from "../actors/registry/AdapterSharing.js"
import { NodeKey } from "../content/NodeKey.js"
import { registryHoldings } from "./AdapterHoldings.js"
import { announceVerdict, makeAdapterSwarm, reportVerdict } from "./AdapterSwarm.js"
import * as Wire from "./AdapterWire.js"
import type { Host, ProtocolSpec, TopicSpec } from "./Libp2pHost.js"
import type { AdapterPeersService } from "./Peers.js"
import { PeersError } from "./Peers.js"

/**
 * FAULT INJECTION, for tests only, off by default: this many of the first chunks the node serves are
 * corrupted (one byte flipped under the true chunk hash), so a test can watch a puller refuse them.
 */
const FAULT_CORRUPT_CHUNKS = "EDGE_NET_FAULT_INJECTION_CORRUPT_ADAPTER_CHUNKS"
const settings = Config.all({
  faultCorruptServedChunks: Config.integer(FAULT_CORRUPT_CHUNKS).pipe(Config.withDefault(0)),
  announceIntervalMs: Config.integer("EDGE_NET_ADAPTER_ANNOUNCE_MS").pipe(Config.withDefault(20_000))
})

const ED25519_PEER_ID_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]
const peerIdOfKey = (publicKeyHex: string) =>
  base58btc.baseEncode(Uint8Array.from([...ED25519_PEER_ID_PREFIX, ...Buffer.from(publicKeyHex, "hex")]))

const REQUEST_TIMEOUT_MS = 30_000
/** Standing reports are published again every this many announcement rounds, for nodes that came late. */
const REPUBLISH_EVERY = 5

/** Builds the swarm; `host` is read when used, since the host starts with the topics and protocols made here. */
export const makeAdapterPeer = (network: string, host: () => Host | undefined) =>
  Effect.gen(function*() {
    const key = yield* NodeKey
    const options = yield* Effect.orDie(settings)
    const gate = yield* Effect.serviceOption(AdapterSharingGate)
    const holdings = yield* registryHoldings
    const runtime = yield* Effect.runtime<never>()
    const announceTopic = Wire.announceTopic(network)
    const reportTopic = Wire.reportTopic(network)
    const ttl = Math.max(120_000, 6 * options.announceIntervalMs)

    const started = () => {
      const running = host()
      if (running === undefined) throw new Error("the node's peer is not started")
      return running
    }
    const publish = (topic: string) => (bytes: Uint8Array) =>
      Effect.promise(() => started().publish(topic, bytes).catch(() => 0)).pipe(Effect.asVoid)

    const swarm = yield* makeAdapterSwarm(holdings, {
      peerId: peerIdOfKey(key.publicKey),
      publishAnnounce: publish(announceTopic),
      publishReport: publish(reportTopic),
      request: (peerId, bytes) =>
        Effect.tryPromise({
          try: () =>
            started().request(peerId, Wire.ADAPTER_PROTOCOL, bytes, {
              timeoutMs: REQUEST_TIMEOUT_MS,
              maxResponseBytes: Wire.MAX_CHUNK_RESPONSE_BYTES
            }),
          catch: (error) => `cannot fetch: ${error instanceof Error ? error.message : String(error)}`
        })
    }, {
      seed: key.seed,
      gate: gate._tag === "Some" ? gate.value : undefined,
      announceTtlMs: ttl,
      faultCorruptServedChunks: options.faultCorruptServedChunks
    })

    const run = <A>(effect: Effect.Effect<A>) => Runtime.runPromise(runtime)(effect)
    // Gossip handlers return nothing: a defect is logged, never an unhandled rejection.
    const handleInBackground = (effect: Effect.Effect<void>) =>
      Runtime.runFork(runtime)(
        effect.pipe(Effect.catchAllCause((cause) => Effect.logWarning("adapter gossip message failed", cause)))
      )
    const topics: ReadonlyArray<TopicSpec> = [
      {
        topic: announceTopic,
        validate: (data) => announceVerdict(data, Date.now(), ttl),
        onMessage: (data, from) => void handleInBackground(swarm.onAnnounce(data, from))
      },
      {
        topic: reportTopic,
        validate: (data) => reportVerdict(data, Date.now()),
        onMessage: (data) => void handleInBackground(swarm.onReport(data))
      }
    ]
    const protocols: ReadonlyArray<ProtocolSpec> = [
      {
        protocol: Wire.ADAPTER_PROTOCOL,
        maxRequestBytes: Wire.MAX_REQUEST_BYTES,
        handle: (data) => run(swarm.serve(data))
      }
    ]

    /** Announces on a timer, and at once when what the node holds changes. Forked in the node's scope. */
    const announcing = Effect.gen(function*() {
      let last = ""
      let sinceAnnounce = 0
      let rounds = 0
      yield* Effect.repeat(
        Effect.gen(function*() {
          const held = (yield* holdings.held).map((manifest) => `${manifest.id}@${manifest.version}`).sort().join(",")
          sinceAnnounce += 1_000
          if (held === last && sinceAnnounce < options.announceIntervalMs) return
          last = held
          sinceAnnounce = 0
          yield* swarm.announceHeld
          if (++rounds % REPUBLISH_EVERY === 0) yield* swarm.republishReports
        }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("adapter announcement failed", cause))),
        Schedule.spaced("1 second")
      )
    })

    const failure = (message: string) => new PeersError({ message })
    const service: AdapterPeersService = {
      view: swarm.view,
      pull: (id, version) => Effect.mapError(swarm.pull(id, version), failure),
      report: (reportHex) =>
        Effect.mapError(
          /^([0-9a-f]{2})*$/.test(reportHex)
            ? swarm.report(Uint8Array.from(Buffer.from(reportHex, "hex")))
            : Effect.fail("the report is not hex"),
          failure
        )
    }
    return { topics, protocols, announcing, service } as const
  })
