/**
 * A subsystem keeps its parameters in its own entity (`Parameters-<owner>`), changed only by a command
 * (from an executed governance proposal, or at genesis); decisions record the values they used.
 */
import { Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"
import type { ParameterName, ParameterOwner } from "./ParameterCatalogue.js"
import {
  boundsProblem,
  InvalidParameter,
  ParameterNameSchema,
  PARAMETERS,
  parametersOwnedBy,
  proposedChangeProblem
} from "./ParameterCatalogue.js"

export const ParameterChanged = Schema.TaggedStruct("ParameterChanged", {
  name: ParameterNameSchema,
  from: Schema.BigInt,
  to: Schema.BigInt,
  /** The governance proposal that changed it (absent for genesis settings). */
  proposalId: Schema.optional(Schema.String)
})
export const ParametersEvent = Schema.Union(ParameterChanged)
export type ParametersEvent = typeof ParametersEvent.Type

/** Values that differ from the defaults; `valuesOf` fills in the rest. */
export const ParametersState = Schema.Struct({ changed: Schema.Record({ key: Schema.String, value: Schema.BigInt }) })
export type ParametersState = typeof ParametersState.Type

export type ParametersCommand = {
  readonly _tag: "SetParameter"
  readonly owner: ParameterOwner
  readonly name: ParameterName
  readonly value: bigint
  readonly proposalId?: string | undefined
}

export const valueOf = (state: ParametersState, name: ParameterName): bigint =>
  (Object.hasOwn(state.changed, name) ? state.changed[name] : undefined) ?? PARAMETERS[name].default

export const valuesOf = (owner: ParameterOwner, state: ParametersState): Record<string, bigint> =>
  Object.fromEntries(parametersOwnedBy(owner).map((name) => [name, valueOf(state, name)]))

const decide = (
  command: ParametersCommand,
  state: ParametersState
): Effect.Effect<ReadonlyArray<ParametersEvent>, InvalidParameter> => {
  if (!Object.hasOwn(PARAMETERS, command.name) || PARAMETERS[command.name].owner !== command.owner) {
    return Effect.fail(new InvalidParameter({ name: command.name, reason: `is not owned by ${command.owner}` }))
  }
  const from = valueOf(state, command.name)
  // Genesis settings are checked against the range only; a proposal's change also against the step.
  const problem = command.proposalId === undefined
    ? boundsProblem(command.name, command.value)
    : proposedChangeProblem(command.name, from, command.value)
  if (problem !== undefined) return Effect.fail(new InvalidParameter({ name: command.name, reason: problem }))
  if (from === command.value) return Effect.succeed([])
  return Effect.succeed([
    ParameterChanged.make({ name: command.name, from, to: command.value, proposalId: command.proposalId })
  ])
}

const evolve = (state: ParametersState, event: ParametersEvent): ParametersState => ({
  changed: { ...state.changed, [event.name]: event.to }
})

export const Parameters: EventSourced<ParametersCommand, ParametersEvent, ParametersState, InvalidParameter> = {
  category: "Parameters",
  decider: { initialState: { changed: {} }, decide, evolve },
  event: ParametersEvent,
  state: ParametersState
}
