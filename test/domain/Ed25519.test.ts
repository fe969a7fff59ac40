/**
 * The three Ed25519 verifiers (libsodium, node:crypto, @noble/ed25519) agree: a good signature
 * verifies in each, and what the strictest refuses, the others refuse too, above all a public key of
 * small order, with which a trivial signature "signs" any message.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import type { Ed25519 } from "../../src/domain/Ed25519.js"
import { ed25519, isStrongPublicKey, nobleEd25519, nodeCryptoEd25519, sodiumEd25519 } from "../../src/domain/Ed25519.js"
import { makeVerifierPool } from "../../src/node/VerifierPool.js"

const verifiers: ReadonlyArray<Ed25519> = [nobleEd25519, nodeCryptoEd25519!, sodiumEd25519!]
const message = new TextEncoder().encode("edge-net/command/v1\n{\"command\":\"LedgerTransfer\"}")

// The identity point (order 1), its order-2 point (y = p - 1) and the 8-torsion point libsodium lists.
const smallOrderKeys = [
  "01" + "00".repeat(31),
  "ec" + "ff".repeat(30) + "7f",
  "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
]

describe("Ed25519", () => {
  it("runs libsodium's verifier on Node, node:crypto's signer", () => {
    expect(sodiumEd25519).toBeDefined()
    expect(ed25519.name).toBe("libsodium")
  })

  it("every verifier accepts a good signature and refuses a changed message, key or signature", () => {
    const seed = crypto.randomBytes(32)
    const publicKey = ed25519.publicKeyOf(seed)
    const signature = ed25519.sign(seed, message)
    const otherKey = ed25519.publicKeyOf(crypto.randomBytes(32))
    const flipped = (signature[0] === "0" ? "1" : "0") + signature.slice(1)
    for (const verifier of verifiers) {
      expect(verifier.publicKeyOf(seed), verifier.name).toBe(publicKey)
      expect(verifier.verify(publicKey, message, signature), verifier.name).toBe(true)
      expect(verifier.verify(publicKey, new TextEncoder().encode("another message"), signature), verifier.name).toBe(
        false
      )
      expect(verifier.verify(otherKey, message, signature), verifier.name).toBe(false)
      expect(verifier.verify(publicKey, message, flipped), verifier.name).toBe(false)
      expect(verifier.verify(publicKey.toUpperCase(), message, signature), verifier.name).toBe(false)
      expect(verifier.verify(publicKey, message, signature.slice(2)), verifier.name).toBe(false)
    }
  })

  it("a key of small order verifies nothing, not even the trivial signature that fits any message", () => {
    // R = the identity, S = 0: [S]B = R + [k]A holds for every message when A has small order.
    const trivial = "01" + "00".repeat(63)
    for (const key of smallOrderKeys) {
      expect(isStrongPublicKey(Buffer.from(key, "hex")), key).toBe(false)
      for (const verifier of verifiers) {
        expect(verifier.verify(key, message, trivial), `${verifier.name} ${key}`).toBe(false)
      }
    }
    expect(isStrongPublicKey(Buffer.from(ed25519.publicKeyOf(crypto.randomBytes(32)), "hex"))).toBe(true)
  })

  it.effect("the verifier threads refuse it too", () =>
    Effect.scoped(Effect.gen(function*() {
      const pool = yield* makeVerifierPool({ threads: 1 })
      const trivial = "01" + "00".repeat(63)
      const seed = crypto.randomBytes(32)
      const verdicts = yield* Effect.all([
        pool.verify(smallOrderKeys[0]!, message, trivial),
        pool.verify(ed25519.publicKeyOf(seed), message, ed25519.sign(seed, message))
      ])
      expect(verdicts).toEqual([false, true])
    })))
})
