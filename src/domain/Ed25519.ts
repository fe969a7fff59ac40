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
  readonly name: "noble" | "node:crypto" | "libsodium"
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
      // RFC 8032's strict checks (canonical encodings, no key of small order), not ZIP-215's.
      return noble.verify(hexToBytes(signatureHex), message, hexToBytes(publicKeyHex), { zip215: false })
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

/**
 * Whether a public key may sign at all: a canonical encoding of a point outside the small subgroup.
 * OpenSSL checks neither, and a key of small order "signs" any message (the identity point with
 * R = identity, S = 0 verifies everywhere), so such a key would let anyone act as its account.
 */
export const isStrongPublicKey = (publicKey: Uint8Array): boolean => {
  try {
    return !noble.Point.fromBytes(publicKey, false).isSmallOrder()
  } catch {
    return false
  }
}

/** Public keys kept parsed: bounded, since random keys sent by anyone grew a node's memory without bound. */
export const PUBLIC_KEY_CACHE_SIZE = 4096

/**
 * node:crypto's check of a signature given as bytes, public keys parsed once into a bounded cache.
 * False on a bad signature and on any malformed key or signature: never throws.
 */
const makeNodeVerify = (crypto: NodeCrypto) => {
  // A weak key is remembered as null: it verifies nothing.
  const publicKeys = new LruCache<string, import("node:crypto").KeyObject | null>(PUBLIC_KEY_CACHE_SIZE)
  return (publicKeyHex: string, message: Uint8Array, signature: Uint8Array): boolean => {
    if (!HEX_KEY.test(publicKeyHex) || signature.length !== 64) return false
    try {
      let key = publicKeys.get(publicKeyHex)
      if (key === undefined) {
        const bytes = hexToBytes(publicKeyHex)
        key = isStrongPublicKey(bytes)
          ? crypto.createPublicKey({ key: Buffer.from(concat(SPKI_PREFIX, bytes)), format: "der", type: "spki" })
          : null
        publicKeys.set(publicKeyHex, key)
      }
      return key !== null && crypto.verify(null, message, key, signature)
    } catch {
      return false
    }
  }
}

/** The part of sodium-native (libsodium's Node binding) that checks a detached signature. */
interface Sodium {
  readonly crypto_sign_verify_detached: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) => boolean
}

// Loaded through createRequire, so this module also loads in a browser, and without the native addon.
const loadSodium = (): Sodium | undefined => {
  const runtime = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process
  const nodeModule = runtime?.getBuiltinModule?.("node:module") as typeof import("node:module") | undefined
  try {
    return nodeModule?.createRequire(import.meta.url)("sodium-native") as Sodium | undefined
  } catch {
    return undefined
  }
}

/**
 * libsodium's check of a signature given as bytes: about 1.7x node:crypto's (OpenSSL's) here. It is
 * the strictest of the three (non-canonical encodings, keys and R of small order refused), so what it
 * accepts, the other two accept. Its binding does not read shared memory.
 */
const makeSodiumVerify = (sodium: Sodium) => (publicKeyHex: string, message: Uint8Array, signature: Uint8Array) =>
  HEX_KEY.test(publicKeyHex) && signature.length === 64 &&
  sodium.crypto_sign_verify_detached(signature, message, Buffer.from(publicKeyHex, "hex"))

type VerifyBytes = (publicKeyHex: string, message: Uint8Array, signature: Uint8Array) => boolean

/** A check of a signature whose key, message and signature are all bytes (as a verifier thread reads them). */
export type VerifyRaw = (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => boolean

/**
 * The fastest verifier of raw bytes this runtime has (libsodium, else node:crypto; a verifier
 * thread's), or undefined outside Node. False on a bad signature and on any malformed key or signature.
 */
export const nodeVerifyRaw = (): VerifyRaw | undefined => {
  const sodium = loadSodium()
  if (sodium !== undefined) {
    return (publicKey, message, signature) =>
      publicKey.length === 32 && signature.length === 64 &&
      sodium.crypto_sign_verify_detached(signature, message, publicKey)
  }
  const crypto = nodeCrypto()
  if (crypto === undefined) return undefined
  const verify = makeNodeVerify(crypto)
  return (publicKey, message, signature) => verify(bytesToHex(publicKey), message, signature)
}

const makeNodeEd25519 = (crypto: NodeCrypto, verifyBytes: VerifyBytes, name: Ed25519["name"]): Ed25519 => {
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
    name,
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
const sodium = available === undefined ? undefined : loadSodium()

/** Signing and verifying with node:crypto alone (OpenSSL), or undefined outside Node. */
export const nodeCryptoEd25519: Ed25519 | undefined = available === undefined
  ? undefined
  : makeNodeEd25519(available, makeNodeVerify(available), "node:crypto")

/** node:crypto's signing with libsodium's verifying, where Node has the sodium-native addon. */
export const sodiumEd25519: Ed25519 | undefined = available === undefined || sodium === undefined
  ? undefined
  : makeNodeEd25519(available, makeSodiumVerify(sodium), "libsodium")

/**
 * The fastest this runtime has (`npm run bench -- journal` prints all three): on Node, node:crypto
 * signs and libsodium verifies (node:crypto verifies when the addon is missing); in a browser,
 * @noble/ed25519.
 */
export const ed25519: Ed25519 = sodiumEd25519 ?? nodeCryptoEd25519 ?? nobleEd25519

const encoder = new TextEncoder()
export const utf8 = (text: string): Uint8Array => encoder.encode(text)

/**
 * An account id derived from its public key: the first 128 bits of SHA-256 over the key, in hex (as a
 * node id is). Nobody needs to register it, any replayer can check it, and no other key can own it.
 */
export const accountIdOf = (publicKeyHex: string): string => {
  // The gate asks for the signer's account on every command: the keys seen lately are remembered.
  let account = accountIds.get(publicKeyHex)
  if (account === undefined) {
    // node:crypto where it exists; noble elsewhere, and for malformed keys, whose one-line error it
    // gives (Buffer.from would silently drop the bad digits).
    account = available !== undefined && HEX_KEY.test(publicKeyHex)
      ? available.hash("sha256", Buffer.from(publicKeyHex, "hex"), "hex").slice(0, 32)
      : bytesToHex(sha256(hexToBytes(publicKeyHex))).slice(0, 32)
    accountIds.set(publicKeyHex, account)
  }
  return account
}

const accountIds = new LruCache<string, string>(PUBLIC_KEY_CACHE_SIZE)

export const isPublicKeyHex = (text: string): boolean => HEX_KEY.test(text)

export const isSignatureHex = (text: string): boolean => HEX_SIGNATURE.test(text)
