/**
 * Manifest signatures checked in the page, as a client checks them before trusting a model: Ed25519
 * (RFC 8032, strict) over the RFC 8785 canonical JSON of the manifest without its `signatures`.
 */
import * as ed from "@noble/ed25519"
import { sha512 } from "@noble/hashes/sha2.js"
import { hexToBytes } from "@noble/hashes/utils.js"
import type { Json } from "./Json.js"
import { list, record, text } from "./Json.js"

// Synchronous SHA-512: WebCrypto's exists only in secure contexts, and a node on a LAN name is not one.
ed.hashes.sha512 = sha512

/**
 * RFC 8785: object keys sorted by UTF-16 code units, no whitespace, strings and numbers as
 * ECMAScript's JSON.stringify writes them (the scheme's own rules for both).
 */
export const canonicalize = (value: Json): string => {
  if (Array.isArray(value)) return `[${value.map(canonicalize).join(",")}]`
  if (typeof value === "object" && value !== null) {
    const members = record(value)
    const keys = Object.keys(members).filter((key) => members[key] !== undefined).sort()
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalize(members[key])}`).join(",")}}`
  }
  if (typeof value === "number" && !Number.isFinite(value)) throw new Error("not JSON: a non-finite number")
  return JSON.stringify(value) ?? "null"
}

export interface SignatureCheck {
  /** Key ids whose signatures verified. */
  readonly valid: ReadonlyArray<string>
  /** Key ids whose signatures did not. */
  readonly invalid: ReadonlyArray<string>
  readonly publicKeys: ReadonlyArray<string>
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

export const checkSignatures = (manifest: Json): SignatureCheck => {
  const { signatures, ...body } = record(manifest)
  const message = new TextEncoder().encode(canonicalize(body))
  const valid: Array<string> = []
  const invalid: Array<string> = []
  const publicKeys: Array<string> = []
  for (const signature of list(signatures)) {
    const entry = record(signature)
    const publicKey = text(entry["publicKey"])
    publicKeys.push(publicKey)
    ;(verifies(publicKey, message, text(entry["signature"])) ? valid : invalid).push(text(entry["keyId"]))
  }
  return { valid, invalid, publicKeys }
}
