/**
 * A deterministic run of a whole network: peers connected at random as our host connects them, the
 * gossip and follow logic of every peer (Gossip.ts, Follow.ts) on a simulated network with latency,
 * churn and lying peers, and what it cost: how fast heads spread, against the shortest-path bound on the
 * same graph, and the bytes each peer sent and received, against naive flooding of the same heads.
 *
 * No wall clock and no sockets: one seeded random stream and one queue of timed events, so the same
 * settings give the same figures.
 */
import { makeEventQueue } from "./EventQueue.js"
import { makeFeeds } from "./Follow.js"
import type { Feeds } from "./Follow.js"
import type { Message } from "./Gossip.js"
import { makeGossip } from "./Gossip.js"
import { quantile, reachTimes, shortestPaths, spreadOf } from "./Measure.js"
import type { GossipParams, Rate, SimulationConfig, SimulationResult } from "./Model.js"
import { gossipDefaults, simulationDefaults } from "./Model.js"
import { makeNetwork } from "./Network.js"
import { makeRandom } from "./Random.js"

export type SimulationSettings = Partial<Omit<SimulationConfig, "gossip">> & {
  readonly gossip?: Partial<GossipParams>
}

/** A dial's handshakes (TCP, Noise, Yamux) before a connection carries anything: two round trips. */
const HANDSHAKE_TRIPS = 4

interface HeadTiming {
  readonly half: number
  readonly p99: number
  readonly all: number
  readonly boundHalf: number
  readonly bound99: number
  readonly boundAll: number
}

