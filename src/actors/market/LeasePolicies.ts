/**
 * What a lease's outcome means for the winner beyond the money: a completed lease raises its
 * reputation; a lease failed for the winner's fault (incorrect result, timeout) slashes its stake and
 * lowers its reputation. Command ids come from the event's position, so a redelivery changes nothing.
 */
import { Effect, Schema } from "effect"
import { streamEntityId } from "../../domain/Ids.js"
import type { Envelope } from "../../events/Envelope.js"
import * as Policy from "../../events/Policy.js"
import { Reputation } from "../economy/ReputationService.js"
import type { SlashReason } from "../economy/StakeService.js"
import { Staking } from "../economy/StakeService.js"
import { LeaseCompleted, LeaseFailed, TaskAuction } from "./TaskAuction.js"

export const LEASE_OUTCOMES = "market.lease-outcomes"

const decodeOutcome = Schema.decodeUnknown(Schema.Union(LeaseCompleted, LeaseFailed))

/** The offence a failed lease proves; an unfunded lease is the poster's doing, not the winner's. */
const slashReasonOf = (reason: typeof LeaseFailed.Type["reason"]): SlashReason | undefined =>
  reason === "incorrectResult" ? "IncorrectResult" : reason === "challengeTimeout" ? "ChallengeTimeout" : undefined

/** The reputation task id of an auction's lease: one outcome per auction. */
export const leaseTaskIdOf = (auctionId: string) => `auction.${auctionId}`

export const applyLeaseOutcome = (envelope: Envelope) =>
  Effect.gen(function*() {
    const staking = yield* Staking
    const reputation = yield* Reputation
    const auctionId = streamEntityId(envelope.streamId)
    const outcome = yield* Effect.orDie(decodeOutcome(envelope.payload))
    if (outcome._tag === "LeaseCompleted") {
      yield* reputation.recordSuccess(outcome.winner, 1, leaseTaskIdOf(auctionId))
      return
    }
    const reason = slashReasonOf(outcome.reason)
    if (reason === undefined) return
    yield* staking.slash(
      outcome.winner,
      reason,
      `auction ${auctionId}: lease failed (${outcome.reason}) at position ${envelope.position}`,
      Policy.commandIdFor(LEASE_OUTCOMES, envelope, "slash")
    )
    yield* reputation.recordFailure(outcome.winner, 1, leaseTaskIdOf(auctionId))
  }).pipe(Effect.withSpan("LeasePolicies.applyLeaseOutcome"))

/** LeaseCompleted -> reputation success; LeaseFailed (winner's fault) -> slash + reputation failure. */
export const leaseOutcomesPolicyDefinition: Policy.PolicyDefinition<Reputation | Staking> = {
  name: LEASE_OUTCOMES,
  categories: [TaskAuction.category],
  eventTypes: ["LeaseCompleted", "LeaseFailed"],
  handle: applyLeaseOutcome
}

export const leaseOutcomesPolicy = Policy.layer(leaseOutcomesPolicyDefinition)
