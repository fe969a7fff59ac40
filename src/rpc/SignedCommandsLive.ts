/**
 * The node's gate for every state-changing RPC: a signature over the command, an expiry, this
 * network's id, the authority its contract declares (owner, operators, any key) and a per-key rate.
 * A refused command is one typed line and writes nothing; an accepted one runs with its signature
 * attached, so the journal stores it with the events it caused.
 */
import type { Rpc } from "@effect/rpc"
import { Clock, Context, Effect, Layer, Option, Schema } from "effect"
import type { CharterTerms } from "../actors/network/Charter.js"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { canonicalizeWithin, DEFAULT_MAX_JSON_DEPTH } from "../domain/CanonicalJson.js"
import { anyKey, Authority, CommandRefused, SignedCommands } from "../domain/CommandAuthority.js"
import type { RefusalReason } from "../domain/CommandAuthority.js"
import { accountIdOf, utf8 } from "../domain/Ed25519.js"
import type { CommandAuth } from "../domain/SignedCommand.js"
import { commandMessageOf, signersOf, storedCommandTextOf } from "../domain/SignedCommand.js"
import { Authorization, withAuthorization } from "../events/Authorization.js"
import { makeVerifierPool, type SignatureVerifier } from "../node/VerifierPool.js"

export interface GateOptions {
  /** How far ahead of the node's clock an expiry may lie (default ten minutes). */
  readonly maxExpiryAheadMs?: number
  /** Commands one key may send per second, sustained (default 1000), and at once after a quiet spell (default 2x). */
  readonly commandsPerSecondPerKey?: number
  /** How deep a command's JSON may nest (default 64) and how large it may be (default 256 KiB). */
  readonly maxDepth?: number
  readonly maxBytes?: number
  /** Where signatures are checked (a pool of verifier threads); without one, synchronously on this thread. */
  readonly verifier?: SignatureVerifier | undefined
}

const noSigners: ReadonlyArray<string> = []

/**
 * `validSigners` through a verifier, once the signer's own signature verified (a command it does not
 * verify costs no more checks): every cosigner's at once; a key counts once, the signer first.
 */
