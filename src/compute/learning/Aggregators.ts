/**
 * Aggregation rules of a federated round over peers' updates: FedAvg, coordinate-wise median, trimmed
 * mean, Krum, Multi-Krum and a reputation-weighted mean. Each returns the aggregate and a verdict per
 * update (kept or excluded, and why in one line), because a round must be able to say why a peer's work
 * counted or not, and a peer's reputation follows from that verdict.
 *
 * The robust rules bound what f lying peers can do: the median and the trimmed mean look at each
 * coordinate separately (an outlier is simply outvoted there); Krum (Blanchard et al., 2017) picks the
 * update whose n - f - 2 nearest neighbours are closest, which an outlier far from the honest cluster
 * never is.
 */
import type { PeerUpdate, UpdateLayout } from "./Updates.js"
import { checkUpdates, refuse, squaredDistance } from "./Updates.js"

export type AggregationRule =
  | { readonly kind: "fedavg" }
  | { readonly kind: "median" }
  /** Drop the ⌊trim · n⌋ smallest and largest values of every coordinate, average the rest. */
  | { readonly kind: "trimmed-mean"; readonly trim: number }
  /** `attackers` is Krum's f: the number of byzantine peers it is built to withstand. */
  | { readonly kind: "krum"; readonly attackers: number }
  /** Average the `selected` updates with the best Krum scores. */
  | { readonly kind: "multi-krum"; readonly attackers: number; readonly selected: number }
  /** FedAvg with each peer's weight multiplied by its reputation (0 to 1); no reputation, no weight. */
  | { readonly kind: "reputation"; readonly reputation: ReadonlyMap<string, number> }

/**
 * For FedAvg, Krum and the reputation mean, an excluded update has weight 0. The median and the trimmed
 * mean decide per coordinate: there "excluded" means the update was an outlier on most coordinates (its
 * values still count where they were central), which is what a peer's reputation should follow.
 */
export interface Verdict {
  readonly peer: string
  readonly kept: boolean
  readonly reason: string
}

export interface Aggregate {
  readonly layout: UpdateLayout
  readonly vector: Float32Array
  /** Samples behind the kept updates. */
  readonly samples: number
  /** One per update, in the order given. */
  readonly verdicts: ReadonlyArray<Verdict>
}

const percent = (fraction: number) => `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)}%`
const figure = (
  value: number
) => (Math.abs(value) >= 1000 || Math.abs(value) < 0.01 ? value.toExponential(2) : value.toFixed(2))

/** Σ w_i v_i / Σ w_i in float64 over the updates with positive weight. */
const weightedMean = (updates: ReadonlyArray<PeerUpdate>, weights: ReadonlyArray<number>): Float32Array => {
  const length = updates[0]!.vector.length
  const sum = new Float64Array(length)
  let total = 0
  updates.forEach((update, index) => {
    const weight = weights[index]!
    if (!(weight > 0)) return
    total += weight
    const vector = update.vector
    for (let i = 0; i < length; i++) sum[i]! += weight * vector[i]!
  })
  return Float32Array.from(sum, (value) => value / total)
}

const fedAvg = (updates: ReadonlyArray<PeerUpdate>, weights: ReadonlyArray<number>, why: (index: number) => string) => {
  const total = weights.reduce((sum, weight) => sum + Math.max(0, weight), 0)
  if (!(total > 0)) refuse("BadOptions", "every update has weight 0: nothing to average")
  return {
    vector: weightedMean(updates, weights),
    verdicts: updates.map((update, index) => {
      const weight = weights[index]!
      return weight > 0
        ? { peer: update.peer, kept: true, reason: `weight ${percent(weight / total)} (${why(index)})` }
        : { peer: update.peer, kept: false, reason: `weight 0 (${why(index)})` }
    })
  }
}

/**
 * Per coordinate, the updates sorted by value; calls `use(sortedIndices, coordinate)` with the order.
 * Insertion sort: n is a handful of peers.
 */
