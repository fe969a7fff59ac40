/**
 * The feeds: writers commit batches and announce their signed heads as PeerNode does (at the next
 * 250 ms tick after the head moves, and every 5 s regardless), and followers pull the delta when an
 * announced head passes their copy, or when their 5 s poll comes round. A pull asks the source, or
 * first the neighbours that hold the feed far enough (a lying neighbour claims to and refuses).
 */
import type { Gossip, Message } from "./Gossip.js"
import { feedRequestBytes, feedResponseBytes } from "./Model.js"
import type { Network } from "./Network.js"

/** A page of a feed answer, as PeerNode asks for it. */
const FEED_PAGE = 1_000
/** A refused stream comes back as a reset: one frame. */
const RESET_BYTES = 30

interface Writer {
  readonly peer: number
  position: number
  announced: number
  /** Every head signed: its position and when, in order. */
  readonly heads: Array<{ readonly position: number; readonly signedAt: number }>
}

interface Follow {
  readonly follower: number
  readonly writer: Writer
  copy: number
  announced: number
  pulling: boolean
}

export interface Feeds {
  readonly writers: ReadonlyArray<Writer>
  /** The application's side of a delivered head: a follower of its feed pulls if it is ahead. */
  readonly onHead: (peer: number, message: Message) => void
  readonly start: () => void
  /** Milliseconds from a head's signature to a follower's copy holding it, for heads signed in the window. */
  readonly lags: Array<number>
  readonly refusedPulls: () => number
  /** Follows of honest online peers whose copy holds their writer's last head. */
  readonly caughtUp: () => { readonly done: number; readonly total: number }
}

