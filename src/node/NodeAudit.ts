/**
 * The node's audit: verify the journal's chain and signed heads, and rebuild every actor's state
 * from the log alone to compare it with the live state, plus the ledger's conservation of rUv.
 */
import { Effect } from "effect"
import { Ledger } from "../actors/economy/Ledger.js"
import { NodeKey } from "../content/NodeKey.js"
import { compareReplay, verifyChain } from "../events/Audit.js"
import { Journal } from "../events/Journal.js"
import type { ReplayReportView } from "../rpc/NodeRpc.js"

export class NodeAudit extends Effect.Service<NodeAudit>()("edge-net/NodeAudit", {
  effect: Effect.gen(function* () {
    const journal = yield* Journal
    const key = yield* NodeKey
    const ledger = yield* Ledger

    const verify = Effect.fn("NodeAudit.verify")(function* () {
      return yield* verifyChain({ trustedKeys: [key.publicKey] }).pipe(Effect.provideService(Journal, journal))
    })

    const replay = Effect.fn("NodeAudit.replay")(function* () {
      const head = yield* journal.head
      const accounts = yield* compareReplay(ledger.accounts)
      const supply = yield* ledger.supply()
      return {
        ok: accounts.mismatches.length === 0 && supply.conserved,
        head,
        actors: [accounts],
        supply
      } satisfies ReplayReportView
    })

    return { verify, replay } as const
  })
}) {}
