/**
 * Reads and sets network parameters: each owner's values in force (defaults where never changed) and
 * the only way to change one, a command to the owner's `Parameters-<owner>` entity.
 */
import { Effect } from "effect"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { ParameterName, ParameterOwner } from "./ParameterCatalogue.js"
import { PARAMETERS } from "./ParameterCatalogue.js"
import { Parameters, valuesOf } from "./Parameters.js"

export interface ParametersInForce {
  readonly owner: ParameterOwner
  readonly values: Readonly<Record<string, bigint>>
  /** Version of the owner's parameters stream: which settings a decision saw. */
  readonly version: number
}

export class NetworkParameters extends Effect.Service<NetworkParameters>()("edge-net/NetworkParameters", {
  effect: Effect.gen(function*() {
    const entities = yield* ActorRunner.make(Parameters, { snapshotEvery: 0 })

    const current = Effect.fn("NetworkParameters.current")(function*(owner: ParameterOwner) {
      const { state, version } = yield* entities.state(owner)
      return { owner, values: valuesOf(owner, state), version } satisfies ParametersInForce
    })

    /** Sets one parameter on its owner; `commandId` makes a redelivered change apply once. */
    const set = Effect.fn("NetworkParameters.set")(
      function*(name: ParameterName, value: bigint, options: { proposalId?: string; commandId?: string } = {}) {
        const owner = PARAMETERS[name].owner
        yield* entities.send(owner, { _tag: "SetParameter", owner, name, value, proposalId: options.proposalId }, {
          commandId: options.commandId ?? `set/${name}/${value}/${options.proposalId ?? "genesis"}`
        })
        return yield* current(owner)
      }
    )

    /** Whether the parameter was ever changed (by genesis settings or a proposal) from its default. */
    const wasChanged = Effect.fn("NetworkParameters.wasChanged")(function*(name: ParameterName) {
      const { state } = yield* entities.state(PARAMETERS[name].owner)
      return Object.hasOwn(state.changed, name)
    })

    return { current, set, wasChanged } as const
  })
}) {}
