/**
 * Brings every fork proof the node's peer holds to the economy: a `ReportEquivocation` command
 * signed by the node key, which reaches the sequencer like any economy command. A proof is reported
 * until the economy has decided on it (slashed, or refused as proving nothing); while the sequencer
 * cannot be reached it is tried again every round. Every peer reports what it holds, and the stake
 * actor slashes once per proof, so the slash does not depend on any one peer.
 */
import { RpcTest } from "@effect/rpc"
import { Effect, Layer, Option, Schedule } from "effect"
import { NetworkCharter } from "../actors/network/CharterService.js"
import { NodeKey } from "../content/NodeKey.js"
import { forkProofId } from "../events/ForkProof.js"
import { Peers } from "../net/Peers.js"
import { signingAs } from "./CommandSigning.js"
import { NodeApiRpcs } from "./NodeApiRpcs.js"

/** Errors after which the report is worth sending again: the sequencer was not reached. */
const RETRIED = new Set(["SequencerUnreachable", "RpcClientError"])

export const equivocationReports = (intervalMs = 1_000) =>
  Layer.scopedDiscard(
    Effect.gen(function*() {
      const peers = yield* Peers
      const key = yield* NodeKey
      const charter = yield* NetworkCharter
      const client = yield* RpcTest.makeClient(NodeApiRpcs)
      const decided = new Set<string>()

      // Each round looks at the proofs the peer holds, and asks the charter for the network only when
      // one is still to report: an idle node's round builds nothing (it built the whole peers view and
      // read the charter every second, a third of what an idle node allocated).
      const round = Effect.gen(function*() {
        const pending = (yield* peers.forkProofs).filter((proof) => !decided.has(forkProofId(proof)))
        if (pending.length === 0) return
        const terms = yield* charter.terms()
        if (Option.isNone(terms)) return
        const network = terms.value.network
        for (const proof of pending) {
          const id = forkProofId(proof)
          const outcome = yield* signingAs({ key, network })(client.ReportEquivocation({ proof })).pipe(Effect.either)
          if (outcome._tag === "Right") {
            decided.add(id)
            yield* Effect.logWarning(
              `equivocation by ${proof.publicKey} at ${proof.first.position}: its stake is now ${outcome.right.active} rUv`
            )
          } else if (!RETRIED.has(outcome.left._tag)) {
            decided.add(id)
            yield* Effect.logWarning(`the economy refused the fork proof ${id}: ${outcome.left.message}`)
          }
        }
      })

      yield* Effect.forkScoped(
        Effect.repeat(
          Effect.catchAllCause(round, (cause) => Effect.logWarning("reporting fork proofs failed", cause)),
          Schedule.spaced(intervalMs)
        )
      )
    })
  )
