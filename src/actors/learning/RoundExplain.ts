/**
 * Why a federated round ended as it did, told from its own events alone: what it started from and by
 * which rule, who submitted what, and for each update whether it counted and why.
 */
import { Schema } from "effect"
import { RoundEvent } from "./FederatedRound.js"

const decodeEvent = Schema.decodeUnknownSync(RoundEvent)

/** Folds the round's stored payloads (in order) into its facts and a paragraph saying why each update counted or not. */
export const explainRound = (roundId: string, payloads: ReadonlyArray<unknown>) => {
  const sentences: Array<string> = []
  const facts: Record<string, unknown> = { roundId }
  const submitted: Array<{ peer: string; digest: string; samples: number }> = []
  for (const payload of payloads) {
    const event = decodeEvent(payload)
    switch (event._tag) {
      case "RoundOpened": {
        const { spec } = event
        facts.spec = spec
        const rule = spec.rule._tag === "trimmed-mean"
          ? `trimmed mean (trim ${spec.rule.trim})`
          : spec.rule._tag === "krum"
          ? `Krum (f = ${spec.rule.attackers})`
          : spec.rule._tag === "multi-krum"
          ? `Multi-Krum (f = ${spec.rule.attackers}, m = ${spec.rule.selected})`
          : spec.rule._tag
        sentences.push(
          `Round ${roundId} was opened by ${spec.coordinator} on adapter ${spec.base.id}@${spec.base.version} (checksum ${
            spec.base.checksum.slice(0, 19)
          }) of ${spec.base.baseModel} for task "${spec.task}", to be aggregated by ${rule} once ${spec.quorum} update(s) arrive, taking updates until ${
            new Date(spec.deadline).toISOString()
          }.`
        )
        break
      }
      case "UpdateSubmitted":
        submitted.push({ peer: event.peer, digest: event.digest, samples: event.samples })
        sentences.push(
          `${event.peer} submitted update ${event.digest.slice(0, 12)} trained on ${event.samples} samples.`
        )
        break
      case "RoundAggregated": {
        facts.outcome = event
        const kept = event.verdicts.filter((verdict) => verdict.kept)
        sentences.push(
          `It was aggregated by ${event.rule}: ${kept.length} of ${event.verdicts.length} updates counted (${event.samples} samples), stored as ${event.result.id}@${event.result.version}.`
        )
        for (const verdict of event.verdicts) {
          sentences.push(`${verdict.peer}'s update ${verdict.kept ? "counted" : "was excluded"}: ${verdict.reason}.`)
        }
        break
      }
      case "RoundClosed":
        facts.closed = event.reason
        sentences.push(`It closed: ${event.reason}.`)
    }
  }
  facts.updates = submitted
  return { why: sentences.join(" "), facts }
}
