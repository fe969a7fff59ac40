/**
 * Manifest signatures checked in the page, as a client checks them before trusting a model: Ed25519
 * (RFC 8032, strict) over the RFC 8785 canonical JSON of the manifest without its `signatures`, the
 * text the node signed (domain/CanonicalJson.ts writes it for both).
 */
import * as ed from "@noble/ed25519"
import { sha512 } from "@noble/hashes/sha2.js"
import { hexToBytes } from "@noble/hashes/utils.js"
import { canonicalize } from "../domain/CanonicalText.js"

// Synchronous SHA-512: WebCrypto's exists only in secure contexts, and a node on a LAN name is not one.
ed.hashes.sha512 = sha512

/** What the signatures of one manifest say. */
export interface SignatureCheck {
  /** Key ids whose signatures verified. */
  readonly valid: ReadonlyArray<string>
  /** Key ids whose signatures did not. */
  readonly invalid: ReadonlyArray<string>
  /** Every signer's public key (hex), valid or not. */
  readonly publicKeys: ReadonlyArray<string>
  /** The public keys (hex) whose signatures verified. */
  readonly validKeys: ReadonlyArray<string>
}

const HEX_KEY = /^[0-9a-f]{64}$/
const HEX_SIGNATURE = /^[0-9a-f]{128}$/

const verifies = (publicKey: string, message: Uint8Array, signature: string) => {
  if (!HEX_KEY.test(publicKey) || !HEX_SIGNATURE.test(signature)) return false
  try {
    return ed.verify(hexToBytes(signature), message, hexToBytes(publicKey), { zip215: false })
  } catch {
    return false
  }
}

const record = (value: unknown): Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? Object.fromEntries(Object.entries(value)) : {}

const text = (value: unknown): string => (typeof value === "string" ? value : "")

/** Checks every signature of a manifest (any JSON: a malformed one has no valid signature). */
export const checkSignatures = (manifest: unknown): SignatureCheck => {
  const { signatures, ...body } = record(manifest)
  const message = new TextEncoder().encode(canonicalize(body))
  const valid: Array<string> = []
  const invalid: Array<string> = []
  const publicKeys: Array<string> = []
  const validKeys: Array<string> = []
  for (const signature of Array.isArray(signatures) ? signatures : []) {
    const entry = record(signature)
    const publicKey = text(entry["publicKey"])
    publicKeys.push(publicKey)
    if (verifies(publicKey, message, text(entry["signature"]))) {
      valid.push(text(entry["keyId"]))
      validKeys.push(publicKey)
    } else {
      invalid.push(text(entry["keyId"]))
    }
  }
  return { valid, invalid, publicKeys, validKeys }
}
