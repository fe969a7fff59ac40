/**
 * What governance sets in motion in other subsystems: an executed proposal becomes a SetParameter
 * command to the parameter's owner, which applies it (or refuses it) and records the proposal id.
 */
import { Effect, Schema } from "effect"
import type { Envelope } from "../../events/Envelope.js"
import * as Policy from "../../events/Policy.js"
import { NetworkParameters } from "../economy/NetworkParameters.js"
import { Proposal, ProposalExecuted } from "./Proposal.js"

export const parameterChangesPolicyName = "governance.parameter-changes"

const decodeExecuted = Schema.decodeUnknown(ProposalExecuted)

/**
 * Sends one executed proposal's change to its owner. The command id comes from the event's position,
 * so a redelivered event changes nothing. A change the owner refuses is logged and skipped: its checks
 * already ran when the proposal was made, and retrying could never make it pass.
 */
export const applyExecutedProposal = (envelope: Envelope) =>
  Effect.gen(function*() {
    const parameters = yield* NetworkParameters
    const executed = yield* Effect.orDie(decodeExecuted(envelope.payload))
    yield* parameters.set(executed.parameter, executed.value, {
      proposalId: executed.proposalId,
      commandId: Policy.commandIdFor(parameterChangesPolicyName, envelope)
    }).pipe(
      Effect.catchTag("InvalidParameter", (refused) =>
        Effect.logError(`proposal ${executed.proposalId} was executed but its change was refused: ${refused.message}`)),
      Effect.asVoid
    )
  }).pipe(Effect.withSpan("GovernancePolicies.applyExecutedProposal"))

export const parameterChangesPolicyDefinition: Policy.PolicyDefinition<NetworkParameters> = {
  name: parameterChangesPolicyName,
  categories: [Proposal.category],
  eventTypes: ["ProposalExecuted"],
  handle: applyExecutedProposal
}

/** The policy as a background layer, on the NetworkParameters instance the node already runs. */
export const parameterChangesPolicy = Policy.layer(parameterChangesPolicyDefinition)
