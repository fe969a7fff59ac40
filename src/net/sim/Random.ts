/**
 * Seeded randomness for the network simulation: one stream (xoshiro128**) drives every draw in event
 * order, and link latencies are a pure function of the seed and the pair, so a seed names one run.
 */

/** SplitMix32: spreads a seed (or a pair of ids) over 32 bits, to seed the stream and to hash pairs. */
const mix32 = (value: number): number => {
  let z = (value + 0x9e3779b9) | 0
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
  return (z ^ (z >>> 16)) >>> 0
}

export interface Random {
  /** Uniform in [0, 1). */
  readonly next: () => number
  /** Uniform integer in [0, bound). */
  readonly below: (bound: number) => number
  /** Exponentially distributed with the given mean: the gap between events of a Poisson process. */
  readonly exponential: (mean: number) => number
  /** Shuffles in place (Fisher-Yates) and returns the array. */
  readonly shuffle: <A>(items: Array<A>) => Array<A>
}

export const makeRandom = (seed: number): Random => {
  let a = mix32(seed)
  let b = mix32(a)
  let c = mix32(b)
  let d = mix32(c)
  const next = () => {
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0
    const t = b << 9
    c ^= a
    d ^= b
    b ^= c
    a ^= d
    c ^= t
    d = rotl(d, 11)
    return result / 4294967296
  }
  const below = (bound: number) => Math.floor(next() * bound)
  return {
    next,
    below,
    exponential: (mean) => -mean * Math.log(1 - next()),
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = below(i + 1)
        const held = items[i]!
        items[i] = items[j]!
        items[j] = held
      }
      return items
    }
  }
}

const rotl = (x: number, k: number) => (x << k) | (x >>> (32 - k))

/**
 * One-way latency of the link between two peers, in ms: lognormal with the given median and sigma (of
 * the underlying normal), the same in both directions and whenever the pair is asked about.
 */
export const pairLatency = (seed: number, a: number, b: number, medianMs: number, sigma: number): number => {
  const low = Math.min(a, b)
  const high = Math.max(a, b)
  const h1 = mix32(mix32(seed ^ Math.imul(low, 0x27d4eb2d)) ^ Math.imul(high, 0x165667b1))
  const h2 = mix32(h1 ^ 0x5bd1e995)
  // Box-Muller from two uniforms in (0, 1].
  const u1 = (h1 + 1) / 4294967297
  const u2 = h2 / 4294967296
  const normal = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
  return medianMs * Math.exp(sigma * normal)
}
