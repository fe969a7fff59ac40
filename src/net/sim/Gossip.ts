/**
 * Gossipsub on one topic (the heads), peer by peer, as @libp2p/gossipsub runs it for our host: a mesh of
 * D peers kept between Dlo and Dhi at every heartbeat, eager push in the mesh, IHAVE/IWANT gossip to
 * Dlazy peers outside it from a cache of a few heartbeats, message-id dedup, validation before anything
 * is delivered or forwarded, and the score our host configures (net/GossipScoring.ts) with the steps it
 * cuts a peer off by: no gossip below the gossip threshold, no publishing below the publish threshold,
 * nothing heard below the graylist threshold.
 *
 * Lying peers run the same mesh but forward nothing, advertise message ids they will never serve, and
 * publish forged heads: what a validator must stop.
 */
import { scoreThresholds, topicScore } from "../GossipScoring.js"
import { graftBytes, HEAD_BYTES, ihaveBytes, iwantBytes, messageBytes, pruneBytes } from "./Model.js"
import type { Network } from "./Network.js"

/** One message on the topic: a head signed by its source (valid), a forgery, or an id a liar made up. */
export interface Message {
  readonly id: number
  readonly publisher: number
  readonly kind: "head" | "forged" | "phantom"
  readonly publishedAt: number
  readonly wireBytes: number
  /** The writer whose head this is (-1 for a peer whose head does not move) and its position. */
  readonly feed: number
  readonly position: number
  /** Which peers have seen it: a bitmap for heads (they reach everyone), a set for the rest. */
  readonly seenBits: Uint8Array | null
  readonly seenSet: Set<number> | null
  /** When each peer's application got it (NaN: not yet), for heads only. */
  readonly deliveredAt: Float64Array | null
  /** The earliest arrival of a copy already on its way to each peer (Infinity: none), for heads only. */
  readonly arrivesAt: Float64Array | null
  /** The earliest copy counted as a duplicate before it landed, and its sender: the fallback if that copy is lost. */
  readonly fallbackAt: Float64Array | null
  readonly fallbackFrom: Int32Array | null
}

interface Score {
  meshSince: number
  firstDeliveries: number
  invalid: number
  behaviour: number
}

interface PeerState {
  readonly mesh: Set<number>
  readonly scores: Map<number, Score>
  /** Peers with invalid messages or broken promises on record: the only ones that can fall to the graylist. */
  readonly penalised: Set<number>
  /** Until when a peer may not be grafted again after a prune (gossipsub's prune backoff). */
  readonly backoff: Map<number, number>
  /** The message cache, newest heartbeat first. */
  windows: Array<Array<number>>
}

export interface GossipCounters {
  delivered: number
  duplicates: number
  forgedRejected: number
  forgedDelivered: number
  /** Forged heads an honest peer passed on: validation before forwarding makes this zero. */
  forgedForwarded: number
}

export interface Gossip {
  readonly messages: Array<Message>
  readonly counters: GossipCounters
  readonly publish: (peer: number, kind: Message["kind"], feed: number, position: number) => Message
  readonly heartbeat: (peer: number) => void
  /** A peer is leaving: its peers drop it from their meshes at once, as on a closed connection. */
  readonly leave: (peer: number) => void
  /** A peer restarts with an empty mesh and cache (its connections were closed). */
  readonly reset: (peer: number) => void
  readonly score: (peer: number, of: number) => number
  readonly mesh: (peer: number) => ReadonlySet<number>
}

const PRUNE_BACKOFF_MS = 60_000

