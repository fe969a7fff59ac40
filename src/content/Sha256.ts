/**
 * SHA-256 for content addressing: node:crypto where it exists (OpenSSL with SHA-NI, several times
 * faster), @noble/hashes where it does not (browsers, workers without Node built-ins).
 */
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js"

export interface Sha256 {
  readonly update: (bytes: Uint8Array) => Sha256
  readonly digest: () => Uint8Array
}

interface NodeCrypto {
  readonly createHash: (algorithm: "sha256") => { update(bytes: Uint8Array): unknown; digest(): Uint8Array }
}

// Loaded without a static import so bundles for browsers do not pull in node:crypto; `process` is read
// off globalThis so that this module also type-checks for the page, which has no Node types.
interface NodeProcess {
  readonly versions?: { readonly node?: string }
  /** Newer than the oldest Node this module must still load on, and absent in browsers. */
  readonly getBuiltinModule?: (name: "node:crypto") => NodeCrypto
}
const nodeProcess = (globalThis as { readonly process?: NodeProcess }).process
const nodeCrypto: NodeCrypto | undefined = nodeProcess?.versions?.node !== undefined
  ? nodeProcess.getBuiltinModule?.("node:crypto")
  : undefined

const fromNode = (crypto: NodeCrypto): Sha256 => {
  const hash = crypto.createHash("sha256")
  const self: Sha256 = {
    update: (bytes) => {
      hash.update(bytes)
      return self
    },
    digest: () => new Uint8Array(hash.digest())
  }
  return self
}

/** The pure JavaScript implementation, always available (and what browsers use). */
export const createPortableSha256 = (): Sha256 => {
  const hash = nobleSha256.create()
  const self: Sha256 = {
    update: (bytes) => {
      hash.update(bytes)
      return self
    },
    digest: () => hash.digest()
  }
  return self
}

export const sha256Backend: "node:crypto" | "@noble/hashes" = nodeCrypto === undefined ? "@noble/hashes" : "node:crypto"

export const createSha256 = (): Sha256 => (nodeCrypto === undefined ? createPortableSha256() : fromNode(nodeCrypto))

export const sha256 = (bytes: Uint8Array): Uint8Array => createSha256().update(bytes).digest()

export const toHex = (bytes: Uint8Array): string => {
  let text = ""
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0")
  return text
}
