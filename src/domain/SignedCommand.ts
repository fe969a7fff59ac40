/**
 * A signed command: what a caller asks a node to change, the key that asks, a command id, an expiry
 * and the network, under an Ed25519 signature over the RFC 8785 canonical JSON of all of them.
 */
import { Schema } from "effect"
import { canonicalize } from "./CanonicalJson.js"
import type { Ed25519 } from "./Ed25519.js"
import { ed25519, utf8 } from "./Ed25519.js"

export const PublicKeyHex = Schema.String.pipe(
  Schema.pattern(/^[0-9a-f]{64}$/, { message: () => "a public key is 64 lowercase hex digits" })
)
export const SignatureHex = Schema.String.pipe(
  Schema.pattern(/^[0-9a-f]{128}$/, { message: () => "a signature is 128 lowercase hex digits" })
)
export const CommandId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$/, {
    message: () => "a command id is 1-100 letters, digits or _ . : @ -"
  })
)
export const NetworkId = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9][a-z0-9._-]{0,63}$/, {
    message: () => "a network id is 1-64 lowercase letters, digits or . _ -"
  })
)

export const Cosignature = Schema.Struct({ signer: PublicKeyHex, signature: SignatureHex })

/** What travels beside a command's own fields: who signed it, for which network, until when. */
export const CommandAuth = Schema.Struct({
  signer: PublicKeyHex,
  id: CommandId,
  /** Milliseconds since the epoch; the node refuses the command after this. */
  expiresAt: Schema.Int,
  network: NetworkId,
  signature: SignatureHex,
  /** Further keys that signed the same message (k-of-n operator commands). */
  cosigners: Schema.optional(Schema.Array(Cosignature).pipe(Schema.maxItems(16)))
})
export type CommandAuth = typeof CommandAuth.Type

/** The signed text: domain-separated canonical JSON of the command, its signer, id, expiry and network. */
export const commandMessage = (
  command: string,
  payload: unknown,
  auth: Pick<CommandAuth, "signer" | "id" | "expiresAt" | "network">
): string => commandMessageOf(command, canonicalize(payload), auth)

/**
 * `commandMessage` given the payload's canonical text: the envelope around it is written in RFC 8785
 * key order by hand (command, expiresAt, id, network, payload, signer), so the payload is walked once.
 */
export const commandMessageOf = (
  command: string,
  payloadText: string,
  auth: Pick<CommandAuth, "signer" | "id" | "expiresAt" | "network">
): string =>
  `edge-net/command/v1\n{"command":${JSON.stringify(command)},"expiresAt":${numberText(auth.expiresAt)},"id":${
    JSON.stringify(auth.id)
  }` +
  `,"network":${JSON.stringify(auth.network)},"payload":${payloadText},"signer":${JSON.stringify(auth.signer)}}`

/**
 * The command exactly as stored with the events it caused: anyone replaying the log checks its
 * signatures and that its signer owns what the events act on.
 */
export const StoredCommand = Schema.Struct({
  command: Schema.String,
  payload: Schema.Unknown,
  auth: CommandAuth
})
export type StoredCommand = typeof StoredCommand.Type

export const storedCommandText = (command: string, payload: unknown, auth: CommandAuth): string =>
  storedCommandTextOf(command, canonicalize(payload), auth)

/** `storedCommandText` given the payload's canonical text (keys in RFC 8785 order: auth, command, payload). */
export const storedCommandTextOf = (command: string, payloadText: string, auth: CommandAuth): string =>
  `{"auth":${authText(auth)},"command":${JSON.stringify(command)},"payload":${payloadText}}`

/**
 * The canonical text of `auth`, written by hand in RFC 8785 key order (cosigners, expiresAt, id, network,
 * signature, signer): every command the gate accepts pays for it, and a generic walk sorts keys first.
 */
const authText = (auth: CommandAuth): string => {
  let text = "{"
  if (auth.cosigners !== undefined) {
    text += `"cosigners":[`
    for (let i = 0; i < auth.cosigners.length; i++) {
      const cosigner = auth.cosigners[i]!
      text += `${i === 0 ? "" : ","}{"signature":${JSON.stringify(cosigner.signature)},"signer":${
        JSON.stringify(cosigner.signer)
      }}`
    }
    text += "],"
  }
  return `${text}"expiresAt":${numberText(auth.expiresAt)},"id":${JSON.stringify(auth.id)},"network":${
    JSON.stringify(auth.network)
  },"signature":${JSON.stringify(auth.signature)},"signer":${JSON.stringify(auth.signer)}}`
}

/** An integer's canonical text without the generic walk; anything else (and a non-finite number's error) through it. */
const numberText = (value: number): string => (Number.isSafeInteger(value) ? String(value) : canonicalize(value))

export interface SigningKey {
  readonly publicKey: string
  readonly seed: Uint8Array
}

export const signCommand = (
  key: SigningKey,
  command: string,
  payload: unknown,
  fields: { readonly id: string; readonly expiresAt: number; readonly network: string },
  cosigners: ReadonlyArray<SigningKey> = [],
  signer: Ed25519 = ed25519
): CommandAuth => {
  const base = { signer: key.publicKey, id: fields.id, expiresAt: fields.expiresAt, network: fields.network }
  const message = utf8(commandMessage(command, payload, base))
  return {
    ...base,
    signature: signer.sign(key.seed, message),
    ...(cosigners.length === 0
      ? {}
      : {
        cosigners: cosigners.map((cosigner) => ({
          signer: cosigner.publicKey,
          signature: signer.sign(cosigner.seed, message)
        }))
      })
  }
}

/** The public keys whose signatures over the command verify: the signer first, then valid cosigners. */
export const validSigners = (
  command: string,
  payload: unknown,
  auth: CommandAuth,
  verifier: Ed25519 = ed25519
): ReadonlyArray<string> => signersOf(utf8(commandMessage(command, payload, auth)), auth, verifier)

/** `validSigners` of the signed message itself. */
export const signersOf = (
  message: Uint8Array,
  auth: CommandAuth,
  verifier: Ed25519 = ed25519
): ReadonlyArray<string> => {
  if (!verifier.verify(auth.signer, message, auth.signature)) return []
  const signers = [auth.signer]
  for (const cosigner of auth.cosigners ?? []) {
    if (!signers.includes(cosigner.signer) && verifier.verify(cosigner.signer, message, cosigner.signature)) {
      signers.push(cosigner.signer)
    }
  }
  return signers
}
