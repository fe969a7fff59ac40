/**
 * Founds the network at a node's first start and answers who its operators are. The terms are read
 * from the journal, so every node and every replayer checks operator signatures against the same keys.
 */
import { Effect, Option } from "effect"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { CharterTerms } from "./Charter.js"
import { Charter, CHARTER_ID } from "./Charter.js"

export class NetworkCharter extends Effect.Service<NetworkCharter>()("edge-net/NetworkCharter", {
  effect: Effect.gen(function*() {
    const charter = yield* ActorRunner.make(Charter, { snapshotEvery: 0 })
    let cached: CharterTerms | undefined

    /** Records the terms on first use; the same terms again change nothing, other terms are refused. */
    const found = Effect.fn("NetworkCharter.found")(function*(terms: CharterTerms) {
      // No command id: a restart with the same terms must be decided again, so that other terms are refused.
      const result = yield* charter.send(CHARTER_ID, { _tag: "Found", terms })
      cached = result.state.terms ?? undefined
      return result.state.terms ?? terms
    })

    /** The recorded terms, if the network was founded. */
    const terms = Effect.fn("NetworkCharter.terms")(function*() {
      if (cached !== undefined) return Option.some(cached)
      const { state } = yield* charter.state(CHARTER_ID)
      if (state.terms !== null) cached = state.terms
      return Option.fromNullable(state.terms)
    })

    /**
     * The recorded terms from memory once read, without a span: for the checks every command passes
     * (the gate, the route to the sequencer). Undefined while the network is not founded.
     */
    const termsNow: Effect.Effect<CharterTerms | undefined> = Effect.suspend(() =>
      cached !== undefined ? Effect.succeed(cached) : Effect.map(Effect.orDie(terms()), Option.getOrUndefined)
    )

    return { found, terms, termsNow } as const
  })
}) {}
