/**
 * What a simulated network is made of and what a run reports: the settings (with the defaults our host
 * and @libp2p/gossipsub run with), the bytes each thing costs on the wire, and the figures measured.
 */
import { encodeJson } from "../FeedWire.js"

/** Gossipsub's mesh and gossip parameters, as @libp2p/gossipsub ships them (our host keeps the defaults). */
export interface GossipParams {
  readonly D: number
  readonly Dlo: number
  readonly Dhi: number
  /** Peers kept by score when an oversubscribed mesh is pruned. */
  readonly Dscore: number
  readonly Dlazy: number
  /** Gossip goes to max(Dlazy, gossipFactor x non-mesh peers). */
  readonly gossipFactor: number
  readonly heartbeatMs: number
  /** Heartbeats a message stays in the cache (answerable by IWANT). */
  readonly mcacheLength: number
  /** Heartbeats of the cache advertised in IHAVE. */
  readonly mcacheGossip: number
  /** An IWANT not answered within this time is a broken promise (behaviour penalty). */
  readonly iwantFollowupMs: number
  /** A node's own message goes to every peer above the publish threshold, not only its mesh. */
  readonly floodPublish: boolean
  /** The default peer score parameters of gossipsub that our host does not override. */
  readonly topicScoreCap: number
  readonly behaviourPenaltyWeight: number
  readonly behaviourPenaltyDecay: number
  readonly decayToZero: number
}

export const gossipDefaults: GossipParams = {
  D: 6,
  Dlo: 4,
  Dhi: 12,
  Dscore: 4,
  Dlazy: 6,
  gossipFactor: 0.25,
  heartbeatMs: 1_000,
  mcacheLength: 5,
  mcacheGossip: 3,
  iwantFollowupMs: 3_000,
  floodPublish: true,
  topicScoreCap: 10,
  behaviourPenaltyWeight: -10,
  behaviourPenaltyDecay: 0.2,
  decayToZero: 0.1
}

export interface SimulationConfig {
  readonly seed: number
  readonly peers: number
  /**
   * How peers connect: at random as our host does (each dials until it has targetPeers, and keeps
   * dialling discovered peers when below), or a fixed line or star (peer 0 the hub) with no discovery.
   */
  readonly topology: "random" | "line" | "star"
  /** Connections a peer dials up to (our host's target, 16). */
  readonly targetPeers: number
  /** Peers a joiner dials first; the rest it finds through discovery, one dial per heartbeat. */
  readonly bootstrapPeers: number
  /** One-way link latency: lognormal around this median... */
  readonly latencyMedianMs: number
  /** ...with this sigma of the underlying normal (0 gives every link the median). */
  readonly latencySigma: number
  /** Each peer's upload rate in bytes/s; null for links that never queue. */
  readonly uplinkBytesPerSecond: number | null
  /** Time to check a head's Ed25519 signature before it is delivered or forwarded. */
  readonly validationMs: number
  /** Peers whose journals move: they commit batches and announce their heads. */
  readonly writers: number
  /** Mean gap between a writer's batches (exponential). */
  readonly commitIntervalMs: number
  readonly eventsPerBatch: number
  /** Feeds (among the writers) each peer follows. */
  readonly followsPerPeer: number
  /** Where a follower pulls a delta: from the source only (today's code), or first from a neighbour that holds it. */
  readonly pullFrom: "source" | "holders"
  /** A followed feed is polled this often when no announcement came. */
  readonly pollIntervalMs: number
  /** The announce loop's tick: a moved head goes out at the next one. */
  readonly announceTickMs: number
  /** Every this often a head is announced even when it has not moved. */
  readonly forcedAnnounceMs: number
  /** Who re-announces every forcedAnnounceMs: the writers only, or every peer (each has a genesis head). */
  readonly announcers: "writers" | "all"
  /** Fraction of peers that lie: forge heads, never forward, advertise what they will not serve. */
  readonly liarFraction: number
  /** How often each lying peer publishes a forged head. */
  readonly forgeIntervalMs: number
  /** Fraction of the (non-writer) peers that leave per minute; each comes back after a mean offline time. */
  readonly churnPerMinute: number
  readonly meanOfflineMs: number
  /** Time for meshes to form before anything is measured. */
  readonly warmupMs: number
  /** Heads published in this window (after the warm-up) are measured, and bytes are counted over it. */
  readonly durationMs: number
  /** How long after its publication a head is followed; a peer it has not reached by then counts as missed. */
  readonly horizonMs: number
  /** Every this many-th head published in the window is timed against the bound (all of them by default). */
  readonly measureEvery: number
  readonly gossip: GossipParams
}

export const simulationDefaults: SimulationConfig = {
  seed: 1,
  peers: 1_000,
  topology: "random",
  targetPeers: 16,
  bootstrapPeers: 3,
  latencyMedianMs: 50,
  latencySigma: 0.5,
  uplinkBytesPerSecond: null,
  validationMs: 0.1,
  writers: 10,
  commitIntervalMs: 2_000,
  eventsPerBatch: 4,
  followsPerPeer: 2,
  pullFrom: "source",
  pollIntervalMs: 5_000,
  // As PeerNode: a moved head goes out at the next 50 ms look, an unmoved one once a minute (PeerNode
  // also re-announces within 5 s of a peer connecting, which joiners here make up for by polling).
  announceTickMs: 50,
  forcedAnnounceMs: 60_000,
  announcers: "writers",
  liarFraction: 0,
  forgeIntervalMs: 1_000,
  churnPerMinute: 0,
  meanOfflineMs: 30_000,
  warmupMs: 10_000,
  durationMs: 30_000,
  horizonMs: 10_000,
  measureEvery: 1,
  gossip: gossipDefaults
}

