/**
 * The node's gate for every state-changing RPC: a signature over the command, an expiry, this
 * network's id, the authority its contract declares (owner, operators, any key) and a per-key rate.
 * A refused command is one typed line and writes nothing; an accepted one runs with its signature
 * attached, so the journal stores it with the events it caused.
 */
import type { Rpc } from "@effect/rpc"
import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { anyKey, Authority, CommandRefused, SignedCommands } from "../domain/CommandAuthority.js"
import type { RefusalReason } from "../domain/CommandAuthority.js"
import type { CharterTerms } from "../actors/network/Charter.js"
import { checkJsonBounds, DEFAULT_MAX_JSON_DEPTH } from "../domain/CanonicalJson.js"
import { accountIdOf } from "../domain/Ed25519.js"
import type { CommandAuth } from "../domain/SignedCommand.js"
import { storedCommandText, validSigners } from "../domain/SignedCommand.js"
import { withAuthorization } from "../events/Authorization.js"

export interface GateOptions {
  /** How far ahead of the node's clock an expiry may lie (default ten minutes). */
  readonly maxExpiryAheadMs?: number
  /** Commands one key may send per second, sustained (default 1000), and at once after a quiet spell (default 2x). */
  readonly commandsPerSecondPerKey?: number
  /** How deep a command's JSON may nest (default 64) and how large it may be (default 256 KiB). */
  readonly maxDepth?: number
  readonly maxBytes?: number
}

/** Per-key token buckets, at most `capacity` keys remembered (the least recently seen are forgotten). */
const keyBuckets = (perSecond: number, capacity = 65_536) => {
  const buckets = new Map<string, { tokens: number; at: number }>()
  const burst = perSecond * 2
  return (key: string, now: number): boolean => {
    const bucket = buckets.get(key)
    let tokens = burst
    if (bucket !== undefined) {
      buckets.delete(key)
      tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * perSecond) / 1000)
    } else if (buckets.size >= capacity) {
      buckets.delete(buckets.keys().next().value as string)
    }
    const allowed = tokens >= 1
    buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, at: now })
    return allowed
  }
}

/** What the gate reads of an Rpc: its name, its payload's Schema and its authority annotation. */
type GatedRpc = Pick<Rpc.AnyWithProps, "_tag" | "payloadSchema" | "annotations">

export const makeGate = (options: GateOptions = {}) =>
  Effect.gen(function* () {
    const charter = yield* NetworkCharter
    const maxAhead = options.maxExpiryAheadMs ?? 10 * 60_000
    const maxDepth = options.maxDepth ?? DEFAULT_MAX_JSON_DEPTH
    const maxBytes = options.maxBytes ?? 256 * 1024
    const allow = keyBuckets(options.commandsPerSecondPerKey ?? 1000)
    const encoders = new Map<string, (payload: unknown) => unknown>()
    const encoderFor = (rpc: GatedRpc) => {
      let encode = encoders.get(rpc._tag)
      if (encode === undefined) {
        encode = Schema.encodeSync(rpc.payloadSchema as Schema.Schema<unknown, unknown>)
        encoders.set(rpc._tag, encode)
      }
      return encode
    }

    // The charter never changes once recorded: read it once, then from memory.
    let charterTerms: CharterTerms | undefined
    const termsNow = Effect.suspend(() =>
      charterTerms !== undefined
        ? Effect.succeed(charterTerms)
        : Effect.map(Effect.orDie(charter.terms()), (terms) => (charterTerms = Option.getOrUndefined(terms))))

    /** Every check but the clock's and the charter's reading, synchronously: the hot path of every command. */
    const check = (rpc: GatedRpc, payload: unknown, now: number, terms: CharterTerms | undefined): CommandRefused | string => {
      const command = rpc._tag
      const refuse = (reason: RefusalReason, detail: string) => new CommandRefused({ command, reason, detail })
      const { auth, ...fields } = payload as { readonly auth?: CommandAuth } & Record<string, unknown>
      if (auth === undefined) return refuse("unsigned", "the command is not signed (it needs auth: signer, id, expiresAt, network, signature)")
      if (terms === undefined) return refuse("wrong-network", "this node has no network charter yet")
      if (auth.network !== terms.network) return refuse("wrong-network", `signed for network ${auth.network}, this is ${terms.network}`)
      if (auth.expiresAt <= now) return refuse("expired", `expired at ${new Date(auth.expiresAt).toISOString()}`)
      if (auth.expiresAt > now + maxAhead) return refuse("too-far-ahead", `expires more than ${maxAhead / 60_000} minutes ahead`)
      const encoded = encoderFor(rpc)(fields)
      const unbounded = checkJsonBounds(encoded, { maxDepth, maxBytes })
      if (unbounded !== undefined) return refuse("too-large", unbounded.message)
      const signers = validSigners(command, encoded, auth)
      if (signers.length === 0) return refuse("bad-signature", `the signature of ${auth.signer} does not verify`)
      if (!allow(auth.signer, now)) return refuse("rate-limited", `key ${auth.signer} sends too many commands; slow down`)
      const rule = Option.getOrElse(Context.getOption(rpc.annotations, Authority), () => anyKey)
      const account = accountIdOf(signers[0]!)
      for (const field of rule.owners) {
        if (fields[field] !== account) return refuse("not-owner", `${field} ${String(fields[field])} is not the signer's account ${account}`)
      }
      if (rule.operator) {
        const signed = signers.filter((key) => terms.operators.includes(key)).length
        if (signed < terms.threshold) {
          return refuse("not-operator", `needs ${terms.threshold} of the ${terms.operators.length} operator key(s), signed by ${signed}`)
        }
      }
      return storedCommandText(command, encoded, auth)
    }

    /** The stored command text of an accepted command, or its refusal. */
    const gate = (rpc: GatedRpc, payload: unknown): Effect.Effect<string, CommandRefused> =>
      Effect.flatMap(termsNow, (terms) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const verdict = check(rpc, payload, now, terms)
          return typeof verdict === "string" ? Effect.succeed(verdict) : Effect.fail(verdict)
        }))

    return { gate } as const
  })

/** The middleware the node's RPC server runs for every Rpc marked `.middleware(SignedCommands)`. */
export const signedCommandsLayer = (options: GateOptions = {}) =>
  Layer.effect(
    SignedCommands,
    Effect.map(makeGate(options), ({ gate }) =>
      SignedCommands.of(({ next, payload, rpc }) => Effect.flatMap(gate(rpc, payload), (text) => withAuthorization(text)(next))))
  )
