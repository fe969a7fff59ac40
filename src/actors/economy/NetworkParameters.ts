/**
 * The network's tunable parameters (the seed's `NetworkParameter`s and more), each owned by one
 * subsystem. A subsystem keeps its parameters in its own entity (`Parameters-<owner>`), changed only by
 * a command (from an executed governance proposal, or at genesis), and records the values in force
 * in the events of every decision that used them.
 */
import { Effect, Schema } from "effect"
import type { EventSourced } from "../../events/Decider.js"

export const ParameterOwner = Schema.Literal("economy", "market", "governance", "registry")
export type ParameterOwner = typeof ParameterOwner.Type

/**
 * Every parameter, its owner and default. Rates are integers in parts per million (ppm) or basis
 * points (bps) so decisions stay in integer arithmetic; durations in milliseconds; amounts in rUv.
 */
export const PARAMETERS = {
  minStake: { owner: "economy", default: 100n, description: "rUv a node must stake to bid for tasks" },
  unbondingDelayMs: { owner: "economy", default: 60_000n, description: "wait between unbonding and withdrawing stake" },
  slashIncorrectResultPpm: { owner: "economy", default: 100_000n, description: "share of stake slashed for an incorrect result (10%)" },
  slashEquivocationPpm: { owner: "economy", default: 500_000n, description: "for conflicting claims (50%)" },
  slashChallengeTimeoutPpm: { owner: "economy", default: 50_000n, description: "for failing to deliver in time (5%)" },
  slashSybilAttackPpm: { owner: "economy", default: 1_000_000n, description: "for Sybil behaviour (100%)" },
  slashProtocolViolationPpm: { owner: "economy", default: 200_000n, description: "for protocol violations (20%)" },
  reputationDecayPpm: { owner: "economy", default: 10_000n, description: "reputation lost per decay interval (1%)" },
  reputationDecayIntervalMs: { owner: "economy", default: 3_600_000n, description: "length of a decay interval" },
  vestingPeriodMs: { owner: "economy", default: 60_000n, description: "time before a reward can be claimed" },
  feeBps: { owner: "market", default: 30n, description: "AMM fee on input (0.30%)" },
  maxDiscountPpm: { owner: "market", default: 200_000n, description: "largest reputation discount on the bonding curve (20%)" },
  bidDepositRuv: { owner: "market", default: 10n, description: "deposit a sealed bid locks until it is revealed" },
  quorumPpm: { owner: "governance", default: 500_000n, description: "share of snapshot stake that must vote (50%)" },
  votingDelayMs: { owner: "governance", default: 0n, description: "wait between proposal and voting" },
  votingPeriodMs: { owner: "governance", default: 60_000n, description: "length of the vote" },
  timelockMs: { owner: "governance", default: 10_000n, description: "wait between queueing and execution" },
  adapterShareMinReputationPpm: { owner: "registry", default: 700_000n, description: "reputation a node needs to share an adapter (0.7, seed 10.2)" },
  adapterSharesPerHour: { owner: "registry", default: 10n, description: "adapters one node may share per hour (seed 10.2)" },
  adapterMinQualityPpm: { owner: "registry", default: 500_000n, description: "quality score a shared adapter must reach (0.5)" }
} as const satisfies Record<string, { owner: ParameterOwner; default: bigint; description: string }>

export type ParameterName = keyof typeof PARAMETERS
export const ParameterNameSchema = Schema.Literal(...(Object.keys(PARAMETERS) as [ParameterName, ...Array<ParameterName>]))

export const parametersOwnedBy = (owner: ParameterOwner): ReadonlyArray<ParameterName> =>
  (Object.keys(PARAMETERS) as Array<ParameterName>).filter((name) => PARAMETERS[name].owner === owner)

export const defaultsFor = (owner: ParameterOwner): Record<string, bigint> =>
  Object.fromEntries(parametersOwnedBy(owner).map((name) => [name, PARAMETERS[name].default]))

// Events and state of a `Parameters-<owner>` entity.
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

export class InvalidParameter extends Schema.TaggedError<InvalidParameter>()("InvalidParameter", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `parameter ${this.name}: ${this.reason}`
  }
}

export const valueOf = (state: ParametersState, name: ParameterName): bigint => state.changed[name] ?? PARAMETERS[name].default

export const valuesOf = (owner: ParameterOwner, state: ParametersState): Record<string, bigint> =>
  Object.fromEntries(parametersOwnedBy(owner).map((name) => [name, valueOf(state, name)]))

const validate = (name: ParameterName, value: bigint): string | undefined => {
  if (value < 0n) return "must not be negative"
  if (name.endsWith("Ppm") && value > 1_000_000n) return "is parts per million: at most 1000000"
  if (name.endsWith("Bps") && value >= 10_000n) return "is basis points: below 10000"
  if (name === "reputationDecayIntervalMs" && value === 0n) return "must be positive"
  return undefined
}

const decide = (command: ParametersCommand, state: ParametersState): Effect.Effect<ReadonlyArray<ParametersEvent>, InvalidParameter> => {
  if (PARAMETERS[command.name]?.owner !== command.owner) {
    return Effect.fail(new InvalidParameter({ name: command.name, reason: `is not owned by ${command.owner}` }))
  }
  const problem = validate(command.name, command.value)
  if (problem !== undefined) return Effect.fail(new InvalidParameter({ name: command.name, reason: problem }))
  const from = valueOf(state, command.name)
  if (from === command.value) return Effect.succeed([])
  return Effect.succeed([ParameterChanged.make({ name: command.name, from, to: command.value, proposalId: command.proposalId })])
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
