/**
 * The ledger's RPC contract: what a client (the CLI, another service, later another node) may ask of
 * a node's ledger. Amounts travel as decimal strings (Schema.BigInt), never as floats.
 */
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Authority, operator, owner, SignedCommands, signedFields } from "../../domain/CommandAuthority.js"
import { AccountId, OperationId, PositiveCredits } from "../../domain/Money.js"
import { Sequenced } from "../../domain/Sequencing.js"
import { VersionConflict } from "../../events/Journal.js"
import { Balance, TransferReceipt } from "./Ledger.js"
import { LedgerError } from "./LedgerErrors.js"

/** What a ledger command can fail with: a domain error, or a stream that kept moving under it. */
export const LedgerFailure = Schema.Union(LedgerError, VersionConflict)

export class LedgerRpcs extends RpcGroup.make(
  Rpc.make("LedgerBalance", { payload: { account: AccountId }, success: Balance }),
  Rpc.make("LedgerMint", {
    payload: {
      account: AccountId,
      amount: PositiveCredits,
      operationId: Schema.optional(OperationId),
      ...signedFields
    },
    success: Balance,
    error: LedgerFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("LedgerTransfer", {
    payload: {
      from: AccountId,
      to: AccountId,
      amount: PositiveCredits,
      transferId: Schema.optional(OperationId),
      ...signedFields
    },
    success: TransferReceipt,
    error: LedgerFailure
  }).middleware(SignedCommands).annotate(Authority, owner("from")),
  Rpc.make("LedgerHold", {
    payload: { account: AccountId, holdId: OperationId, amount: PositiveCredits, ...signedFields },
    success: Balance,
    error: LedgerFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("LedgerRelease", {
    payload: { account: AccountId, holdId: OperationId, ...signedFields },
    success: Balance,
    error: LedgerFailure
  }).middleware(SignedCommands).annotate(Authority, operator),
  Rpc.make("LedgerCapture", {
    payload: { account: AccountId, holdId: OperationId, to: AccountId, amount: PositiveCredits, ...signedFields },
    success: Balance,
    error: LedgerFailure
  }).middleware(SignedCommands).annotate(Authority, operator)
).middleware(Sequenced) {}
