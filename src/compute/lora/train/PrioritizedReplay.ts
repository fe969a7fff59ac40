/**
 * Prioritized experience replay (Schaul et al., 2016): a ring buffer of the seed's capacity (10,000 by
 * default) whose items are drawn with probability P(i) = p_i^α / Σ_k p_k^α, so a learner revisits what it
 * still gets wrong, with importance-sampling weights w_i = (N · P(i))^-β / max_k w_k that undo the bias
 * of drawing non-uniformly, β annealed linearly to 1 (full correction) by the end of training.
 *
 * The sum tree makes an update and a draw O(log n); a min tree beside it gives max_k w_k, which comes
 * from the smallest priority. Both use the array layout of a segment tree (node k's children 2k and
 * 2k + 1, leaves at capacity..2·capacity-1), which is a full binary tree for any capacity, so no
 * rounding up to a power of two.
 */
import { SeededRandom } from "../Adapter.js"
import { TrainingError } from "./TrainingConfig.js"

const refuse = (reason: string): never => {
  throw new TrainingError(reason)
}

/** Sums of non-negative values over a full binary tree: set a leaf, find the leaf at a prefix mass. */
export class SumTree {
  readonly #sums: Float64Array
  readonly #minima: Float64Array

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      refuse(`a capacity is a positive whole number, not ${capacity}`)
    }
    this.#sums = new Float64Array(2 * capacity)
    this.#minima = new Float64Array(2 * capacity).fill(Number.POSITIVE_INFINITY)
  }

  get total(): number {
    return this.#sums[1]!
  }

  /** The smallest value set so far among the leaves that hold one. */
  get minimum(): number {
    return this.#minima[1]!
  }

  get(index: number): number {
    return this.#sums[this.capacity + index]!
  }

  set(index: number, value: number): void {
    if (!(value >= 0) || !Number.isFinite(value)) {
      refuse(`a priority is finite and non-negative, not ${value}`)
    }
    if (!Number.isInteger(index) || index < 0 || index >= this.capacity) {
      refuse(`leaf ${index} is outside 0..${this.capacity - 1}`)
    }
    let node = this.capacity + index
    this.#sums[node] = value
    this.#minima[node] = value
    // With capacity 1 the only leaf is node 1, the root itself.
    for (node >>= 1; node >= 1; node >>= 1) {
      this.#sums[node] = this.#sums[2 * node]! + this.#sums[2 * node + 1]!
      this.#minima[node] = Math.min(this.#minima[2 * node]!, this.#minima[2 * node + 1]!)
    }
  }

  /** The leaf whose share of the total covers `mass` (0 <= mass < total), walking down from the root. */
  find(mass: number): number {
    if (this.capacity === 1) return 0
    let node = 1
    let rest = mass
    while (node < this.capacity) {
      const left = this.#sums[2 * node]!
      if (rest < left) node = 2 * node
      else {
        rest -= left
        node = 2 * node + 1
      }
    }
    return node - this.capacity
  }
}

export interface ReplayOptions {
  /** Items kept; the oldest is overwritten when full. Default 10,000 (the seed's). */
  readonly capacity?: number
  /** Priority exponent α: 0 draws uniformly, 1 in proportion to priority. Default 0.6. */
  readonly alpha?: number
  /** β at the first draw. Default 0.4. */
  readonly beta?: number
  /** Draws (calls to `sample`) over which β rises linearly to 1. Default 100,000. */
  readonly betaSteps?: number
  /** Added to every priority so that nothing becomes undrawable. Default 1e-6. */
  readonly epsilon?: number
  readonly seed?: number
}

export interface ReplayDraw<T> {
  /** Slots in the buffer, for `updatePriorities`. */
  readonly indices: ReadonlyArray<number>
  readonly items: ReadonlyArray<T>
  /** Importance-sampling weights, at most 1. */
  readonly weights: ReadonlyArray<number>
  readonly beta: number
}

export class PrioritizedReplay<T> {
  readonly capacity: number
  readonly alpha: number
  readonly #tree: SumTree
  readonly #items: Array<T> = []
  readonly #beta: number
  readonly #betaSteps: number
  readonly #epsilon: number
  readonly #random: SeededRandom
  #next = 0
  #maxPriority = 1
  #draws = 0

  constructor(options: ReplayOptions = {}) {
    this.capacity = options.capacity ?? 10_000
    this.alpha = options.alpha ?? 0.6
    this.#beta = options.beta ?? 0.4
    this.#betaSteps = options.betaSteps ?? 100_000
    this.#epsilon = options.epsilon ?? 1e-6
    if (!(this.alpha >= 0)) refuse(`alpha must be 0 or more, not ${this.alpha}`)
    if (!(this.#beta >= 0 && this.#beta <= 1)) refuse(`beta must be in [0, 1], not ${this.#beta}`)
    if (!(this.#betaSteps >= 1)) refuse(`betaSteps must be 1 or more, not ${this.#betaSteps}`)
    this.#tree = new SumTree(this.capacity)
    this.#random = new SeededRandom(options.seed ?? 0)
  }

  get size(): number {
    return this.#items.length
  }

  /** β for the next draw: from its start to 1, linearly over `betaSteps` draws. */
  get beta(): number {
    return this.#beta + (1 - this.#beta) * Math.min(1, this.#draws / this.#betaSteps)
  }

  /** Stores an item with the highest priority seen so far (so it is drawn soon); returns its slot. */
  add(item: T): number {
    const slot = this.#next
    if (this.#items.length < this.capacity) this.#items.push(item)
    else this.#items[slot] = item
    this.#tree.set(slot, this.#maxPriority ** this.alpha)
    this.#next = (slot + 1) % this.capacity
    return slot
  }

  item(slot: number): T | undefined {
    return this.#items[slot]
  }

  /** P(slot) under the current priorities. */
  probability(slot: number): number {
    return this.#tree.get(slot) / this.#tree.total
  }

  /** `count` independent draws in proportion to p^α, with their importance-sampling weights. */
  sample(count: number): ReplayDraw<T> {
    if (this.#items.length === 0) refuse("cannot sample an empty replay buffer")
    const beta = this.beta
    this.#draws++
    const total = this.#tree.total
    const n = this.#items.length
    const maxWeight = (n * (this.#tree.minimum / total)) ** -beta
    const indices: Array<number> = []
    const weights: Array<number> = []
    for (let k = 0; k < count; k++) {
      const slot = Math.min(this.#tree.find(this.#random.uniform() * total), n - 1)
      indices.push(slot)
      weights.push((n * (this.#tree.get(slot) / total)) ** -beta / maxWeight)
    }
    return { indices, items: indices.map((slot) => this.#items[slot]!), weights, beta }
  }

  /** New priorities (e.g. each item's latest loss) for drawn slots. */
  updatePriorities(slots: ReadonlyArray<number>, priorities: ReadonlyArray<number>): void {
    slots.forEach((slot, k) => {
      const priority = Math.abs(priorities[k]!) + this.#epsilon
      if (!Number.isFinite(priority)) refuse(`priority of slot ${slot} is ${priorities[k]}`)
      this.#maxPriority = Math.max(this.#maxPriority, priority)
      this.#tree.set(slot, priority ** this.alpha)
    })
  }
}
