/**
 * Push-sum gossip: on a ring and on a random graph, every peer's model converges to the weighted mean
 * (samples × reputation) with no coordinator, the total weight is conserved, and a seed reproduces a run.
 */
import { describe, expect, it } from "@effect/vitest"
import { PushSumGossip } from "../../../src/compute/learning/Gossip.js"

const peers = Array.from({ length: 8 }, (_, i) => ({
  id: `peer-${i}`,
  samples: 10 + 5 * i,
  reputation: i === 7 ? 0 : i === 6 ? 0.5 : 1,
  vector: Float32Array.from([i, -2 * i, i * i])
}))

const weightedMean = () => {
  const weights = peers.map((peer) => peer.samples * peer.reputation)
  const total = weights.reduce((a, b) => a + b, 0)
  return [0, 1, 2].map((d) => peers.reduce((sum, peer, i) => sum + weights[i]! * peer.vector[d]!, 0) / total)
}

describe("push-sum gossip", () => {
  it("converges to the weighted mean on a ring, conserving the total weight", () => {
    const ring = (i: number) => [(i + 7) % 8, (i + 1) % 8]
    const gossip = new PushSumGossip(peers, { fanout: 1, seed: 9, neighbours: ring })
    const total = peers.reduce((sum, peer) => sum + peer.samples * peer.reputation, 0)
    const target = weightedMean()
    const spread = () =>
      Math.max(...peers.map((_, i) => Math.max(...target.map((t, d) => Math.abs(gossip.estimate(i)[d]! - t)))))
    const before = spread()
    for (let step = 0; step < 300; step++) gossip.step()
    expect(before).toBeGreaterThan(10)
    expect(spread()).toBeLessThan(1e-4)
    expect(peers.reduce((sum, _, i) => sum + gossip.weightOf(i), 0)).toBeCloseTo(total, 9)
    expect(gossip.messages).toBe(300 * 8)
  })

  it("converges faster with more neighbours, and a seed reproduces the run", () => {
    const run = (fanout: number, seed: number) => {
      const gossip = new PushSumGossip(peers, { fanout, seed })
      for (let step = 0; step < 12; step++) gossip.step()
      return peers.map((_, i) => [...gossip.estimate(i)])
    }
    const error = (estimates: Array<Array<number>>) =>
      Math.max(...estimates.flatMap((estimate) => estimate.map((value, d) => Math.abs(value - weightedMean()[d]!))))
    expect(run(2, 4)).toEqual(run(2, 4))
    expect(run(2, 4)).not.toEqual(run(2, 5))
    expect(error(run(3, 4))).toBeLessThan(error(run(1, 4)))
    expect(error(run(3, 4))).toBeLessThan(1e-2)
  })

  it("moves the network's mean by FedAvg's step when peers train, whatever weight mixing left them", () => {
    const gossip = new PushSumGossip(peers, { fanout: 2, seed: 3 })
    for (let step = 0; step < 5; step++) gossip.step()
    // Each peer trains from its estimate by its own change; FedAvg would move the mean by Σ w_i Δ_i / Σ w_i.
    const changes = peers.map((_, i) => Float32Array.from([1 + i, -i, 0.5 * i]))
    const weights = peers.map((peer) => peer.samples * peer.reputation)
    const total = weights.reduce((a, b) => a + b, 0)
    const step = [0, 1, 2].map((d) => changes.reduce((sum, change, i) => sum + weights[i]! * change[d]!, 0) / total)
    const target = weightedMean().map((mean, d) => mean + step[d]!)
    peers.forEach((_, i) => {
      const from = gossip.estimate(i)
      gossip.advance(i, from.map((value, d) => value + changes[i]![d]!))
    })
    for (let round = 0; round < 300; round++) gossip.step()
    for (const [i] of peers.entries()) {
      if (weights[i] === 0) continue
      gossip.estimate(i).forEach((value, d) => expect(value).toBeCloseTo(target[d]!, 3))
    }
    expect(() => gossip.advance(0, new Float32Array(2))).toThrow("peer-0 trained 2 values, not 3")
  })

  it("refuses bad peers in one line", () => {
    expect(() => new PushSumGossip([], { fanout: 1, seed: 0 })).toThrow("gossip needs peers, got none")
    expect(() => new PushSumGossip(peers, { fanout: 0, seed: 0 })).toThrow(
      "fanout is a whole number of neighbours, 1 or more, not 0"
    )
  })
})
