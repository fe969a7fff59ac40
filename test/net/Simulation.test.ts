/**
 * The network simulation: a seed names one run, heads reach every honest peer of a connected network,
 * forged heads stop at validation, churn does not keep heads from spreading, and on a line or a star
 * with fixed latency the propagation time is the one worked out by hand.
 */
import { describe, expect, it } from "@effect/vitest"
import { simulate } from "../../src/net/sim/Simulation.js"

/** A short run: meshes form in the warm-up, heads are measured over ten seconds. */
const short = { warmupMs: 5_000, durationMs: 10_000, horizonMs: 5_000 } as const

describe("network simulation", () => {
  it("gives the same figures for the same seed, and other figures for another", () => {
    const settings = { ...short, peers: 200, liarFraction: 0.05, churnPerMinute: 0.2, pullFrom: "holders" } as const
    const first = simulate({ ...settings, seed: 7 })
    const again = simulate({ ...settings, seed: 7 })
    const other = simulate({ ...settings, seed: 8 })
    expect(again).toEqual(first)
    expect(first.eventsProcessed).toBeGreaterThan(10_000)
    expect(other.gossipSent.mean).not.toEqual(first.gossipSent.mean)
  })

  it("brings every head to every honest peer of a connected network, no faster than the shortest path", () => {
    const result = simulate({ ...short, peers: 500, seed: 3 })
    expect(result.headsMeasured).toBeGreaterThan(20)
    expect(result.coverage).toBe(1)
    expect(Number.isFinite(result.toAll.max)).toBe(true)
    expect(result.toHalf.p50).toBeGreaterThanOrEqual(result.boundHalf.p50)
    expect(result.toAll.p50).toBeGreaterThanOrEqual(result.boundAll.p50)
    // A mesh of degree 6 costs less than flooding over ~20 connections, and every follower caught up.
    expect(result.gossipSent.mean).toBeLessThan(result.floodSent.mean)
    expect(result.followsCaughtUp).toBe(1)
    expect(result.forgedRejected).toBe(0)
  })

  it("stops forged heads at validation: none delivered or passed on, liars graylisted, honest peers converge", () => {
    const result = simulate({ ...short, peers: 400, seed: 5, liarFraction: 0.1, pullFrom: "holders" })
    expect(result.liars).toBe(40)
    expect(result.forgedRejected).toBeGreaterThan(100)
    expect(result.forgedDelivered).toBe(0)
    expect(result.forgedForwarded).toBe(0)
    expect(result.liarsGraylisted).toBeGreaterThan(result.liars / 2)
    // Liars forward nothing and refuse to serve what they claim to hold; heads and feeds still arrive.
    expect(result.coverage).toBe(1)
    expect(result.refusedPulls).toBeGreaterThan(0)
    expect(result.followsCaughtUp).toBe(1)
  })

  it("keeps heads spreading while a fifth of the peers leave and come back every minute", () => {
    const result = simulate({ ...short, peers: 400, seed: 9, churnPerMinute: 0.2, meanOfflineMs: 5_000 })
    expect(result.headsMeasured).toBeGreaterThan(20)
    expect(result.coverage).toBeGreaterThanOrEqual(0.95)
    expect(Number.isFinite(result.to99.max)).toBe(true)
    expect(result.followsCaughtUp).toBeGreaterThanOrEqual(0.95)
  })

  it("takes hops x (latency + signature check) on a line and on a star with fixed latency", () => {
    const exact = { ...short, latencyMedianMs: 40, latencySigma: 0, validationMs: 0.5, writers: 1 } as const
    const line = simulate({ ...exact, topology: "line", peers: 30, seed: 11 })
    const source = line.writerPeers[0]!
    const farthest = Math.max(source, 29 - source)
    expect(line.coverage).toBe(1)
    expect(line.toAll.max).toBeCloseTo(farthest * 40.5, 6)
    expect(line.toAll.p50).toBeCloseTo(farthest * 40.5, 6)
    expect(line.boundAll.max).toBeCloseTo(farthest * 40.5, 6)

    // Twelve leaves: the hub's mesh holds them all (Dhi 12), so every head is pushed, not gossiped.
    const star = simulate({ ...exact, topology: "star", peers: 13, seed: 12 })
    const hub = star.writerPeers[0] === 0
    expect(star.coverage).toBe(1)
    expect(star.toAll.max).toBeCloseTo(hub ? 40.5 : 81, 6)
    expect(star.toHalf.max).toBeCloseTo(hub ? 40.5 : 81, 6)
  })
})
