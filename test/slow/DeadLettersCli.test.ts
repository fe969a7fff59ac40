/**
 * `edge-net node dead-letters`, as an operator runs it on a node's data dir and through the running
 * node: the list names each letter; a retry of a credit whose cause is gone credits it and removes the
 * record; a retry of an event the policy can never handle fails again with the record updated; clear
 * removes a record, and only an operator may.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import * as path from "node:path"
import { Debited } from "../../src/actors/economy/Account.js"
import { Checkpoints } from "../../src/events/Checkpoints.js"
import { Journal } from "../../src/events/Journal.js"
import * as Policy from "../../src/events/Policy.js"
import { nodeServices } from "../../src/layers/Node.js"
import { nodePolicies } from "../../src/layers/NodePolicies.js"
import { compileCli, runCompiledCli, startCompiledNode } from "../support/CompiledCli.js"
import { testKey, writeKeyFile } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

const home = tempDir()

describe("edge-net node dead-letters", () => {
  it.live(
    "lists, retries and clears a node's dead letters, on its data dir and through the running node",
    () =>
      Effect.gen(function*() {
        const root = compileCli()
        const cli = (...args: ReadonlyArray<string>) => Effect.promise(() => runCompiledCli(root, args, { HOME: home }))
        const dataDir = tempDir()
        const alice = testKey()
        const bob = testKey()

        const { poisoned, stranded } = yield* Effect.gen(function*() {
          const journal = yield* Journal
          const checkpoints = yield* Checkpoints
          // A debit whose payload the credits policy cannot decode: the node's policies give up on it.
          const [poisoned] = (yield* journal.append("Account-poisoned", "none", [{
            eventType: "Debited",
            payload: { _tag: "Debited", transferId: "t-poison" }
          }])).envelopes
          yield* Effect.scoped(
            Layer.launch(nodePolicies).pipe(Effect.race(Policy.awaitCaughtUp("ledger.credits")))
          )
          expect(yield* checkpoints.deadLetterCount).toBe(1)
          // A debit of 40 to bob whose credit failed for a reason since gone (a locked disk), recorded
          // as the policy records a letter; the policies are stopped, so nothing credits it meanwhile.
          const [stranded] = (yield* journal.append(`Account-${alice.account}`, "any", [{
            eventType: "Debited",
            payload: Schema.encodeSync(Debited)(
              Debited.make({ transferId: "t-stranded", to: bob.account, amount: 40n })
            )
          }])).envelopes
          yield* checkpoints.deadLetter({
            policy: "ledger.credits",
            position: stranded!.position,
            streamId: stranded!.streamId,
            eventType: "Debited",
            error: "SqliteError: database is locked",
            attempts: 7,
            failedAt: new Date().toISOString()
          })
          return { poisoned: poisoned!.position, stranded: stranded!.position }
        }).pipe(
          Effect.provide(nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" })),
          Effect.scoped
        )

        const listed = yield* cli("node", "dead-letters", "--data", dataDir)
        expect(listed.code).toBe(0)
        expect(listed.stdout).toContain("2 dead letters\n")
        expect(listed.stdout).toContain(
          `ledger.credits@${stranded}  Debited on Account-${alice.account}, 7 attempts, last at `
        )
        expect(listed.stdout).toContain(`ledger.credits@${poisoned}  Debited on Account-poisoned, 7 attempts, last at `)

        const retried = yield* cli("node", "dead-letters", "retry", `ledger.credits@${stranded}`, "--data", dataDir)
        expect(retried).toMatchObject({ code: 0, stdout: `ledger.credits@${stranded} handled: record removed\n` })

        const [balance, again, badId, neither, notFound] = yield* Effect.all([
          cli("ledger", "balance", bob.account, "--data", dataDir),
          cli("node", "dead-letters", "retry", "--all", "--data", dataDir, "--json"),
          cli("node", "dead-letters", "retry", "credits", "--data", dataDir),
          cli("node", "dead-letters", "clear", "--data", dataDir),
          cli("node", "dead-letters", "clear", `ledger.credits@${stranded}`, "--data", dataDir)
        ], { concurrency: "unbounded" })
        expect(balance.stdout).toBe(`${bob.account}: 40 rUv available\n`)
        expect(again.code).toBe(1)
        expect(again.stderr).toBe("edge-net: 1 of 1 dead letter failed again (the record has the new error)\n")
        const [outcome] = JSON.parse(again.stdout) as Array<{ position: number; handled: boolean; attempts: number }>
        expect(outcome).toMatchObject({ position: poisoned, handled: false, attempts: 8 })
        expect(badId).toMatchObject({
          code: 1,
          stderr: "edge-net: invalid dead letter \"credits\": expected POLICY@POSITION, e.g. ledger.credits@42\n"
        })
        expect(neither).toMatchObject({
          code: 1,
          stderr: "edge-net: name one dead letter (POLICY@POSITION, as the list shows) or pass --all\n"
        })
        expect(notFound).toMatchObject({ code: 1, stderr: `edge-net: no dead letter ledger.credits@${stranded}\n` })

        // A key in the CLI's store that is no operator's.
        yield* writeKeyFile(path.join(home, ".edge-net", "keys"), "mallory", testKey())
        const node = yield* Effect.promise(() => startCompiledNode(root, dataDir))
        try {
          const [remote, stranger] = yield* Effect.all([
            cli("node", "dead-letters", "--node", node.url, "--json"),
            cli("node", "dead-letters", "clear", "--all", "--node", node.url, "--key", "mallory")
          ], { concurrency: "unbounded" })
          const view = JSON.parse(remote.stdout) as {
            count: number
            letters: Array<{ attempts: number; error: string }>
          }
          expect(view.count).toBe(1)
          expect(view.letters[0]!.attempts).toBe(8)
          expect(view.letters[0]!.error).toContain("ParseError")
          expect(stranger).toMatchObject({
            code: 1,
            stderr: "edge-net: DeadLetterClear refused: needs 1 of the 1 operator key(s), signed by 0\n"
          })

          const operatorKey = path.join(dataDir, "node.key")
          const cleared = yield* cli(
            "node",
            "dead-letters",
            "clear",
            `ledger.credits@${poisoned}`,
            "--node",
            node.url,
            "--key",
            operatorKey
          )
          expect(cleared.code).toBe(0)
          expect(cleared.stdout).toMatch(
            new RegExp(`^cleared ledger\\.credits@${poisoned}  Debited on Account-poisoned`)
          )
          expect((yield* cli("node", "dead-letters", "--node", node.url)).stdout).toBe("0 dead letters\n")
          const health = yield* Effect.promise(() => fetch(`${node.url}/health`).then((response) => response.json()))
          expect(health).toMatchObject({ status: "ok", deadLetterCount: 0 })
        } finally {
          yield* Effect.promise(() => node.kill("SIGTERM"))
        }
      }),
    120_000
  )
})