const eachCoordinate = (
  updates: ReadonlyArray<PeerUpdate>,
  use: (order: Int32Array, values: Float64Array, coordinate: number) => void
) => {
  const n = updates.length
  const order = new Int32Array(n)
  const values = new Float64Array(n)
  const length = updates[0]!.vector.length
  for (let coordinate = 0; coordinate < length; coordinate++) {
    for (let k = 0; k < n; k++) {
      const value = updates[k]!.vector[coordinate]!
      let position = k
      while (position > 0 && values[position - 1]! > value) {
        values[position] = values[position - 1]!
        order[position] = order[position - 1]!
        position--
      }
      values[position] = value
      order[position] = k
    }
    use(order, values, coordinate)
  }
}

const median = (updates: ReadonlyArray<PeerUpdate>) => {
  const n = updates.length
  const length = updates[0]!.vector.length
  const vector = new Float32Array(length)
  const used = new Float64Array(n)
  const low = Math.floor((n - 1) / 2)
  const high = Math.floor(n / 2)
  eachCoordinate(updates, (order, values, coordinate) => {
    vector[coordinate] = (values[low]! + values[high]!) / 2
    used[order[low]!]! += low === high ? 1 : 0.5
    used[order[high]!]! += low === high ? 0 : 0.5
  })
  // Each coordinate's median comes from one or two updates: a fair share is 1/n of the coordinates.
  const fair = 1 / n
  return {
    vector,
    verdicts: updates.map((update, k) => {
      const share = used[k]! / length
      const kept = share >= fair / 4
      return {
        peer: update.peer,
        kept,
        reason: `the median at ${percent(share)} of coordinates (fair share ${percent(fair)})${
          kept ? "" : ": an outlier"
        }`
      }
    })
  }
}

const trimmedMean = (updates: ReadonlyArray<PeerUpdate>, trim: number) => {
  const n = updates.length
  if (!(trim >= 0 && trim < 0.5)) refuse("BadOptions", `trim must be in [0, 0.5), not ${trim}`)
  const cut = Math.floor(trim * n)
  if (n - 2 * cut < 1) refuse("BadOptions", `trimming ${cut} from each end of ${n} updates leaves none`)
  const length = updates[0]!.vector.length
  const vector = new Float32Array(length)
  const trimmed = new Float64Array(n)
  eachCoordinate(updates, (order, values, coordinate) => {
    let sum = 0
    for (let k = cut; k < n - cut; k++) sum += values[k]!
    vector[coordinate] = sum / (n - 2 * cut)
    for (let k = 0; k < cut; k++) {
      trimmed[order[k]!]! += 1
      trimmed[order[n - 1 - k]!]! += 1
    }
  })
  // Every coordinate trims 2·cut of n values: an honest update is trimmed at about that rate; one that is
  // trimmed at more than halfway from that rate to 100% was an outlier on most coordinates.
  const fair = (2 * cut) / n
  const threshold = fair + (1 - fair) / 2
  return {
    vector,
    verdicts: updates.map((update, k) => {
      const rate = trimmed[k]! / length
      const kept = cut === 0 || rate <= threshold
      return {
        peer: update.peer,
        kept,
        reason: `trimmed at ${percent(rate)} of coordinates (expected ${percent(fair)}, β=${trim})${
          kept ? "" : ": an outlier"
        }`
      }
    })
  }
}

/** Krum's score of every update: the sum of squared distances to its n - f - 2 nearest others. */
export const krumScores = (updates: ReadonlyArray<PeerUpdate>, attackers: number): Array<number> => {
  const n = updates.length
  if (!Number.isInteger(attackers) || attackers < 0) {
    refuse("BadOptions", `Krum's f is a whole number of attackers, not ${attackers}`)
  }
  if (n <= 2 * attackers + 2) {
    refuse("BadOptions", `Krum with f=${attackers} needs more than ${2 * attackers + 2} updates, not ${n}`)
  }
  const distances = updates.map(() => new Float64Array(n))
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const distance = squaredDistance(updates[i]!.vector, updates[j]!.vector)
      distances[i]![j] = distance
      distances[j]![i] = distance
    }
  }
  const neighbours = n - attackers - 2
  return distances.map((row, i) => {
    const others = [...row].filter((_, j) => j !== i).sort((a, b) => a - b)
    return others.slice(0, neighbours).reduce((sum, distance) => sum + distance, 0)
  })
}

