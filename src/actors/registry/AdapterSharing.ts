/**
 * Who may share an adapter through the registry (model-distribution seed 10.2): a publisher whose
 * reputation is above the bar, at most so many shares per hour, and an adapter whose quality score
 * reaches the minimum; the manifest's signature is required as for every publication. The bars are
 * network parameters owned by the registry, so governance can move them; the node answers the gate
 * from the economy (layers/Economy.ts). A registry without it (a library user's, or a test's) publishes
 * adapters as it publishes models.
 */
import type { Effect } from "effect"
import { Context } from "effect"

export const SHARE_WINDOW_MS = 3_600_000

export interface SharingRules {
  readonly minReputationPpm: bigint
  readonly sharesPerHour: number
  readonly minQualityPpm: bigint
}

export interface SharingRequest {
  /** The publisher's reputation now, in ppm, of the account its key owns. */
  readonly reputationPpm: bigint
  /** Adapters the publisher shared in the hour before this one. */
  readonly sharesInWindow: number
  /** The manifest's `adapter.quality`, in 0..1. */
  readonly quality: number | undefined
}

const ppm = (value: bigint) => (Number(value) / 1e6).toFixed(2)

/** Why the rules refuse the request, or undefined when they allow it. */
export const sharingProblem = (rules: SharingRules, request: SharingRequest): string | undefined => {
  if (request.reputationPpm <= rules.minReputationPpm) {
    return `reputation ${ppm(request.reputationPpm)} is not above ${ppm(rules.minReputationPpm)}`
  }
  if (request.sharesInWindow >= rules.sharesPerHour) {
    return `already shared ${request.sharesInWindow} adapters in the last hour (at most ${rules.sharesPerHour})`
  }
  if (request.quality === undefined) {
    return `the manifest has no adapter.quality score (at least ${ppm(rules.minQualityPpm)} required)`
  }
  if (request.quality * 1e6 < Number(rules.minQualityPpm)) {
    return `quality ${request.quality.toFixed(2)} is below ${ppm(rules.minQualityPpm)}`
  }
  return undefined
}

/** The rules in force and the publisher's reputation, as the registry asks for them. */
export class AdapterSharingGate extends Context.Tag("edge-net/AdapterSharingGate")<AdapterSharingGate, {
  readonly rules: Effect.Effect<SharingRules>
  /** Reputation of the publisher's account (derived from its public key). */
  readonly reputationPpm: (account: string) => Effect.Effect<bigint>
}>() {}
