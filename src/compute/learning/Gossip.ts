/**
 * Gossip learning without a coordinator (the seed's P2PGradientAggregator), in one process: every step,
 * each peer keeps a share of what it holds and pushes equal shares to k random neighbours; what a peer
 * holds is its model weighted by the data behind it (samples × reputation).
 *
 * This is push-sum (Kempe, Dobra & Gehrke, 2003): a peer holds a pair (s, w) and its model is s / w.
 * Because shares are only ever split and added, Σ s and Σ w never change, so every peer's s / w
 * converges to the network's weighted mean Σ w_i x_i / Σ w_i, which is FedAvg's aggregate, with no one
 * computing it. Plain neighbour averaging converges to some consensus, but not to that one.
 *
 * Local training enters as Stochastic Gradient Push does it (Assran et al., 2019): a peer that trains
 * from its estimate adds the change to its sum, weighted by the data behind it (not by the push-sum
 * weight it happens to hold, which mixing spreads evenly over the peers). The network's mean then moves
 * by Σ n_i Δ_i / Σ n_i, FedAvg's step. Weighting the change by the held weight instead moved it by a
 * near-uniform mean of the peers' changes, so a peer of 10 messages counted as much as one of 150.
 */
import { SeededRandom } from "../lora/Adapter.js"
import { refuse } from "./Updates.js"

export interface GossipPeer {
  readonly id: string
  readonly samples: number
  /** 0 to 1; default 1. A peer with reputation 0 is heard with weight 0. */
  readonly reputation?: number
  readonly vector: Float32Array
}

export interface GossipOptions {
  /** Neighbours each peer pushes to per step (k). */
  readonly fanout: number
  readonly seed: number
  /** The peers a peer may push to, by index; default every other peer. */
  readonly neighbours?: (peer: number) => ReadonlyArray<number>
}

export class PushSumGossip {
  readonly ids: ReadonlyArray<string>
  readonly #sums: Array<Float64Array>
  readonly #weights: Array<number>
  /** What each peer's data weighs (samples × reputation): the weight of its own training. */
  readonly #dataWeights: ReadonlyArray<number>
  readonly #fallback: Array<Float32Array>
  readonly #random: SeededRandom
  readonly #options: GossipOptions
  #messages = 0

  constructor(peers: ReadonlyArray<GossipPeer>, options: GossipOptions) {
    if (peers.length === 0) refuse("NoUpdates", "gossip needs peers, got none")
    const length = peers[0]!.vector.length
    for (const peer of peers) {
      if (peer.vector.length !== length) {
        refuse("Mismatch", `${peer.id} holds ${peer.vector.length} values, not ${length}`)
      }
      const reputation = peer.reputation ?? 1
      if (!(reputation >= 0 && reputation <= 1)) {
        refuse("BadOptions", `reputation of ${peer.id} is ${reputation}, not in [0, 1]`)
      }
      if (!(peer.samples >= 0)) refuse("BadOptions", `${peer.id} claims ${peer.samples} samples`)
    }
    if (!Number.isInteger(options.fanout) || options.fanout < 1) {
      refuse("BadOptions", `fanout is a whole number of neighbours, 1 or more, not ${options.fanout}`)
    }
    this.ids = peers.map((peer) => peer.id)
    this.#dataWeights = peers.map((peer) => peer.samples * (peer.reputation ?? 1))
    this.#weights = [...this.#dataWeights]
    this.#sums = peers.map((peer, i) => Float64Array.from(peer.vector, (value) => value * this.#weights[i]!))
    this.#fallback = peers.map((peer) => peer.vector.slice())
    this.#random = new SeededRandom(options.seed)
    this.#options = options
  }

  /** Messages sent so far (each carries one model and one weight). */
  get messages(): number {
    return this.#messages
  }

  /** The data weight a peer currently stands for. */
  weightOf(peer: number): number {
    return this.#weights[peer]!
  }

  /** A peer's current model s / w (its own last model while it has received no weight). */
  estimate(peer: number): Float32Array {
    const weight = this.#weights[peer]!
    if (!(weight > 0)) return this.#fallback[peer]!.slice()
    return Float32Array.from(this.#sums[peer]!, (value) => value / weight)
  }

  /**
   * A peer trained from its estimate to `trained`: the change joins its sum weighted by its data, so
   * the network's mean moves by that peer's share of FedAvg's step.
   */
  advance(peer: number, trained: Float32Array): void {
    const sum = this.#sums[peer]!
    if (trained.length !== sum.length) {
      refuse("Mismatch", `${this.ids[peer]} trained ${trained.length} values, not ${sum.length}`)
    }
    const from = this.estimate(peer)
    const weight = this.#dataWeights[peer]!
    for (let i = 0; i < sum.length; i++) sum[i]! += weight * (trained[i]! - from[i]!)
    this.#fallback[peer] = trained.slice()
  }

  /** k distinct random neighbours of `peer` (all of them when it has k or fewer). */
  #pick(peer: number): Array<number> {
    const candidates = [...(this.#options.neighbours?.(peer) ?? this.ids.map((_, i) => i))].filter((i) => i !== peer)
    const count = Math.min(this.#options.fanout, candidates.length)
    for (let k = 0; k < count; k++) {
      const j = k + Math.floor(this.#random.uniform() * (candidates.length - k))
      ;[candidates[k], candidates[j]] = [candidates[j]!, candidates[k]!]
    }
    return candidates.slice(0, count)
  }

  /** One synchronous step: every peer splits what it holds into k + 1 shares, keeps one, pushes k. */
  step(): void {
    const n = this.ids.length
    const sums = this.#sums.map((sum) => new Float64Array(sum.length))
    const weights = new Array<number>(n).fill(0)
    for (let peer = 0; peer < n; peer++) {
      const targets = [peer, ...this.#pick(peer)]
      const share = 1 / targets.length
      const from = this.#sums[peer]!
      for (const target of targets) {
        const into = sums[target]!
        for (let i = 0; i < from.length; i++) into[i]! += share * from[i]!
        weights[target]! += share * this.#weights[peer]!
      }
      this.#messages += targets.length - 1
    }
    for (let peer = 0; peer < n; peer++) {
      this.#sums[peer] = sums[peer]!
      this.#weights[peer] = weights[peer]!
    }
  }
}