export const simulate = (settings: SimulationSettings = {}): SimulationResult => {
  const config: SimulationConfig = {
    ...simulationDefaults,
    ...settings,
    gossip: { ...gossipDefaults, ...settings.gossip }
  }
  const random = makeRandom(config.seed)
  const queue = makeEventQueue()
  const order = random.shuffle(Array.from({ length: config.peers }, (_, peer) => peer))
  const liarCount = Math.floor(config.liarFraction * config.peers)
  const liars = new Set(order.slice(0, liarCount))
  const writerPeers = order.slice(liarCount, liarCount + config.writers)
  const network = makeNetwork(config, queue, random, liars)
  const { online, liar, neighbors } = network
  const windowStart = config.warmupMs
  const windowEnd = config.warmupMs + config.durationMs
  const end = windowEnd + config.horizonMs

  // --- the graph: every peer dials random peers until it has targetPeers connections ---------------
  const discovery = config.topology === "random"
  if (config.topology === "line") { for (let peer = 1; peer < config.peers; peer++) network.connect(peer - 1, peer) }
  if (config.topology === "star") { for (let peer = 1; peer < config.peers; peer++) network.connect(0, peer) }
  for (const peer of random.shuffle(Array.from({ length: config.peers }, (_, p) => p))) {
    for (
      let attempt = 0;
      discovery && neighbors[peer]!.length < config.targetPeers && attempt < 4 * config.targetPeers;
      attempt++
    ) {
      network.connect(peer, network.randomOnline(peer))
    }
  }
  const dial = (peer: number) => {
    const other = discovery ? network.randomOnline(peer) : -1
    if (other < 0) return
    queue.schedule(queue.now() + HANDSHAKE_TRIPS * network.latency(peer, other), () => network.connect(peer, other))
  }

  // --- measuring heads -------------------------------------------------------------------------------
  const timings: Array<HeadTiming> = []
  const floodSent = new Float64Array(config.peers)
  let headsInWindow = 0
  const onPublished = (message: Message) => {
    const now = queue.now()
    if (now < windowStart || now >= windowEnd) return
    // Naive flooding: every online honest peer sends each new head to all its peers but the one it came from.
    for (let peer = 0; peer < config.peers; peer++) {
      if (online[peer] === 1 && liar[peer] === 0 && neighbors[peer]!.length > 0) {
        floodSent[peer]! += message.wireBytes * (neighbors[peer]!.length - (peer === message.publisher ? 0 : 1))
      }
    }
    if (headsInWindow++ % config.measureEvery !== 0) return
    const bound = shortestPaths(network, message.publisher)
    queue.schedule(now + config.horizonMs, () => {
      const targets: Array<number> = []
      for (let peer = 0; peer < config.peers; peer++) {
        // Peers online throughout, settled (joined two heartbeats before: a joiner has no mesh before its
        // first heartbeat, and gets what was published then only by chance of gossip, or at the next
        // forced announcement), and reachable through honest peers when the head was published.
        if (
          peer !== message.publisher && online[peer] === 1 && liar[peer] === 0 &&
          network.joinedAt[peer]! <= now - 2 * config.gossip.heartbeatMs &&
          Number.isFinite(bound[peer]!)
        ) {
          targets.push(peer)
        }
      }
      if (targets.length === 0) return
      const reached = reachTimes(message.deliveredAt!, now, targets)
      const best = Float64Array.from(targets, (peer) => bound[peer]!).sort()
      timings.push({
        half: quantile(reached, 0.5),
        p99: quantile(reached, 0.99),
        all: quantile(reached, 1),
        boundHalf: quantile(best, 0.5),
        bound99: quantile(best, 0.99),
        boundAll: quantile(best, 1)
      })
    })
  }

  let forgedDelivered = 0
  const feedsRef: { feeds: Feeds | undefined } = { feeds: undefined }
  const gossip = makeGossip(network, (peer, message) => {
    if (message.kind !== "head") forgedDelivered++
    feedsRef.feeds?.onHead(peer, message)
  }, onPublished)
  const feeds = makeFeeds(network, gossip, writerPeers)
  feedsRef.feeds = feeds

  // --- every peer's heartbeat, with discovery: one dial per heartbeat while below target -----------
  const heartbeat = (peer: number) => {
    if (online[peer] === 1) {
      gossip.heartbeat(peer)
      if (neighbors[peer]!.length < config.targetPeers) dial(peer)
    }
    queue.schedule(queue.now() + config.gossip.heartbeatMs, () => heartbeat(peer))
  }
  for (let peer = 0; peer < config.peers; peer++) {
    queue.schedule(random.next() * config.gossip.heartbeatMs, () => heartbeat(peer))
  }

  // --- lying peers forge heads once the meshes have formed ---------------------------------------
  const forge = (peer: number) => {
    if (online[peer] === 1 && queue.now() < windowEnd) {
      const writer = writerPeers[random.below(writerPeers.length)] ?? -1
      gossip.publish(peer, "forged", writer, Number.MAX_SAFE_INTEGER)
    }
    queue.schedule(queue.now() + config.forgeIntervalMs, () => forge(peer))
  }
  for (const peer of liars) queue.schedule(windowStart + random.next() * config.forgeIntervalMs, () => forge(peer))

  // --- churn: peers (not the writers) leave, and come back later through a few bootstrap peers -------
  const writerSet = new Set(writerPeers)
  const leaveRatePerMs = (config.churnPerMinute * config.peers) / 60_000
  const leave = () => {
    const peer = network.randomOnline(-1)
    if (peer >= 0 && !writerSet.has(peer)) {
      network.setOnline(peer, false)
      gossip.leave(peer)
      network.disconnectAll(peer)
      gossip.reset(peer)
      queue.schedule(queue.now() + random.exponential(config.meanOfflineMs), () => {
        network.setOnline(peer, true)
        for (let i = 0; i < config.bootstrapPeers; i++) dial(peer)
      })
    }
    queue.schedule(queue.now() + random.exponential(1 / leaveRatePerMs), leave)
  }
  if (leaveRatePerMs > 0) queue.schedule(random.exponential(1 / leaveRatePerMs), leave)

  feeds.start()
  queue.runUntil(windowStart)
  let degreeSum = 0
  let onlineCount = 0
  for (let peer = 0; peer < config.peers; peer++) {
    if (online[peer] === 1) {
      degreeSum += neighbors[peer]!.length
      onlineCount++
    }
  }
  queue.runUntil(end)

  // --- the figures ---------------------------------------------------------------------------------
  const onlineMs = network.onlineMs()
  // Rates are per peer online for at least half the window: a peer that came back for a moment has a
  // rate made of a few bursts.
  const honest = Array.from({ length: config.peers }, (_, peer) => peer).filter((peer) =>
    liar[peer] === 0 && onlineMs[peer]! >= config.durationMs / 2
  )
  const rate = (bytes: Float64Array): Rate => {
    let sum = 0
    let max = 0
    for (const peer of honest) {
      const perSecond = bytes[peer]! / (onlineMs[peer]! / 1_000)
      sum += perSecond
      max = Math.max(max, perSecond)
    }
    return { mean: honest.length === 0 ? 0 : sum / honest.length, max }
  }
  const spreadBy = (pick: (timing: HeadTiming) => number) => spreadOf(timings.map(pick))
  let graylisted = 0
  for (const peer of liars) {
    if (neighbors[peer]!.some((other) => liar[other] === 0 && gossip.score(other, peer) < -1_000)) graylisted++
  }
  const caughtUp = feeds.caughtUp()

  return {
    config,
    writerPeers,
    honestPeers: config.peers - liarCount,
    meanDegree: onlineCount === 0 ? 0 : degreeSum / onlineCount,
    headsMeasured: timings.length,
    toHalf: spreadBy((t) => t.half),
    to99: spreadBy((t) => t.p99),
    toAll: spreadBy((t) => t.all),
    boundHalf: spreadBy((t) => t.boundHalf),
    bound99: spreadBy((t) => t.bound99),
    boundAll: spreadBy((t) => t.boundAll),
    coverage: timings.length === 0 ? 0 : timings.filter((t) => Number.isFinite(t.all)).length / timings.length,
    gossipSent: rate(network.bytes.gossipSent),
    gossipReceived: rate(network.bytes.gossipReceived),
    pullSent: rate(network.bytes.pullSent),
    pullReceived: rate(network.bytes.pullReceived),
    floodSent: rate(floodSent),
    delivered: gossip.counters.delivered,
    duplicates: gossip.counters.duplicates,
    forgedRejected: gossip.counters.forgedRejected,
    forgedDelivered,
    forgedForwarded: gossip.counters.forgedForwarded,
    liarsGraylisted: graylisted,
    liars: liarCount,
    followLag: spreadOf(feeds.lags),
    followsCaughtUp: caughtUp.total === 0 ? 1 : caughtUp.done / caughtUp.total,
    refusedPulls: feeds.refusedPulls(),
    eventsProcessed: queue.processed()
  }
}
