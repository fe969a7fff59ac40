/**
 * Governance's RPC contract: propose a parameter change, vote, queue, execute, cancel, and read
 * proposals. Amounts and parameter values travel as decimal strings (Schema.BigInt), times as ms.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { anyKey, Authority, owner, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { AccountId, Credits } from "../../domain/Money.js"
import { Sequenced } from "../../domain/Sequencing.js"
import { VersionConflict } from "../../events/Journal.js"
import { ParameterNameSchema } from "../economy/ParameterCatalogue.js"
import { ProposalId, ProposalReceipt, ProposalStatus, ProposalSummary, ProposalView, Support } from "./Proposal.js"
import { ProposalError, ProposalNotFound, ProposerWithoutStake } from "./ProposalErrors.js"

/** What a command to a proposal can fail with: a governance rule, missing stake, a writer racing on it. */
export const GovernanceFailure = Schema.Union(ProposalError, ProposerWithoutStake, VersionConflict)

const ProposalRef = { proposalId: ProposalId }

export class GovernanceRpcs extends RpcGroup.make(
  Rpc.make("GovernancePropose", {
    payload: {
      proposer: AccountId,
      parameter: ParameterNameSchema,
      value: Credits,
      description: Schema.String,
      /** Defaults to the digest of the change and its description. */
      proposalId: Schema.optional(ProposalId),
      ...signedFields
    },
    success: ProposalReceipt,
    error: GovernanceFailure
  }).middleware(SignedCommands).annotate(Authority, owner("proposer")),
  Rpc.make("GovernanceVote", {
    payload: { ...ProposalRef, voter: AccountId, support: Support, ...signedFields },
    success: ProposalReceipt,
    error: GovernanceFailure
  }).middleware(SignedCommands).annotate(Authority, owner("voter")),
  Rpc.make("GovernanceQueue", {
    payload: { ...ProposalRef, ...signedFields },
    success: ProposalReceipt,
    error: GovernanceFailure
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("GovernanceExecute", {
    payload: { ...ProposalRef, ...signedFields },
    success: ProposalReceipt,
    error: GovernanceFailure
  }).middleware(SignedCommands).annotate(Authority, anyKey),
  Rpc.make("GovernanceCancel", {
    payload: { ...ProposalRef, by: AccountId, ...signedFields },
    success: ProposalReceipt,
    error: GovernanceFailure
  }).middleware(SignedCommands).annotate(Authority, owner("by")),
  Rpc.make("GovernanceShow", { payload: ProposalRef, success: ProposalView, error: ProposalNotFound }),
  Rpc.make("GovernanceList", {
    payload: { status: Schema.optional(ProposalStatus) },
    success: Schema.Array(ProposalSummary)
  })
).middleware(Sequenced) {}
