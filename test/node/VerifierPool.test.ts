/**
 * Ed25519 verification on worker threads: a batch answers each signature in order (good, bad and
 * malformed alike), many callers at once are all answered, and the threads stop with the scope.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Scope } from "effect"
import * as crypto from "node:crypto"
import { ed25519, utf8 } from "../../src/domain/Ed25519.js"
import { makeVerifierPool } from "../../src/node/VerifierPool.js"

const seed = crypto.randomBytes(32)
const publicKey = ed25519.publicKeyOf(seed)
const defect = <A>(exit: Exit.Exit<A, unknown>) => (Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "succeeded")
const signed = (text: string) => ({ message: utf8(text), signature: ed25519.sign(seed, utf8(text)) })

describe("VerifierPool", () => {
  it.scoped("answers good, bad and malformed signatures of one batch in order", () =>
    Effect.gen(function*() {
      const pool = yield* makeVerifierPool({ threads: 2 })
      const good = signed("edge-net/command/v1\npay bob 10")
      const other = signed("edge-net/command/v1\npay bob 11")
      const flipped = (good.signature[0] === "0" ? "1" : "0") + good.signature.slice(1)
      const verdicts = yield* Effect.all(
        [
          pool.verify(publicKey, good.message, good.signature),
          pool.verify(publicKey, good.message, other.signature),
          pool.verify(publicKey, good.message, flipped),
          pool.verify(publicKey, good.message, "zz"),
          pool.verify("not a key", good.message, good.signature),
          pool.verify(publicKey.toUpperCase(), good.message, good.signature),
          // 32 bytes that are no point on the curve: node:crypto refuses the key, the pool says false.
          pool.verify("ff".repeat(32), good.message, good.signature),
          pool.verify(ed25519.publicKeyOf(crypto.randomBytes(32)), good.message, good.signature),
          pool.verify(publicKey, other.message, other.signature),
          pool.verify(publicKey, new Uint8Array(0), ed25519.sign(seed, new Uint8Array(0)))
        ],
        { concurrency: "unbounded" }
      )
      expect(verdicts).toEqual([true, false, false, false, false, false, false, false, true, true])
    }))

  it.scoped("answers thousands of concurrent verifications, each its own", () =>
    Effect.gen(function*() {
      const pool = yield* makeVerifierPool({ threads: 2, maxBatch: 64 })
      const items = Array.from({ length: 2_000 }, (_, i) => {
        const { message, signature } = signed(`command ${i}`)
        // Every third signature is over another message.
        return { message: i % 3 === 0 ? utf8(`command ${i + 1}`) : message, signature, expected: i % 3 !== 0 }
      })
      const verdicts = yield* Effect.forEach(items, (item) => pool.verify(publicKey, item.message, item.signature), {
        concurrency: 64
      })
      expect(verdicts).toEqual(items.map((item) => item.expected))
    }))

  it.scoped("checks messages larger than the memory it shares with a thread", () =>
    Effect.gen(function*() {
      const pool = yield* makeVerifierPool({ threads: 1 })
      const large = new Uint8Array(3 << 20).fill(7)
      const signature = ed25519.sign(seed, large)
      const small = signed("beside a large one")
      const verdicts = yield* Effect.all(
        [
          pool.verify(publicKey, small.message, small.signature),
          pool.verify(publicKey, large, signature),
          pool.verify(publicKey, large.subarray(1), signature),
          pool.verify(publicKey, small.message, small.signature)
        ],
        { concurrency: "unbounded" }
      )
      expect(verdicts).toEqual([true, true, false, true])
    }))

  it.scoped("checks text messages as their UTF-8 bytes, beside byte messages and past the shared memory", () =>
    Effect.gen(function*() {
      // A batch per text: the short ones are written into the shared memory, the long one into a buffer of its own.
      const pool = yield* makeVerifierPool({ threads: 1, maxBatch: 3 })
      const texts = ["edge-net/command/v1\npay zoë 10 €", "", "😀 outside the BMP", "x".repeat(400_000) + "é"]
      const verdicts = yield* Effect.all(
        texts.flatMap((text) => {
          const { message, signature } = signed(text)
          return [
            pool.verify(publicKey, text, signature),
            pool.verify(publicKey, message, signature),
            // One UTF-16 unit less is another message.
            pool.verify(publicKey, text.slice(1), signature)
          ]
        }),
        { concurrency: "unbounded" }
      )
      expect(verdicts).toEqual(texts.flatMap((text) => [true, true, text.length === 0]))
    }))

  it.effect("stops its threads when the scope closes, and refuses to verify after", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const pool = yield* Scope.extend(makeVerifierPool({ threads: 2 }), scope)
      // Threads start with the first batch.
      expect(pool.threads()).toHaveLength(0)
      const { message, signature } = signed("before close")
      expect(yield* pool.verify(publicKey, message, signature)).toBe(true)
      const threads = pool.threads()
      expect(threads).toHaveLength(2)
      const exited = threads.map((worker) => new Promise<number>((resolve) => worker.once("exit", resolve)))
      yield* Scope.close(scope, Exit.void)
      expect(yield* Effect.promise(() => Promise.all(exited))).toHaveLength(2)
      expect(pool.threads()).toHaveLength(0)
      const after = yield* Effect.exit(pool.verify(publicKey, message, signature))
      expect(defect(after)).toContain("the verifier pool was closed")
    }))

  it.scopedLive("fails the verifications of a thread that dies, then starts it again", () =>
    Effect.gen(function*() {
      const pool = yield* makeVerifierPool({ threads: 1 })
      const { message, signature } = signed("in flight")
      // Once the thread has loaded and answered, it is killed in the middle of a burst.
      expect(yield* pool.verify(publicKey, message, signature)).toBe(true)
      const [worker] = pool.threads()
      const inFlight = yield* Effect.fork(
        Effect.forEach(Array.from({ length: 500 }, () => 0), () => pool.verify(publicKey, message, signature), {
          concurrency: "unbounded"
        })
      )
      yield* Effect.sleep("5 millis")
      yield* Effect.promise(() => worker!.terminate())
      const lost = yield* Effect.exit(inFlight)
      expect(defect(lost)).toContain("an Ed25519 verifier thread exited (code 1) before the signature was checked")
      expect(yield* pool.verify(publicKey, message, signature)).toBe(true)
      expect(pool.threads()).toHaveLength(1)
      expect(pool.threads()[0]).not.toBe(worker)
    }))
})
