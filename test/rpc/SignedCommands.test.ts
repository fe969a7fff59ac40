/**
 * Signed commands through the node's own RPC handlers and middleware, in process on a SQLite data
 * dir: each refusal is one typed line and writes nothing; an accepted command's signature is stored
 * with the events it caused.
 */
import { RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Schema } from "effect"
import { NodeKey } from "../../src/content/NodeKey.js"
import type { CommandRefused } from "../../src/domain/CommandAuthority.js"
import { AccountId } from "../../src/domain/Money.js"
import { StoredCommand } from "../../src/domain/SignedCommand.js"
import { Journal } from "../../src/events/Journal.js"
import { nodeServices } from "../../src/layers/Node.js"
import type { NodeSettings } from "../../src/layers/NodeConfig.js"
import { authFor, signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { NodeApiRpcs } from "../../src/rpc/NodeApiRpcs.js"
import { NodeApiRpcHandlers } from "../../src/rpc/NodeRpcHandlers.js"
import { sequencedLayer } from "../../src/rpc/Sequencing.js"
import { signedCommandsLayer } from "../../src/rpc/SignedCommandsLive.js"
import { as, DEV_NETWORK, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const node = (overrides: Partial<NodeSettings> = {}) =>
  Layer.mergeAll(NodeApiRpcHandlers, signedCommandsLayer(), sequencedLayer, signingClientLayer).pipe(
    Layer.provideMerge(
      nodeServices({ dataDir: tempDir(), host: "127.0.0.1", port: 0, synchronous: "normal", ...overrides })
    )
  )

const client = RpcTest.makeClient(NodeApiRpcs)
const alice = testKey()
const bob = testKey()

const refusal = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.map(Effect.flip(effect), (error) => {
    const refused = error as unknown as CommandRefused
    expect(refused._tag).toBe("CommandRefused")
    expect(refused.message.split("\n")).toHaveLength(1)
    return refused
  })

/** Runs `attempt` and checks the journal did not move. */
const writesNothing = <A, E, R>(attempt: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const journal = yield* Journal
    const before = yield* journal.head
    const result = yield* attempt
    expect(yield* journal.head).toEqual(before)
    return result
  })

const decodeStored = Schema.decodeUnknownSync(StoredCommand)

describe("signed commands", () => {
  it.scoped("the operator mints, an owner transfers, and each event carries the command that caused it", () =>
    Effect.gen(function*() {
      const rpc = yield* client
      const operator = yield* NodeKey
      yield* as(operator)(rpc.LedgerMint({ account: alice.account, amount: 100n }))
      const receipt = yield* as(alice)(rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 30n }))
      expect(receipt.to.available).toBe(30n)
      const events = yield* (yield* Journal).readAll(1, 100)
      const minted = events.find((event) => event.eventType === "Minted")!
      const debited = events.find((event) => event.eventType === "Debited")!
      expect(decodeStored(minted.authorization)).toMatchObject({
        command: "LedgerMint",
        auth: { signer: operator.publicKey, network: DEV_NETWORK }
      })
      const transfer = decodeStored(debited.authorization)
      expect(transfer).toMatchObject({
        command: "LedgerTransfer",
        payload: { from: alice.account, amount: "30" },
        auth: { signer: alice.publicKey }
      })
      // The command id is the transfer id: the same signed command sent again moves nothing twice.
      expect(receipt.transferId).toBe(transfer.auth.id)
    }).pipe(Effect.provide(node())))

  it.scoped("refuses, in one line and writing nothing, what its signer may not do", () =>
    Effect.gen(function*() {
      const rpc = yield* client
      const operator = yield* NodeKey
      yield* as(operator)(rpc.LedgerMint({ account: alice.account, amount: 100n }))
      const refused = (effect: Effect.Effect<unknown, unknown>) => writesNothing(refusal(effect))

      expect((yield* refused(rpc.LedgerMint({ account: bob.account, amount: 5n }))).reason).toBe("unsigned")
      expect((yield* refused(as(bob)(rpc.LedgerMint({ account: bob.account, amount: 5n })))).reason).toBe(
        "not-operator"
      )
      expect((yield* refused(as(bob)(rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 5n })))).reason)
        .toBe("not-owner")
      for (const system of ["stake:x", "pool:compute", "escrow:auction:a1", "treasury"]) {
        const spend = yield* refused(
          as(bob)(rpc.LedgerTransfer({ from: AccountId.make(system), to: bob.account, amount: 1n }))
        )
        expect(spend.reason).toBe("not-owner")
      }
      expect((yield* refused(as(bob)(rpc.Stake({ node: alice.account, amount: 5n })))).reason).toBe("not-owner")
      expect(
        (yield* refused(
          as(bob)(rpc.Slash({ node: alice.account, reason: "SybilAttack", evidence: "e", operationId: "x" as never }))
        )).reason
      )
        .toBe("not-operator")
      expect(
        (yield* refused(
          as(alice, { expiresInMs: -1 })(rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 5n }))
        )).reason
      )
        .toBe("expired")
      expect(
        (yield* refused(
          as(alice, { expiresInMs: 24 * 3_600_000 })(
            rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 5n })
          )
        )).reason
      )
        .toBe("too-far-ahead")
      expect(
        (yield* refused(
          as(alice, { network: "edge-net-main" })(
            rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 5n })
          )
        )).reason
      )
        .toBe("wrong-network")

      // A signature over one amount does not cover another.
      const signedFor5 = authFor(
        NodeApiRpcs.requests.get("LedgerTransfer")!,
        { from: alice.account, to: bob.account, amount: 5n },
        { key: alice, network: DEV_NETWORK },
        yield* Clock.currentTimeMillis
      )
      const forged = yield* refused(
        rpc.LedgerTransfer({ from: alice.account, to: bob.account, amount: 50n, auth: signedFor5 })
      )
      expect(forged.reason).toBe("bad-signature")
      expect(forged.message).toMatch(/^LedgerTransfer refused: the signature of [0-9a-f]{64} does not verify$/)
    }).pipe(Effect.provide(node())))

  it.scoped("an operator command needs the threshold of operator keys named at genesis (2 of 3)", () =>
    Effect.gen(function*() {
      const rpc = yield* client
      const [first, second] = operators
      const refused = yield* writesNothing(
        refusal(as(first!, { network: "edge-net-test" })(rpc.LedgerMint({ account: alice.account, amount: 10n })))
      )
      expect(refused.message).toBe("LedgerMint refused: needs 2 of the 3 operator key(s), signed by 1")
      // A co-signature by a key that is not an operator does not count.
      const withOutsider = yield* refusal(
        as(first!, { cosigners: [bob], network: "edge-net-test" })(
          rpc.LedgerMint({ account: alice.account, amount: 10n })
        )
      )
      expect(withOutsider.reason).toBe("not-operator")
      const minted = yield* as(first!, { cosigners: [second!], network: "edge-net-test" })(
        rpc.LedgerMint({ account: alice.account, amount: 10n })
      )
      expect(minted.available).toBe(10n)
      const info = yield* rpc.NodeInfo()
      expect(info).toMatchObject({
        network: "edge-net-test",
        operatorThreshold: 2,
        operators: operators.map((key) => key.publicKey)
      })
    }).pipe(
      Effect.provide(node({
        network: "edge-net-test",
        operators: operators.map((key) => key.publicKey),
        operatorThreshold: 2
      }))
    ))
})

const operators = [testKey(), testKey(), testKey()]