const krum = (updates: ReadonlyArray<PeerUpdate>, attackers: number, selected: number) => {
  const n = updates.length
  if (!Number.isInteger(selected) || selected < 1 || selected > n) {
    refuse("BadOptions", `Multi-Krum selects 1 to ${n} updates, not ${selected}`)
  }
  const scores = krumScores(updates, attackers)
  const ranked = scores.map((score, index) => ({ score, index })).sort((a, b) => a.score - b.score || a.index - b.index)
  const chosen = new Set(ranked.slice(0, selected).map((entry) => entry.index))
  const cutoff = ranked[selected - 1]!.score
  const weights = updates.map((update, index) => (chosen.has(index) ? update.samples : 0))
  return {
    vector: weightedMean(updates, weights),
    verdicts: updates.map((update, index) => {
      const score = figure(scores[index]!)
      return chosen.has(index)
        ? {
          peer: update.peer,
          kept: true,
          reason: `Krum score ${score}, among the ${selected} lowest (f=${attackers})`
        }
        : {
          peer: update.peer,
          kept: false,
          reason: `Krum score ${score} above the ${selected} chosen (at most ${figure(cutoff)}, f=${attackers})`
        }
    })
  }
}

/** The aggregate of `updates` under `rule`, with the verdict on each. Throws a LearningError on bad input. */
export const aggregate = (updates: ReadonlyArray<PeerUpdate>, rule: AggregationRule): Aggregate => {
  const layout = checkUpdates(updates)
  const peers = new Set(updates.map((update) => update.peer))
  if (peers.size !== updates.length) refuse("BadOptions", "two updates come from one peer")
  const outcome = (() => {
    switch (rule.kind) {
      case "fedavg":
        return fedAvg(updates, updates.map((update) => update.samples), (i) => `${updates[i]!.samples} samples`)
      case "reputation": {
        const weights = updates.map((update) => {
          const reputation = rule.reputation.get(update.peer) ?? 0
          if (!(reputation >= 0 && reputation <= 1)) {
            refuse("BadOptions", `reputation of ${update.peer} is ${reputation}; it must be in [0, 1]`)
          }
          return reputation * update.samples
        })
        return fedAvg(
          updates,
          weights,
          (i) => `${updates[i]!.samples} samples × reputation ${rule.reputation.get(updates[i]!.peer) ?? "none"}`
        )
      }
      case "median":
        return median(updates)
      case "trimmed-mean":
        return trimmedMean(updates, rule.trim)
      case "krum":
        return krum(updates, rule.attackers, 1)
      case "multi-krum":
        return krum(updates, rule.attackers, rule.selected)
    }
  })()
  const samples = updates.reduce(
    (total, update, index) => total + (outcome.verdicts[index]!.kept ? update.samples : 0),
    0
  )
  return { layout, vector: outcome.vector, samples, verdicts: outcome.verdicts }
}

/** A rule in a few words, for tables and logs. */
export const describeRule = (rule: AggregationRule): string => {
  switch (rule.kind) {
    case "fedavg":
      return "FedAvg"
    case "median":
      return "median"
    case "trimmed-mean":
      return `trimmed mean β=${rule.trim}`
    case "krum":
      return `Krum f=${rule.attackers}`
    case "multi-krum":
      return `Multi-Krum f=${rule.attackers} m=${rule.selected}`
    case "reputation":
      return "reputation-weighted"
  }
}