export const makeFeeds = (network: Network, gossip: Gossip, writerPeers: ReadonlyArray<number>): Feeds => {
  const { config, queue, random, online, liar, size } = network
  const writers: Array<Writer> = writerPeers.map((peer) => ({ peer, position: 1, announced: 0, heads: [] }))
  const writerOf = new Map(writers.map((writer) => [writer.peer, writer]))
  const follows: Array<Array<Follow>> = Array.from({ length: size }, () => [])
  const lags: Array<number> = []
  const windowEnd = config.warmupMs + config.durationMs
  let refused = 0

  for (let peer = 0; peer < size; peer++) {
    if (liar[peer] === 1) continue
    const choices = writers.filter((writer) => writer.peer !== peer)
    random.shuffle(choices)
    for (const writer of choices.slice(0, config.followsPerPeer)) {
      follows[peer]!.push({ follower: peer, writer, copy: 0, announced: 0, pulling: false })
    }
  }
  const followOf = (peer: number, writer: Writer) => follows[peer]!.find((follow) => follow.writer === writer)

  const recordLags = (follow: Follow, from: number, to: number) => {
    for (const head of follow.writer.heads) {
      if (
        head.position > from && head.position <= to && head.signedAt >= config.warmupMs && head.signedAt < windowEnd
      ) {
        lags.push(queue.now() - head.signedAt)
      }
    }
  }

  /** Who is asked, in order: holders among the neighbours (nearest first) if configured, then the source. */
  const servers = (follow: Follow): Array<number> => {
    const source = follow.writer.peer
    if (config.pullFrom === "source") return [source]
    const holders = network.neighbors[follow.follower]!.filter((peer) => {
      if (peer === source) return false
      if (liar[peer] === 1) return true
      const held = followOf(peer, follow.writer)
      return held !== undefined && held.copy >= follow.announced && held.copy > follow.copy
    })
    holders.sort((a, b) => network.latency(follow.follower, a) - network.latency(follow.follower, b) || a - b)
    return [...holders.slice(0, 2), source]
  }

  const pull = (follow: Follow) => {
    if (follow.pulling || online[follow.follower] === 0) return
    follow.pulling = true
    ask(follow, servers(follow), 0)
  }

  const ask = (follow: Follow, candidates: ReadonlyArray<number>, index: number) => {
    const server = candidates[index]
    const follower = follow.follower
    if (server === undefined || online[server] === 0) {
      // Nobody to ask now: the next poll or announcement tries again.
      follow.pulling = false
      return
    }
    network.send(follower, server, feedRequestBytes, "pull", () => {
      if (liar[server] === 1) {
        refused++
        network.send(server, follower, RESET_BYTES, "pull", () => ask(follow, candidates, index + 1))
        return
      }
      const served = writerOf.get(server)?.position ?? followOf(server, follow.writer)?.copy ?? 0
      const from = follow.copy
      const to = Math.min(served, from + FEED_PAGE)
      const events = Math.max(0, to - from)
      const batches = Math.ceil(events / config.eventsPerBatch)
      network.send(server, follower, feedResponseBytes(events, batches), "pull", () => {
        follow.pulling = false
        if (to > follow.copy) {
          recordLags(follow, follow.copy, to)
          follow.copy = to
        }
        follow.announced = Math.max(follow.announced, served)
        if (follow.announced > follow.copy) pull(follow)
      })
    })
    // A pull lost with a peer that left is given up after the request timeout; the poll takes over.
    queue.schedule(queue.now() + 30_000, () => {
      if (follow.pulling && (online[server] === 0 || online[follower] === 0)) follow.pulling = false
    })
  }

  const onHead = (peer: number, message: Message) => {
    if (message.feed < 0) return
    const writer = writerOf.get(message.feed)
    const follow = writer === undefined ? undefined : followOf(peer, writer)
    if (follow === undefined) return
    follow.announced = Math.max(follow.announced, message.position)
    if (message.position > follow.copy) pull(follow)
  }

  const commit = (writer: Writer) => {
    if (queue.now() >= windowEnd) return
    writer.position += config.eventsPerBatch
    writer.heads.push({ position: writer.position, signedAt: queue.now() })
    queue.schedule(queue.now() + random.exponential(config.commitIntervalMs), () => commit(writer))
  }

  const announceTick = (writer: Writer, tick: number) => {
    const forced = tick % Math.round(config.forcedAnnounceMs / config.announceTickMs) === 0
    if (online[writer.peer] === 1 && (forced || writer.position !== writer.announced)) {
      writer.announced = writer.position
      gossip.publish(writer.peer, "head", writer.peer, writer.position)
    }
    queue.schedule(queue.now() + config.announceTickMs, () => announceTick(writer, tick + 1))
  }

  /** A peer whose head never moves still announces it every forcedAnnounceMs (PeerNode's forced tick). */
  const announceIdle = (peer: number) => {
    if (online[peer] === 1) gossip.publish(peer, "head", -1, 1)
    queue.schedule(queue.now() + config.forcedAnnounceMs, () => announceIdle(peer))
  }

  const poll = (follow: Follow) => {
    pull(follow)
    queue.schedule(queue.now() + config.pollIntervalMs, () => poll(follow))
  }

  return {
    writers,
    onHead,
    lags,
    refusedPulls: () => refused,
    start: () => {
      for (const writer of writers) {
        writer.heads.push({ position: writer.position, signedAt: 0 })
        queue.schedule(random.exponential(config.commitIntervalMs), () => commit(writer))
        queue.schedule(random.next() * config.announceTickMs, () => announceTick(writer, 1))
      }
      if (config.announcers === "all") {
        for (let peer = 0; peer < size; peer++) {
          if (liar[peer] === 0 && !writerOf.has(peer)) {
            queue.schedule(random.next() * config.forcedAnnounceMs, () => announceIdle(peer))
          }
        }
      }
      for (const list of follows) {
        for (const follow of list) queue.schedule(random.next() * config.pollIntervalMs, () => poll(follow))
      }
    },
    caughtUp: () => {
      let done = 0
      let total = 0
      for (const list of follows) {
        for (const follow of list) {
          if (online[follow.follower] === 0) continue
          total++
          if (follow.copy >= follow.writer.position) done++
        }
      }
      return { done, total }
    }
  }
}
