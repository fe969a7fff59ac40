/**
 * Network simulation benchmark: heads spread by gossipsub and feeds followed by 100, 1,000 and 10,000
 * simulated peers (5% of them lying, 5% churning per minute), timed against the shortest-path bound on
 * the same graph, with the bytes each peer sends against naive flooding of the same heads.
 */
import type { SimulationResult } from "../src/net/sim/Model.js"
import type { SimulationSettings } from "../src/net/sim/Simulation.js"
import { simulate } from "../src/net/sim/Simulation.js"
import { report, time } from "./Report.js"

export const SCALES = [100, 1_000, 10_000] as const

/** The network every scale runs: today's defaults (10 writers, each peer following 2 feeds from their source). */
export const scaleSettings = (peers: number): SimulationSettings => ({
  seed: 2025,
  peers,
  liarFraction: 0.05,
  churnPerMinute: 0.05,
  // Meshes form within a few heartbeats, and every head has reached every peer within a second or two.
  warmupMs: 5_000,
  durationMs: 20_000,
  horizonMs: 5_000
})

export interface SimulationRun {
  readonly label: string
  readonly result: SimulationResult
  /** Wall-clock seconds the simulation took on this machine. */
  readonly seconds: number
}

const runOne = async (label: string, settings: SimulationSettings): Promise<SimulationRun> => {
  let result: SimulationResult | undefined
  const seconds = await time(() => (result = simulate(settings)))
  return { label, result: result!, seconds }
}

/** Every run this benchmark makes: the scales, then the variants that show where the design strains. */
export const plannedRuns: ReadonlyArray<{ readonly label: string; readonly settings: SimulationSettings }> = [
  ...SCALES.map((peers) => ({ label: `${peers} peers`, settings: scaleSettings(peers) })),
  // Pulling from neighbours that hold the feed, instead of every follower asking the source.
  { label: "1000 peers, pull from holders", settings: { ...scaleSettings(1_000), pullFrom: "holders" } },
  // Every peer re-announcing its (unmoving) head every 5 s, as PeerNode's forced tick does today.
  ...[100, 400].map((peers) => ({
    label: `${peers} peers, every peer announces`,
    settings: { ...scaleSettings(peers), announcers: "all", durationMs: 10_000, measureEvery: 10 } as const
  }))
]

/** Runs every planned simulation in order, handing each result over as soon as it is there; returns them all, raw. */
export const simulationRuns = async (
  onRun: (run: SimulationRun) => void = () => undefined
): Promise<ReadonlyArray<SimulationRun>> => {
  const runs: Array<SimulationRun> = []
  for (const { label, settings } of plannedRuns) {
    const run = await runOne(label, settings)
    runs.push(run)
    onRun(run)
  }
  return runs
}

const kB = (bytes: number) => bytes / 1_000

export const printRun = ({ label, result, seconds }: SimulationRun) => {
  const r = result
  report(`${label}: head to 50% of peers (median head)`, "ms", r.toHalf.p50, r.boundHalf.p50, "shortest path")
  report(`${label}: head to 99% (median head)`, "ms", r.to99.p50, r.bound99.p50, "shortest path")
  report(`${label}: head to 100% (slowest head)`, "ms", r.toAll.max, r.boundAll.max, "shortest path")
  report(`${label}: gossip sent per peer (mean)`, "kB/s", kB(r.gossipSent.mean), kB(r.floodSent.mean), "flooding")
  report(`${label}: gossip sent per peer (max)`, "kB/s", kB(r.gossipSent.max), kB(r.floodSent.max), "flooding")
  report(
    `${label}: received per peer (mean)`,
    "kB/s",
    kB(r.gossipReceived.mean + r.pullReceived.mean),
    kB(r.floodSent.mean),
    "flooding"
  )
  report(`${label}: feed upload, busiest peer`, "kB/s", kB(r.pullSent.max), kB(r.pullSent.mean), "mean peer")
  report(`${label}: follow lag (median)`, "ms", r.followLag.p50, r.toHalf.p50, "head to 50%")
  report(`${label}: follow lag (p99)`, "ms", r.followLag.p99, r.to99.p50, "head to 99%")
  console.log(
    `${label}: ${r.headsMeasured} heads, coverage ${(100 * r.coverage).toFixed(1)}%, mean degree ${
      r.meanDegree.toFixed(1)
    }, ${r.delivered} delivered, ${r.duplicates} duplicates, forged ${r.forgedRejected} rejected / ${r.forgedDelivered} delivered / ${r.forgedForwarded} forwarded, liars graylisted ${r.liarsGraylisted}/${r.liars}, refused pulls ${r.refusedPulls}, follows caught up ${
      (100 * r.followsCaughtUp).toFixed(1)
    }%, ${r.eventsProcessed} events in ${seconds.toFixed(1)} s`
  )
}

export const runSimulation = async (): Promise<void> => {
  await simulationRuns(printRun)
}
