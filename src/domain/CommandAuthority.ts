/**
 * Who may send a command, declared on its RPC contract: the owner of an account the payload names,
 * the network's operators, or any key. The SignedCommands middleware checks it before the handler runs.
 */
import { RpcMiddleware } from "@effect/rpc"
import { Context, Schema } from "effect"
import { CommandAuth } from "./SignedCommand.js"

/**
 * The signer's account id must equal each payload field in `owners`; with `operator`, the command's
 * signatures must also include as many operator keys (named at genesis) as the threshold asks. With
 * neither, any valid key may send it and the command's own rules decide (resolving an auction).
 */
export interface AuthorityRule {
  readonly owners: ReadonlyArray<string>
  readonly operator: boolean
}

export const owner = (...owners: ReadonlyArray<string>): AuthorityRule => ({ owners, operator: false })
export const operator: AuthorityRule = { owners: [], operator: true }
/** The operators, acting on an account of their own (seeding the pool from the operator's account). */
export const operatorOwning = (...owners: ReadonlyArray<string>): AuthorityRule => ({ owners, operator: true })
export const anyKey: AuthorityRule = { owners: [], operator: false }

export class Authority extends Context.Tag("edge-net/Authority")<Authority, AuthorityRule>() {}

/** The field every signed command's payload carries; optional in the Schema so that its absence is our error, not a decode error. */
export const signedFields = { auth: Schema.optional(CommandAuth) }

export const RefusalReason = Schema.Literal(
  "unsigned",
  "bad-signature",
  "not-owner",
  "not-operator",
  "expired",
  "too-far-ahead",
  "wrong-network",
  "rate-limited",
  "too-large"
)
export type RefusalReason = typeof RefusalReason.Type

export class CommandRefused extends Schema.TaggedError<CommandRefused>()("CommandRefused", {
  command: Schema.String,
  reason: RefusalReason,
  detail: Schema.String
}) {
  override get message() {
    return `${this.command} refused: ${this.detail}`
  }
}

/** Verifies a command's signature, expiry, network and authority, then runs it with its signature recorded. */
export class SignedCommands extends RpcMiddleware.Tag<SignedCommands>()("edge-net/SignedCommands", {
  wrap: true,
  failure: CommandRefused
}) {}