export const makeGossip = (
  network: Network,
  onDeliver: (peer: number, message: Message) => void,
  onPublished: (message: Message) => void
): Gossip => {
  const { queue, random, size, online, liar } = network
  const params = network.config.gossip
  const validationMs = network.config.validationMs
  const peers: Array<PeerState> = Array.from({ length: size }, () => ({
    mesh: new Set(),
    scores: new Map(),
    penalised: new Set(),
    backoff: new Map(),
    windows: [[]]
  }))
  const messages: Array<Message> = []
  const counters: GossipCounters = {
    delivered: 0,
    duplicates: 0,
    forgedRejected: 0,
    forgedDelivered: 0,
    forgedForwarded: 0
  }

  const scoreOf = (peer: number, of: number): Score => {
    const scores = peers[peer]!.scores
    let score = scores.get(of)
    if (score === undefined) scores.set(of, score = { meshSince: -1, firstDeliveries: 0, invalid: 0, behaviour: 0 })
    return score
  }

  /** Gossipsub's score of `of` as `peer` sees it: P1, P2 and P4 of our topic (capped), and P7. */
  const {
    firstMessageDeliveriesCap: firstDeliveriesCap,
    firstMessageDeliveriesWeight,
    invalidMessageDeliveriesWeight,
    timeInMeshCap,
    timeInMeshQuantum,
    timeInMeshWeight,
    topicWeight
  } = topicScore
  const { gossipThreshold, graylistThreshold: graylist, publishThreshold } = scoreThresholds
  const { behaviourPenaltyWeight, topicScoreCap } = params
  const score = (peer: number, of: number): number => {
    const s = peers[peer]!.scores.get(of)
    if (s === undefined) return 0
    const inMesh = s.meshSince < 0 ? 0 : Math.min((queue.now() - s.meshSince) / timeInMeshQuantum, timeInMeshCap)
    const topic = topicWeight * (
      timeInMeshWeight * inMesh +
      firstMessageDeliveriesWeight * s.firstDeliveries +
      invalidMessageDeliveriesWeight * s.invalid * s.invalid
    )
    return Math.min(topic, topicScoreCap) + behaviourPenaltyWeight * s.behaviour * s.behaviour
  }

  /** Whether `peer` still listens to `of`: only invalid messages and broken promises can graylist a peer. */
  const heard = (peer: number, of: number) => {
    const penalised = peers[peer]!.penalised
    return penalised.size === 0 || !penalised.has(of) || score(peer, of) >= graylist
  }

  const seen = (message: Message, peer: number) =>
    message.seenBits !== null ? message.seenBits[peer] === 1 : message.seenSet!.has(peer)
  const markSeen = (message: Message, peer: number) => {
    if (message.seenBits !== null) message.seenBits[peer] = 1
    else message.seenSet!.add(peer)
  }

  const sendMessage = (from: number, to: number, message: Message, delayMs = 0) => {
    if (message.kind === "forged" && liar[from] === 0) counters.forgedForwarded++
    const at = network.transmit(from, to, message.wireBytes, "gossip", delayMs)
    // A copy that arrives after one already seen or already on its way is a duplicate: counted now, not
    // scheduled (most of gossipsub's traffic is such copies). Should the copy on its way be lost (its
    // sender left), the earliest of these takes its place (see `lost`).
    const arrivesAt = message.arrivesAt
    if (seen(message, to) || (arrivesAt !== null && arrivesAt[to]! <= at)) {
      network.discard(to, message.wireBytes, "gossip")
      if (network.connected(to, from) && heard(to, from)) counters.duplicates++
      if (!seen(message, to) && at < message.fallbackAt![to]!) {
        message.fallbackAt![to] = at
        message.fallbackFrom![to] = from
      }
      return
    }
    if (arrivesAt !== null) arrivesAt[to] = at
    network.deliver(at, to, message.wireBytes, "gossip", () => receive(to, from, message))
  }

  /** A head the peer has just heard of, checked (validationMs) and then delivered and passed on. */
  const accept = (peer: number, from: number, message: Message) => {
    if (message.kind !== "head") {
      counters.forgedRejected++
      scoreOf(peer, from).invalid++
      peers[peer]!.penalised.add(from)
      return
    }
    message.deliveredAt![peer] = queue.now() + validationMs
    counters.delivered++
    const s = scoreOf(peer, from)
    s.firstDeliveries = Math.min(s.firstDeliveries + 1, firstDeliveriesCap)
    peers[peer]!.windows[0]!.push(message.id)
    for (const next of peers[peer]!.mesh) {
      if (next !== from && next !== message.publisher) sendMessage(peer, next, message, validationMs)
    }
    onDeliver(peer, message)
  }

  /** A head's copy that did not land: the earliest copy counted as a duplicate meanwhile lands instead. */
  const lost = (peer: number, message: Message) => {
    const fallbackAt = message.fallbackAt
    if (fallbackAt === null || seen(message, peer)) return
    if (fallbackAt[peer] === Number.POSITIVE_INFINITY) {
      // Nothing else was on its way: the next copy sent is scheduled as the first.
      message.arrivesAt![peer] = Number.POSITIVE_INFINITY
      return
    }
    const at = fallbackAt[peer]!
    const from = message.fallbackFrom![peer]!
    fallbackAt[peer] = Number.POSITIVE_INFINITY
    message.arrivesAt![peer] = at
    queue.schedule(at, () => receive(peer, from, message))
  }

  const receive = (peer: number, from: number, message: Message) => {
    if (!network.connected(peer, from) || !heard(peer, from)) {
      lost(peer, message)
      return
    }
    if (seen(message, peer)) {
      counters.duplicates++
      return
    }
    markSeen(message, peer)
    if (liar[peer] === 1) {
      // A liar keeps what it hears to advertise it, and passes nothing on.
      if (message.kind === "head") peers[peer]!.windows[0]!.push(message.id)
      return
    }
    accept(peer, from, message)
  }

  const publish = (peer: number, kind: Message["kind"], feed: number, position: number): Message => {
    const head = kind === "head"
    const message: Message = {
      id: messages.length,
      publisher: peer,
      kind,
      publishedAt: queue.now(),
      wireBytes: messageBytes(HEAD_BYTES),
      feed,
      position,
      seenBits: head ? new Uint8Array(size) : null,
      seenSet: head ? null : new Set(),
      deliveredAt: head ? new Float64Array(size).fill(Number.NaN) : null,
      arrivesAt: head ? new Float64Array(size).fill(Number.POSITIVE_INFINITY) : null,
      fallbackAt: head ? new Float64Array(size).fill(Number.POSITIVE_INFINITY) : null,
      fallbackFrom: head ? new Int32Array(size) : null
    }
    messages.push(message)
    markSeen(message, peer)
    if (kind === "phantom") return message
    if (head) {
      message.deliveredAt![peer] = queue.now()
      peers[peer]!.windows[0]!.push(message.id)
      onPublished(message)
    }
    const targets = params.floodPublish || kind === "forged" ? network.neighbors[peer]! : [...peers[peer]!.mesh]
    for (const to of targets) {
      if (kind === "forged" || score(peer, to) >= publishThreshold) sendMessage(peer, to, message)
    }
    return message
  }

  // --- control ------------------------------------------------------------------------------
  const graft = (peer: number, to: number) => {
    peers[peer]!.mesh.add(to)
    scoreOf(peer, to).meshSince = queue.now()
    network.send(peer, to, graftBytes, "gossip", () => onGraft(to, peer))
  }
  const prune = (peer: number, to: number) => {
    leaveMesh(peer, to)
    network.send(peer, to, pruneBytes, "gossip", () => onPrune(to, peer))
  }
  const leaveMesh = (peer: number, other: number) => {
    const state = peers[peer]!
    state.mesh.delete(other)
    scoreOf(peer, other).meshSince = -1
    state.backoff.set(other, queue.now() + PRUNE_BACKOFF_MS)
  }
  const onGraft = (peer: number, from: number) => {
    if (!network.connected(peer, from) || peers[peer]!.mesh.has(from)) return
    const backoff = peers[peer]!.backoff.get(from) ?? 0
    if (score(peer, from) < 0 || backoff > queue.now()) {
      prune(peer, from)
      return
    }
    peers[peer]!.mesh.add(from)
    scoreOf(peer, from).meshSince = queue.now()
  }
  const onPrune = (peer: number, from: number) => {
    if (peers[peer]!.mesh.has(from)) leaveMesh(peer, from)
  }

  const onIHave = (peer: number, from: number, ids: ReadonlyArray<number>) => {
    if (liar[peer] === 1 || !network.connected(peer, from)) return
    if (score(peer, from) < gossipThreshold) return
    const wanted = ids.filter((id) => !seen(messages[id]!, peer))
    if (wanted.length === 0) return
    network.send(peer, from, iwantBytes(wanted.length), "gossip", () => onIWant(from, peer, wanted))
    // The promise is kept if the message arrives from anyone in time; gossipsub tracks one id per IWANT.
    const promised = messages[wanted[random.below(wanted.length)]!]!
    queue.schedule(queue.now() + params.iwantFollowupMs, () => {
      if (online[peer] === 1 && !seen(promised, peer)) {
        scoreOf(peer, from).behaviour++
        peers[peer]!.penalised.add(from)
      }
    })
  }
  const onIWant = (peer: number, from: number, ids: ReadonlyArray<number>) => {
    if (liar[peer] === 1 || !network.connected(peer, from)) return
    if (score(peer, from) < gossipThreshold) return
    const cached = peers[peer]!.windows
    for (const id of ids) {
      if (cached.some((window) => window.includes(id))) sendMessage(peer, from, messages[id]!)
    }
  }

  // --- heartbeat ----------------------------------------------------------------------------
  const decay = (s: Score) => {
    s.firstDeliveries *= topicScore.firstMessageDeliveriesDecay
    if (s.firstDeliveries < params.decayToZero) s.firstDeliveries = 0
    s.invalid *= topicScore.invalidMessageDeliveriesDecay
    if (s.invalid < params.decayToZero) s.invalid = 0
    s.behaviour *= params.behaviourPenaltyDecay
    if (s.behaviour < params.decayToZero) s.behaviour = 0
  }

  const maintainMesh = (peer: number) => {
    const state = peers[peer]!
    const now = queue.now()
    for (const other of state.mesh) if (score(peer, other) < 0) prune(peer, other)
    if (state.mesh.size < params.Dlo) {
      const candidates = network.neighbors[peer]!.filter((other) =>
        !state.mesh.has(other) && score(peer, other) >= 0 && (state.backoff.get(other) ?? 0) <= now
      )
      random.shuffle(candidates)
      for (const other of candidates.slice(0, params.D - state.mesh.size)) graft(peer, other)
    }
    if (state.mesh.size > params.Dhi) {
      const byScore = [...state.mesh].sort((a, b) => score(peer, b) - score(peer, a) || a - b)
      const kept = new Set([
        ...byScore.slice(0, params.Dscore),
        ...random.shuffle(byScore.slice(params.Dscore)).slice(0, params.D - params.Dscore)
      ])
      for (const other of byScore) if (!kept.has(other)) prune(peer, other)
    }
  }

  const emitGossip = (peer: number) => {
    const state = peers[peer]!
    const ids: Array<number> = []
    for (const window of state.windows.slice(0, params.mcacheGossip)) for (const id of window) ids.push(id)
    // A liar also advertises a head it never had, and will not answer the IWANT it draws.
    if (liar[peer] === 1) ids.push(publish(peer, "phantom", -1, 0).id)
    if (ids.length === 0) return
    const candidates = network.neighbors[peer]!.filter((other) =>
      !state.mesh.has(other) && score(peer, other) >= gossipThreshold
    )
    const count = Math.max(params.Dlazy, Math.floor(params.gossipFactor * candidates.length))
    for (const to of random.shuffle(candidates).slice(0, count)) {
      network.send(peer, to, ihaveBytes(ids.length), "gossip", () => onIHave(to, peer, ids))
    }
  }

  const heartbeat = (peer: number) => {
    const state = peers[peer]!
    for (const s of state.scores.values()) decay(s)
    for (const other of state.penalised) {
      const s = state.scores.get(other)
      if (s === undefined || (s.invalid === 0 && s.behaviour === 0)) state.penalised.delete(other)
    }
    // Connections closed since the last heartbeat leave the mesh, with no backoff: a peer that comes
    // back may be grafted again at once (gossipsub backs off only after a PRUNE).
    for (const other of state.mesh) {
      if (!network.connected(peer, other)) {
        state.mesh.delete(other)
        scoreOf(peer, other).meshSince = -1
      }
    }
    maintainMesh(peer)
    emitGossip(peer)
    state.windows.unshift([])
    if (state.windows.length > params.mcacheLength) state.windows.length = params.mcacheLength
  }

  return {
    messages,
    counters,
    publish,
    heartbeat,
    leave: (peer) => {
      for (const other of network.neighbors[peer]!) {
        if (peers[other]!.mesh.delete(peer)) scoreOf(other, peer).meshSince = -1
      }
    },
    reset: (peer) => {
      const state = peers[peer]!
      state.mesh.clear()
      state.scores.clear()
      state.penalised.clear()
      state.backoff.clear()
      state.windows = [[]]
    },
    score,
    mesh: (peer) => peers[peer]!.mesh
  }
}
