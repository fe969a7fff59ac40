/**
 * Handlers of GovernanceRpcs on the Governance service, ready for the node's RPC server to provide
 * (registering them there is the node's business).
 */
import { Effect } from "effect"
import { GovernanceRpcs } from "./GovernanceRpc.js"
import { Governance } from "./GovernanceService.js"

export const GovernanceRpcHandlers = GovernanceRpcs.toLayer(
  Effect.gen(function*() {
    const governance = yield* Governance
    return {
      GovernancePropose: ({ proposer, parameter, value, description, proposalId }) =>
        governance.propose({ proposer, parameter, value, description, proposalId }),
      GovernanceVote: ({ proposalId, voter, support }) => governance.vote(proposalId, voter, support),
      GovernanceQueue: ({ proposalId }) => governance.queue(proposalId),
      GovernanceExecute: ({ proposalId }) => governance.execute(proposalId),
      GovernanceCancel: ({ proposalId, by }) => governance.cancel(proposalId, by),
      GovernanceShow: ({ proposalId }) => governance.show(proposalId),
      GovernanceList: ({ status }) => governance.list({ status })
    }
  })
)
