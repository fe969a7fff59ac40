/**
 * The simulated internet under the peers: who is online, who is connected to whom, what each link's
 * latency is, and what every byte sent costs (counted per peer, per kind, inside the measured window).
 */
import type { EventQueue } from "./EventQueue.js"
import type { SimulationConfig } from "./Model.js"
import type { Random } from "./Random.js"
import { pairLatency } from "./Random.js"

export type Channel = "gossip" | "pull"

export interface Network {
  readonly config: SimulationConfig
  readonly queue: EventQueue
  readonly random: Random
  readonly size: number
  readonly online: Uint8Array
  readonly liar: Uint8Array
  /** When each peer last came online: a peer counts for a head only if it was online from its publication. */
  readonly joinedAt: Float64Array
  /** Each peer's open connections (both directions: a connection is one entry at each end). */
  readonly neighbors: ReadonlyArray<Array<number>>
  /** The latency of each of those connections, index for index (drawn once, when it opens). */
  readonly linkLatencies: ReadonlyArray<Array<number>>
  readonly latency: (a: number, b: number) => number
  readonly connected: (a: number, b: number) => boolean
  /** Puts `bytes` on the sender's link after `delayMs` of work there, and returns when they arrive. */
  readonly transmit: (from: number, to: number, bytes: number, channel: Channel, delayMs?: number) => number
  /** At `at`, counts the bytes received and runs `arrive`, if the receiver is still online. */
  readonly deliver: (at: number, to: number, bytes: number, channel: Channel, arrive: () => void) => void
  /** transmit, then deliver. */
  readonly send: (
    from: number,
    to: number,
    bytes: number,
    channel: Channel,
    arrive: () => void,
    delayMs?: number
  ) => void
  /**
   * Counts what a send costs both ends without scheduling its arrival: for a copy the receiver is
   * already known to discard (a duplicate), which is most of gossipsub's traffic.
   */
  readonly discard: (to: number, bytes: number, channel: Channel) => void
  readonly connect: (a: number, b: number) => void
  readonly disconnectAll: (peer: number) => void
  /** A uniformly random online peer other than `except` (-1 when there is none). */
  readonly randomOnline: (except: number) => number
  readonly setOnline: (peer: number, online: boolean) => void
  readonly bytes: Readonly<Record<"gossipSent" | "gossipReceived" | "pullSent" | "pullReceived", Float64Array>>
  /** Milliseconds each peer was online inside the measured window (complete once the run has ended). */
  readonly onlineMs: () => Float64Array
  readonly inWindow: () => boolean
}

export const makeNetwork = (
  config: SimulationConfig,
  queue: EventQueue,
  random: Random,
  liars: ReadonlySet<number>
): Network => {
  const size = config.peers
  const online = new Uint8Array(size).fill(1)
  const liar = new Uint8Array(size)
  for (const peer of liars) liar[peer] = 1
  const joinedAt = new Float64Array(size)
  const neighbors: Array<Array<number>> = Array.from({ length: size }, () => [])
  const linkLatencies: Array<Array<number>> = Array.from({ length: size }, () => [])
  const uplinkFreeAt = new Float64Array(size)
  const windowStart = config.warmupMs
  const windowEnd = config.warmupMs + config.durationMs
  const inWindow = () => queue.now() >= windowStart && queue.now() < windowEnd
  const bytes = {
    gossipSent: new Float64Array(size),
    gossipReceived: new Float64Array(size),
    pullSent: new Float64Array(size),
    pullReceived: new Float64Array(size)
  }
  const onlineTotal = new Float64Array(size)
  const onlineSince = new Float64Array(size).fill(0)

  // Online peers in an array with each one's index, for a uniform pick and an O(1) removal.
  const onlineList: Array<number> = Array.from({ length: size }, (_, peer) => peer)
  const onlineIndex = Int32Array.from({ length: size }, (_, peer) => peer)

  const pairOf = (a: number, b: number) => pairLatency(config.seed, a, b, config.latencyMedianMs, config.latencySigma)
  const latency = (a: number, b: number) => {
    const index = neighbors[a]!.indexOf(b)
    return index < 0 ? pairOf(a, b) : linkLatencies[a]![index]!
  }
  const connected = (a: number, b: number) => neighbors[a]!.includes(b)

  const transmit = (from: number, to: number, count: number, channel: Channel, delayMs = 0) => {
    const now = queue.now()
    let departs = now + delayMs
    if (config.uplinkBytesPerSecond !== null) {
      departs = Math.max(departs, uplinkFreeAt[from]!) + (count * 1_000) / config.uplinkBytesPerSecond
      uplinkFreeAt[from] = departs
    }
    if (inWindow()) (channel === "gossip" ? bytes.gossipSent : bytes.pullSent)[from]! += count
    return departs + latency(from, to)
  }

  const discard = (to: number, count: number, channel: Channel) => {
    if (online[to] === 1 && inWindow()) (channel === "gossip" ? bytes.gossipReceived : bytes.pullReceived)[to]! += count
  }

  const deliver = (at: number, to: number, count: number, channel: Channel, arrive: () => void) =>
    queue.schedule(at, () => {
      if (online[to] === 0) return
      if (inWindow()) (channel === "gossip" ? bytes.gossipReceived : bytes.pullReceived)[to]! += count
      arrive()
    })

  const send = (from: number, to: number, count: number, channel: Channel, arrive: () => void, delayMs = 0) =>
    deliver(transmit(from, to, count, channel, delayMs), to, count, channel, arrive)

  const clipped = (from: number, to: number) => Math.max(0, Math.min(to, windowEnd) - Math.max(from, windowStart))

  return {
    config,
    queue,
    random,
    size,
    online,
    liar,
    joinedAt,
    neighbors,
    linkLatencies,
    latency,
    connected,
    transmit,
    deliver,
    send,
    discard,
    connect: (a, b) => {
      if (a === b || online[a] === 0 || online[b] === 0 || connected(a, b)) return
      const link = pairOf(a, b)
      neighbors[a]!.push(b)
      linkLatencies[a]!.push(link)
      neighbors[b]!.push(a)
      linkLatencies[b]!.push(link)
    },
    disconnectAll: (peer) => {
      for (const other of neighbors[peer]!) {
        const index = neighbors[other]!.indexOf(peer)
        neighbors[other]!.splice(index, 1)
        linkLatencies[other]!.splice(index, 1)
      }
      neighbors[peer]!.length = 0
      linkLatencies[peer]!.length = 0
    },
    randomOnline: (except) => {
      if (onlineList.length === 0 || (onlineList.length === 1 && onlineList[0] === except)) return -1
      while (true) {
        const peer = onlineList[random.below(onlineList.length)]!
        if (peer !== except) return peer
      }
    },
    setOnline: (peer, up) => {
      if ((online[peer] === 1) === up) return
      const now = queue.now()
      online[peer] = up ? 1 : 0
      if (up) {
        joinedAt[peer] = now
        onlineSince[peer] = now
        onlineIndex[peer] = onlineList.length
        onlineList.push(peer)
      } else {
        onlineTotal[peer]! += clipped(onlineSince[peer]!, now)
        const index = onlineIndex[peer]!
        const last = onlineList.pop()!
        if (last !== peer) {
          onlineList[index] = last
          onlineIndex[last] = index
        }
      }
    },
    bytes,
    onlineMs: () => {
      const now = queue.now()
      return onlineTotal.map((total, peer) => total + (online[peer] === 1 ? clipped(onlineSince[peer]!, now) : 0))
    },
    inWindow
  }
}
