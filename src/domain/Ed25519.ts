/**
 * One Ed25519 signing service for every signature edge-net makes or checks (commands, journal heads,
 * manifests): @noble/ed25519 everywhere, node:crypto as the fast path where the runtime has it.
 * Keys and signatures travel as lowercase hex; an account id is derived from a public key.
 */
import * as noble from "@noble/ed25519"
import { sha256, sha512 } from "@noble/hashes/sha2.js"
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js"
import { LruCache } from "./LruCache.js"

noble.hashes.sha512 = sha512

export interface Ed25519 {
  readonly name: "noble" | "node:crypto"
  /** The 32-byte public key of a 32-byte seed, in hex. */
  readonly publicKeyOf: (seed: Uint8Array) => string
  readonly sign: (seed: Uint8Array, message: Uint8Array) => string
  /** False on a bad signature and on any malformed key or signature: never throws. */
  readonly verify: (publicKeyHex: string, message: Uint8Array, signatureHex: string) => boolean
}

const HEX_KEY = /^[0-9a-f]{64}$/
const HEX_SIGNATURE = /^[0-9a-f]{128}$/

export const nobleEd25519: Ed25519 = {
  name: "noble",
  publicKeyOf: (seed) => bytesToHex(noble.getPublicKey(seed)),
  sign: (seed, message) => bytesToHex(noble.sign(message, seed)),
  verify: (publicKeyHex, message, signatureHex) => {
    if (!HEX_KEY.test(publicKeyHex) || !HEX_SIGNATURE.test(signatureHex)) return false
    try {
      return noble.verify(hexToBytes(signatureHex), message, hexToBytes(publicKeyHex))
    } catch {
      return false
    }
  }
}

type NodeCrypto = typeof import("node:crypto")

// Reached without a static import, so this module also loads in a browser, where it is absent.
const nodeCrypto = (): NodeCrypto | undefined => {
  const runtime = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process
  return runtime?.getBuiltinModule?.("node:crypto") as NodeCrypto | undefined
}

// DER prefixes that wrap a raw 32-byte Ed25519 seed / public key for node:crypto.
const PKCS8_PREFIX = hexToBytes("302e020100300506032b657004220420")
const SPKI_PREFIX = hexToBytes("302a300506032b6570032100")

const concat = (left: Uint8Array, right: Uint8Array) => {
  const joined = new Uint8Array(left.length + right.length)
  joined.set(left)
  joined.set(right, left.length)
  return joined
}

/** Public keys kept parsed: bounded, since random keys sent by anyone grew a node's memory without bound. */
export const PUBLIC_KEY_CACHE_SIZE = 4096

/**
 * node:crypto's check of a signature given as bytes, public keys parsed once into a bounded cache.
 * False on a bad signature and on any malformed key or signature: never throws.
 */
const makeNodeVerify = (crypto: NodeCrypto) => {
  const publicKeys = new LruCache<string, import("node:crypto").KeyObject>(PUBLIC_KEY_CACHE_SIZE)
  return (publicKeyHex: string, message: Uint8Array, signature: Uint8Array): boolean => {
    if (!HEX_KEY.test(publicKeyHex) || signature.length !== 64) return false
    try {
      let key = publicKeys.get(publicKeyHex)
      if (key === undefined) {
        key = crypto.createPublicKey({
          key: Buffer.from(concat(SPKI_PREFIX, hexToBytes(publicKeyHex))),
          format: "der",
          type: "spki"
        })
        publicKeys.set(publicKeyHex, key)
      }
      return crypto.verify(null, message, key, signature)
    } catch {
      return false
    }
  }
}

/** The node:crypto verifier of signature bytes (a verifier thread's), or undefined outside Node. */
export const nodeCryptoVerifyBytes = ():
  | ((publicKeyHex: string, message: Uint8Array, signature: Uint8Array) => boolean)
  | undefined =>
{
  const crypto = nodeCrypto()
  return crypto === undefined ? undefined : makeNodeVerify(crypto)
}

const makeNodeEd25519 = (crypto: NodeCrypto): Ed25519 => {
  const verifyBytes = makeNodeVerify(crypto)
  const privateKeys = new LruCache<string, import("node:crypto").KeyObject>(64)
  const privateKey = (seed: Uint8Array) => {
    const id = bytesToHex(seed)
    let key = privateKeys.get(id)
    if (key === undefined) {
      key = crypto.createPrivateKey({ key: Buffer.from(concat(PKCS8_PREFIX, seed)), format: "der", type: "pkcs8" })
      privateKeys.set(id, key)
    }
    return key
  }
  return {
    name: "node:crypto",
    publicKeyOf: (seed) =>
      Buffer.from(crypto.createPublicKey(privateKey(seed)).export({ format: "der", type: "spki" })).subarray(
        SPKI_PREFIX.length
      ).toString("hex"),
    sign: (seed, message) => crypto.sign(null, message, privateKey(seed)).toString("hex"),
    verify: (publicKeyHex, message, signatureHex) =>
      HEX_SIGNATURE.test(signatureHex) && verifyBytes(publicKeyHex, message, Buffer.from(signatureHex, "hex"))
  }
}

const available = nodeCrypto()

/** node:crypto where it exists (about 10x faster here: `npm run bench -- journal`), else @noble/ed25519. */
export const ed25519: Ed25519 = available === undefined ? nobleEd25519 : makeNodeEd25519(available)

export const nodeCryptoEd25519: Ed25519 | undefined = available === undefined ? undefined : makeNodeEd25519(available)

const encoder = new TextEncoder()
export const utf8 = (text: string): Uint8Array => encoder.encode(text)

/**
 * An account id derived from its public key: the first 128 bits of SHA-256 over the key, in hex (as a
 * node id is). Nobody needs to register it, any replayer can check it, and no other key can own it.
 */
export const accountIdOf = (publicKeyHex: string): string =>
  // node:crypto where it exists (a hot path of the gate); noble elsewhere, and for malformed keys, whose
  // one-line error it gives (Buffer.from would silently drop the bad digits).
  available !== undefined && HEX_KEY.test(publicKeyHex)
    ? available.createHash("sha256").update(Buffer.from(publicKeyHex, "hex")).digest("hex").slice(0, 32)
    : bytesToHex(sha256(hexToBytes(publicKeyHex))).slice(0, 32)

export const isPublicKeyHex = (text: string): boolean => HEX_KEY.test(text)

export const isSignatureHex = (text: string): boolean => HEX_SIGNATURE.test(text)