const cosignersVerifiedBy = (
  verifier: SignatureVerifier,
  message: string,
  auth: CommandAuth,
  cosigners: ReadonlyArray<{ readonly signer: string; readonly signature: string }>
): Effect.Effect<ReadonlyArray<string>> =>
  Effect.map(
    Effect.forEach(
      cosigners,
      (cosigner) => (cosigner.signer === auth.signer
        ? Effect.succeed(false)
        : verifier.verify(cosigner.signer, message, cosigner.signature)),
      {
        concurrency: "unbounded"
      }
    ),
    (valid) => {
      const signers = [auth.signer]
      cosigners.forEach((cosigner, i) =>
        valid[i] === true && !signers.includes(cosigner.signer) && signers.push(cosigner.signer)
      )
      return signers
    }
  )

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
  Effect.gen(function*() {
    const charter = yield* NetworkCharter
    const verifier = options.verifier
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

    // The charter never changes once recorded: read once, then from memory.
    const termsNow = charter.termsNow

    type Signed = {
      readonly command: string
      readonly fields: Record<string, unknown>
      /** The payload as its Schema encodes it (what the caller signed), and its canonical text. */
      readonly encoded: unknown
      readonly payloadText: string
      /** The signed message (signed as UTF-8). */
      readonly message: string
      readonly auth: CommandAuth
      readonly terms: CharterTerms
    }
    const refuse = (command: string, reason: RefusalReason, detail: string) =>
      new CommandRefused({ command, reason, detail })

    /** The checks before the signature's: signed at all, for this network, in time, within bounds. */
    const checkShape = (
      rpc: GatedRpc,
      payload: unknown,
      now: number,
      terms: CharterTerms | undefined
    ): CommandRefused | Signed => {
      const command = rpc._tag
      const { auth, ...fields } = payload as { readonly auth?: CommandAuth } & Record<string, unknown>
      if (auth === undefined) {
        return refuse(
          command,
          "unsigned",
          "the command is not signed (it needs auth: signer, id, expiresAt, network, signature)"
        )
      }
      if (terms === undefined) return refuse(command, "wrong-network", "this node has no network charter yet")
      if (auth.network !== terms.network) {
        return refuse(command, "wrong-network", `signed for network ${auth.network}, this is ${terms.network}`)
      }
      if (auth.expiresAt <= now) {
        return refuse(command, "expired", `expired at ${new Date(auth.expiresAt).toISOString()}`)
      }
      if (auth.expiresAt > now + maxAhead) {
        return refuse(command, "too-far-ahead", `expires more than ${maxAhead / 60_000} minutes ahead`)
      }
      const encoded = encoderFor(rpc)(fields)
      // Checked and written in one walk: the canonical payload text is both signed and stored.
      const payloadText = canonicalizeWithin(encoded, { maxDepth, maxBytes })
      if (typeof payloadText !== "string") {
        return refuse(command, "too-large", payloadText.message)
      }
      return {
        command,
        fields,
        encoded,
        payloadText,
        message: commandMessageOf(command, payloadText, auth),
        auth,
        terms
      }
    }

    /** The checks after it, given the keys whose signatures verify (the signer first): rate, owner, operators. */
    const checkAuthority = (
      rpc: GatedRpc,
      signed: Signed,
      signers: ReadonlyArray<string>,
      now: number
    ): CommandRefused | Authorization => {
      const { auth, command, encoded, fields, payloadText, terms } = signed
      if (signers.length === 0) {
        return refuse(command, "bad-signature", `the signature of ${auth.signer} does not verify`)
      }
      if (!allow(auth.signer, now)) {
        return refuse(command, "rate-limited", `key ${auth.signer} sends too many commands; slow down`)
      }
      const rule = Option.getOrElse(Context.getOption(rpc.annotations, Authority), () => anyKey)
      const account = accountIdOf(signers[0]!)
      for (const field of rule.owners) {
        if (fields[field] !== account) {
          return refuse(
            command,
            "not-owner",
            `${field} ${String(fields[field])} is not the signer's account ${account}`
          )
        }
      }
      if (rule.operator) {
        const count = signers.filter((key) => terms.operators.includes(key)).length
        if (count < terms.threshold) {
          return refuse(
            command,
            "not-operator",
            `needs ${terms.threshold} of the ${terms.operators.length} operator key(s), signed by ${count}`
          )
        }
      }
      return Authorization.unsafeCanonical(storedCommandTextOf(command, payloadText, auth), {
        auth,
        command,
        payload: encoded
      })
    }

    const verdictOf = (verdict: CommandRefused | Authorization): Effect.Effect<Authorization, CommandRefused> =>
      verdict instanceof Authorization ? Effect.succeed(verdict) : Effect.fail(verdict)

    /** The accepted command as the journal stores it, or its refusal. */
    const gate = (rpc: GatedRpc, payload: unknown): Effect.Effect<Authorization, CommandRefused> =>
      Effect.flatMap(termsNow, (terms) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const signed = checkShape(rpc, payload, now, terms)
          if (signed instanceof CommandRefused) return Effect.fail(signed)
          const { auth, message } = signed
          if (verifier === undefined) {
            return verdictOf(checkAuthority(rpc, signed, signersOf(utf8(message), auth), now))
          }
          return Effect.flatMap(verifier.verify(auth.signer, message, auth.signature), (signerValid) => {
            if (!signerValid) return verdictOf(checkAuthority(rpc, signed, noSigners, now))
            const cosigners = auth.cosigners
            if (cosigners === undefined || cosigners.length === 0) {
              return verdictOf(checkAuthority(rpc, signed, [auth.signer], now))
            }
            return Effect.flatMap(
              cosignersVerifiedBy(verifier, message, auth, cosigners),
              (signers) => verdictOf(checkAuthority(rpc, signed, signers, now))
            )
          })
        }))

    return { gate } as const
  })

/**
 * The middleware the node's RPC server runs for every Rpc marked `.middleware(SignedCommands)`.
 * Signatures are checked on a pool of verifier threads (`verifierThreads`, default one fewer than the
 * cores), stopped with the layer; `verifierThreads: 0` checks them on this thread.
 */
export const signedCommandsLayer = (options: GateOptions & { readonly verifierThreads?: number } = {}) =>
  Layer.scoped(
    SignedCommands,
    Effect.gen(function*() {
      const verifier = options.verifier ??
        (options.verifierThreads === 0 ? undefined : yield* makeVerifierPool({ threads: options.verifierThreads }))
      const { gate } = yield* makeGate({ ...options, verifier })
      return SignedCommands.of(({ next, payload, rpc }) =>
        Effect.flatMap(gate(rpc, payload), (authorization) => withAuthorization(authorization)(next))
      )
    })
  )
