/**
 * The client's half of signed commands: a key set for a fiber (`signingAs`) signs every
 * state-changing RPC that fiber sends, so callers write `rpc.LedgerTransfer({ ... })` as before.
 */
import type { Rpc } from "@effect/rpc"
import { RpcMiddleware } from "@effect/rpc"
import { Clock, Effect, FiberRef, Schema } from "effect"
import { SignedCommands } from "../domain/CommandAuthority.js"
import type { CommandAuth, SigningKey } from "../domain/SignedCommand.js"
import { signCommand } from "../domain/SignedCommand.js"

export interface CommandSigner {
  readonly key: SigningKey
  /** Further keys that sign the same commands (k-of-n operator commands). */
  readonly cosigners?: ReadonlyArray<SigningKey> | undefined
  readonly network: string
  /** How long a signed command stays valid (default two minutes). */
  readonly expiresInMs?: number | undefined
  /** The id of the next command (default a random one): the same id twice is one command. */
  readonly commandId?: string | undefined
}

export const CurrentSigner: FiberRef.FiberRef<CommandSigner | null> = FiberRef.unsafeMake<CommandSigner | null>(null)

/** Runs `effect` with every state-changing RPC it sends signed by `signer`. */
export const signingAs = (signer: CommandSigner) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, CurrentSigner, signer)

const encoders = new Map<string, (payload: unknown) => unknown>()
type SignedRpc = Pick<Rpc.AnyWithProps, "_tag" | "payloadSchema">

const encodePayload = (rpc: SignedRpc, payload: unknown) => {
  let encode = encoders.get(rpc._tag)
  if (encode === undefined) {
    encode = Schema.encodeSync(rpc.payloadSchema as Schema.Schema<unknown, unknown>)
    encoders.set(rpc._tag, encode)
  }
  return encode(payload)
}

/** Signs one command's payload (without `auth`) as the node will check it: the Schema-encoded fields. */
export const authFor = (
  rpc: SignedRpc,
  payload: Record<string, unknown>,
  signer: CommandSigner,
  now: number
): CommandAuth =>
  signCommand(signer.key, rpc._tag, encodePayload(rpc, payload), {
    id: signer.commandId ?? globalThis.crypto.randomUUID(),
    expiresAt: now + (signer.expiresInMs ?? 120_000),
    network: signer.network
  }, signer.cosigners ?? [])

/** The client middleware: adds `auth` to a signed RPC's payload when the fiber has a signer and the payload none. */
export const signingClientLayer = RpcMiddleware.layerClient(
  SignedCommands,
  ({ request, rpc }) =>
    Effect.gen(function*() {
      const payload = request.payload as Record<string, unknown>
      const signer = yield* FiberRef.get(CurrentSigner)
      if (signer === null || payload["auth"] !== undefined) return request
      const now = yield* Clock.currentTimeMillis
      const signed: typeof request = {
        ...request,
        payload: { ...payload, auth: authFor(rpc, payload, signer, now) } as typeof request.payload
      }
      return signed
    })
)
