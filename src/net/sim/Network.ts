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
  readonly latency: (a: number, b: number) => number
  readonly connected: (a: number, b: number) => boolean
  /** Sends `bytes` from one peer to another; `arrive` runs on arrival if the receiver is still online. */
  readonly send: (from: number, to: number, bytes: number, channel: Channel, arrive: () => void) => void
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

  const latency = (a: number, b: number) => pairLatency(config.seed, a, b, config.latencyMedianMs, config.latencySigma)
  const connected = (a: number, b: number) => neighbors[a]!.includes(b)

  const send = (from: number, to: number, count: number, channel: Channel, arrive: () => void) => {
    const now = queue.now()
    let departs = now
    if (config.uplinkBytesPerSecond !== null) {
      departs = Math.max(now, uplinkFreeAt[from]!) + (count * 1_000) / config.uplinkBytesPerSecond
      uplinkFreeAt[from] = departs
    }
    if (inWindow()) (channel === "gossip" ? bytes.gossipSent : bytes.pullSent)[from]! += count
    queue.schedule(departs + latency(from, to), () => {
      if (online[to] === 0) return
      if (inWindow()) (channel === "gossip" ? bytes.gossipReceived : bytes.pullReceived)[to]! += count
      arrive()
    })
  }

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
    latency,
    connected,
    send,
    connect: (a, b) => {
      if (a === b || online[a] === 0 || online[b] === 0 || connected(a, b)) return
      neighbors[a]!.push(b)
      neighbors[b]!.push(a)
    },
    disconnectAll: (peer) => {
      for (const other of neighbors[peer]!) {
        const list = neighbors[other]!
        list.splice(list.indexOf(peer), 1)
      }
      neighbors[peer]!.length = 0
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
