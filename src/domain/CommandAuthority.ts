/**
 * Who may send a command, declared on its RPC contract: the owner of an account the payload names,
 * the network's operators, or any key. The SignedCommands middleware checks it before the handler runs.
 */
import { RpcMiddleware } from "@effect/rpc"
import { Context, Schema } from "effect"
import { CommandAuth } from "./SignedCommand.js"

export type AuthorityRule =
  /** The signer's account id must equal each named payload field. */
  | { readonly _tag: "Owner"; readonly fields: ReadonlyArray<string> }
  /** As many of the operator keys named at genesis as its threshold asks. */
  | { readonly _tag: "Operator" }
  /** Any valid signature: the command's own rules decide (resolving an auction, executing a proposal). */
  | { readonly _tag: "AnyKey" }

export const owner = (...fields: ReadonlyArray<string>): AuthorityRule => ({ _tag: "Owner", fields })
export const operator: AuthorityRule = { _tag: "Operator" }
export const anyKey: AuthorityRule = { _tag: "AnyKey" }

export class Authority extends Context.Tag("edge-net/Authority")<Authority, AuthorityRule>() {}

/** The field every signed command's payload carries; optional in the Schema so that its absence is our error, not a decode error. */
export const signedFields = { auth: Schema.optional(CommandAuth) }

export const RefusalReason = Schema.Literal(
  "unsigned", "bad-signature", "not-owner", "not-operator", "expired", "too-far-ahead", "wrong-network", "rate-limited"
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
