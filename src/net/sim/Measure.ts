/**
 * The yardsticks a run is read against: percentiles, the shortest-path latency from a source to every
 * peer on the graph as it stands (Dijkstra: what flooding achieves, and no protocol can beat), and the
 * time a head took to reach a share of the peers that should have it.
 */
import type { Spread } from "./Model.js"
import type { Network } from "./Network.js"

/** The value at quantile `q` of sorted values (nearest rank); NaN for none. */
export const quantile = (sorted: ArrayLike<number>, q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!

export const spreadOf = (values: ReadonlyArray<number>): Spread => {
  const sorted = Float64Array.from(values).sort()
  return { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), max: quantile(sorted, 1) }
}

/**
 * Shortest one-way latency from `source` to every peer, through online honest peers only (a liar
 * forwards nothing), each hop paying its link latency and a signature check. Infinity where unreached.
 */
export const shortestPaths = (network: Network, source: number): Float64Array => {
  const { size, online, liar, neighbors, linkLatencies } = network
  const validationMs = network.config.validationMs
  const distance = new Float64Array(size).fill(Number.POSITIVE_INFINITY)
  const done = new Uint8Array(size)
  distance[source] = 0
  // A binary heap of (distance, peer) with lazy deletion.
  const heapDistance: Array<number> = [0]
  const heapPeer: Array<number> = [source]
  const push = (d: number, peer: number) => {
    let i = heapDistance.length
    heapDistance.push(d)
    heapPeer.push(peer)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heapDistance[parent]! <= d) break
      heapDistance[i] = heapDistance[parent]!
      heapPeer[i] = heapPeer[parent]!
      i = parent
    }
    heapDistance[i] = d
    heapPeer[i] = peer
  }
  const pop = (): number => {
    const top = heapPeer[0]!
    const lastDistance = heapDistance.pop()!
    const lastPeer = heapPeer.pop()!
    const count = heapDistance.length
    if (count > 0) {
      let i = 0
      while (true) {
        const left = 2 * i + 1
        if (left >= count) break
        const right = left + 1
        const child = right < count && heapDistance[right]! < heapDistance[left]! ? right : left
        if (heapDistance[child]! >= lastDistance) break
        heapDistance[i] = heapDistance[child]!
        heapPeer[i] = heapPeer[child]!
        i = child
      }
      heapDistance[i] = lastDistance
      heapPeer[i] = lastPeer
    }
    return top
  }
  while (heapPeer.length > 0) {
    const peer = pop()
    if (done[peer] === 1) continue
    done[peer] = 1
    // The source's own message is not checked; a relay checks before it passes it on.
    if (peer !== source && (liar[peer] === 1 || online[peer] === 0)) continue
    const base = distance[peer]!
    const links = neighbors[peer]!
    const latencies = linkLatencies[peer]!
    for (let k = 0; k < links.length; k++) {
      const next = links[k]!
      if (online[next] === 0) continue
      const d = base + latencies[k]! + validationMs
      if (d < distance[next]!) {
        distance[next] = d
        push(d, next)
      }
    }
  }
  return distance
}

/** Times (ms after `start`) at which the given peers were reached, sorted; Infinity for one never reached. */
export const reachTimes = (at: Float64Array, start: number, peers: ReadonlyArray<number>): Float64Array => {
  const times = new Float64Array(peers.length)
  peers.forEach((peer, i) => {
    const t = at[peer]!
    times[i] = Number.isNaN(t) ? Number.POSITIVE_INFINITY : t - start
  })
  return times.sort()
}