// --- bytes on the wire ---------------------------------------------------------------------------

/** A head announcement as PeerNode publishes it: the JSON of a signed head (a 7-digit position). */
export const HEAD_BYTES = encodeJson({
  position: 1_234_567,
  hash: "ab".repeat(32),
  publicKey: "cd".repeat(32),
  signature: "ef".repeat(64)
}).length
/** One stored event as a feed answer carries it (JSON of a StoredRecord with a small signed payload). */
export const EVENT_BYTES = 400
/** An Ed25519 peer id (identity multihash) and gossipsub's default message id (from + seqno). */
const PEER_ID_BYTES = 38
export const MESSAGE_ID_BYTES = PEER_ID_BYTES + 8
/** `edge-net/<network>/heads/1` for a short network name. */
const TOPIC_BYTES = 22
/** Noise (length and MAC) and Yamux framing around every frame sent on a connection. */
const FRAME_BYTES = 2 + 16 + 12
/** Protobuf tags and lengths of an RPC and one field, and the RPC's length prefix. */
const RPC_BYTES = 6

/** A published message in an RPC: from, seqno, topic, data and StrictSign signature, framed. */
export const messageBytes = (dataBytes: number) =>
  FRAME_BYTES + RPC_BYTES + (PEER_ID_BYTES + 2) + (8 + 2) + (TOPIC_BYTES + 2) + (dataBytes + 3) + (64 + 2)
export const ihaveBytes = (ids: number) => FRAME_BYTES + RPC_BYTES + (TOPIC_BYTES + 2) + ids * (MESSAGE_ID_BYTES + 2)
export const iwantBytes = (ids: number) => FRAME_BYTES + RPC_BYTES + ids * (MESSAGE_ID_BYTES + 2)
export const graftBytes = FRAME_BYTES + RPC_BYTES + TOPIC_BYTES + 2
export const pruneBytes = graftBytes + 4

/** A feed request on a fresh stream: Yamux open, multistream-select both ways, `{from, limit}` JSON. */
const STREAM_OPEN_BYTES = FRAME_BYTES + 2 * (20 + 22)
export const feedRequestBytes = STREAM_OPEN_BYTES + encodeJson({ from: 1_234_567, limit: 1_000 }).length + 1
/** A feed answer: the source's newest head, the events asked for and one head per batch among them. */
export const feedResponseBytes = (events: number, heads: number) =>
  FRAME_BYTES * (1 + Math.floor(events * EVENT_BYTES / 65_536)) + 34 + HEAD_BYTES * (1 + heads) +
  events * (EVENT_BYTES + 1)

// --- what a run reports --------------------------------------------------------------------------

/** Percentiles over the heads measured of one figure (ms). */
export interface Spread {
  readonly p50: number
  readonly p99: number
  readonly max: number
}

/** Bytes per second per honest peer online for at least half the window, over the time it was online. */
export interface Rate {
  readonly mean: number
  readonly max: number
}

export interface SimulationResult {
  readonly config: SimulationConfig
  /** The peers whose heads moved (drawn from the seed). */
  readonly writerPeers: ReadonlyArray<number>
  readonly honestPeers: number
  /** Mean connections per online peer at the end of the warm-up. */
  readonly meanDegree: number
  /** Valid heads published in the window and measured. */
  readonly headsMeasured: number
  /**
   * Time for a head to reach 50%, 99% and 100% of the honest peers online from two heartbeats before
   * its publication to the end of its horizon, and reachable from its source through honest peers
   * when it was published.
   */
  readonly toHalf: Spread
  readonly to99: Spread
  readonly toAll: Spread
  /** The same three on the same graph at publication: shortest-path latency (Dijkstra), what flooding achieves. */
  readonly boundHalf: Spread
  readonly bound99: Spread
  readonly boundAll: Spread
  /** Heads that reached every honest peer online throughout their horizon, as a fraction. */
  readonly coverage: number
  /** Gossip bytes (heads topic: messages and control) per honest peer per second, sent and received. */
  readonly gossipSent: Rate
  readonly gossipReceived: Rate
  /** Feed requests and answers per honest peer per second, sent and received. */
  readonly pullSent: Rate
  readonly pullReceived: Rate
  /** Naive flooding of the same heads on the same graph: every peer sends each new one to all its peers. */
  readonly floodSent: Rate
  /** Valid heads handed to the application (after validation), summed over peers. */
  readonly delivered: number
  /** Copies of a message a peer had already seen. */
  readonly duplicates: number
  /** Forged heads received and rejected by validation, and forged heads handed to the application. */
  readonly forgedRejected: number
  readonly forgedDelivered: number
  /** Forged heads an honest peer passed on to another (validation comes first, so none should be). */
  readonly forgedForwarded: number
  /** Liars graylisted by at least one honest peer, out of the liars. */
  readonly liarsGraylisted: number
  readonly liars: number
  /** From a writer signing a head to a follower's copy holding it (ms), over every follow and head. */
  readonly followLag: Spread
  /** Follows whose copies ended at their source's head measured at the end of the run, as a fraction. */
  readonly followsCaughtUp: number
  /** Pulls refused by a lying holder (then asked of the next holder or the source). */
  readonly refusedPulls: number
  readonly eventsProcessed: number
}
