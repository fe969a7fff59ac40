/**
 * How the benchmark's peers get their data: seeded draws (normal, Gamma, shuffles), a Dirichlet split
 * over labels (the usual non-IID benchmark: each class spread over peers by Dirichlet(α) proportions, small
 * α giving peers that hold mostly one class) and a split by sender domain (each organization keeps its
 * own mail, a non-IID split that comes from the data itself).
 */
import { SeededRandom } from "../../src/compute/lora/Adapter.js"
import type { ClassificationSample } from "../../src/compute/lora/train/Objectives.js"

/** A standard normal draw (Box–Muller). */
export const normal = (random: SeededRandom): number =>
  Math.sqrt(-2 * Math.log(1 - random.uniform())) * Math.cos(2 * Math.PI * random.uniform())

/** A Gamma(shape, 1) draw (Marsaglia & Tsang; shape < 1 through Gamma(shape + 1) · U^(1/shape)). */
const gamma = (shape: number, random: SeededRandom): number => {
  if (shape < 1) return gamma(shape + 1, random) * random.uniform() ** (1 / shape)
  const d = shape - 1 / 3
  const c = 1 / Math.sqrt(9 * d)
  for (;;) {
    let x: number
    let v: number
    do {
      x = normal(random)
      v = 1 + c * x
    } while (v <= 0)
    v = v * v * v
    const u = random.uniform()
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v
  }
}

export const shuffled = <T>(items: ReadonlyArray<T>, random: SeededRandom): Array<T> => {
  const copy = [...items]
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1))
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }
  return copy
}

/**
 * Each class's samples spread over `peers` by proportions drawn from Dirichlet(alpha), redrawn until
 * every peer holds at least `minimum` samples. Returns the peers' samples and the draws it took.
 */
export const dirichletSplit = (
  samples: ReadonlyArray<ClassificationSample>,
  peers: number,
  alpha: number,
  seed: number,
  minimum: number
): { readonly parts: Array<Array<ClassificationSample>>; readonly attempts: number } => {
  const random = new SeededRandom(seed)
  const classes = [...new Set(samples.map((sample) => sample.label))].sort()
  for (let attempt = 1; attempt <= 1000; attempt++) {
    const parts = Array.from({ length: peers }, (): Array<ClassificationSample> => [])
    for (const label of classes) {
      const members = shuffled(samples.filter((sample) => sample.label === label), random)
      const draws = Array.from({ length: peers }, () => gamma(alpha, random))
      const total = draws.reduce((a, b) => a + b, 0)
      let cumulative = 0
      let start = 0
      draws.forEach((draw, peer) => {
        cumulative += draw / total
        const end = peer === peers - 1 ? members.length : Math.round(cumulative * members.length)
        for (const member of members.slice(start, end)) parts[peer]!.push(member)
        start = end
      })
    }
    if (parts.every((part) => part.length >= minimum)) {
      return { parts: parts.map((part) => shuffled(part, random)), attempts: attempt }
    }
  }
  throw new Error(`no Dirichlet(${alpha}) split gave every peer ${minimum} samples in 1000 draws`)
}

/**
 * Whole sender domains to peers, as organizations hold their own mail: largest domain first (ties in a
 * seeded order), each to the peer holding the fewest samples so far. Returns the parts and the number
 * of domains behind each.
 */
export const domainSplit = (
  samples: ReadonlyArray<ClassificationSample>,
  domains: ReadonlyArray<string>,
  peers: number,
  seed: number
): { readonly parts: Array<Array<ClassificationSample>>; readonly domainsPerPeer: Array<number> } => {
  const byDomain = new Map<string, Array<ClassificationSample>>()
  samples.forEach((sample, index) => {
    const domain = domains[index] || "(none)"
    const members = byDomain.get(domain) ?? []
    members.push(sample)
    byDomain.set(domain, members)
  })
  const order = shuffled([...byDomain.keys()].sort(), new SeededRandom(seed))
  order.sort((a, b) => byDomain.get(b)!.length - byDomain.get(a)!.length)
  const parts = Array.from({ length: peers }, (): Array<ClassificationSample> => [])
  const domainsPerPeer = new Array<number>(peers).fill(0)
  for (const domain of order) {
    const smallest = parts.reduce((best, part, index) => (part.length < parts[best]!.length ? index : best), 0)
    for (const sample of byDomain.get(domain)!) parts[smallest]!.push(sample)
    domainsPerPeer[smallest]!++
  }
  return { parts: parts.map((part) => shuffled(part, new SeededRandom(seed + 1))), domainsPerPeer }
}
