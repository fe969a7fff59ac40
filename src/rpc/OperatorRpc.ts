/**
 * What only a node's operator does to its market, beside the ledger's mint: issue compute units (the
 * node's capacity) to a provider, who can then seed the pool with liquidity.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { MarketFailure } from "../actors/market/MarketRpc.js"
import { TraderView } from "../actors/market/MarketService.js"
import { Authority, operator, SignedCommands, signedFields } from "../domain/CommandAuthority.js"
import { AccountId, OperationId, PositiveCredits } from "../domain/Money.js"
import { Sequenced } from "../domain/Sequencing.js"

export class OperatorRpcs extends RpcGroup.make(
  Rpc.make("MarketIssueCompute", {
    payload: { node: AccountId, units: PositiveCredits, operationId: OperationId, ...signedFields },
    success: TraderView,
    error: MarketFailure
  }).middleware(SignedCommands).annotate(Authority, operator)
).middleware(Sequenced) {}
