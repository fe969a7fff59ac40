/** A node's dead letters for its operator: listed, run again with the node's own policies, or cleared. */
import { Effect } from "effect"
import type { Checkpoints } from "../events/Checkpoints.js"
import * as DeadLetters from "../events/DeadLetters.js"
import type { Journal } from "../events/Journal.js"
import { nodePolicyDefinitions } from "./NodePolicies.js"

export class NodeDeadLetters extends Effect.Service<NodeDeadLetters>()("edge-net/NodeDeadLetters", {
  effect: Effect.gen(function*() {
    const policies = new Map((yield* nodePolicyDefinitions).map((definition) => [definition.name, definition]))
    const stores = yield* Effect.context<Checkpoints | Journal>()
    return {
      list: (limit: number) => DeadLetters.list(limit).pipe(Effect.provide(stores)),
      retry: (target: DeadLetters.DeadLetterTarget) => DeadLetters.retry(policies, target).pipe(Effect.provide(stores)),
      clear: (target: DeadLetters.DeadLetterTarget) => DeadLetters.clear(target).pipe(Effect.provide(stores))
    } as const
  })
}) {}
