/**
 * The network's tunable parameters (the seed's `NetworkParameter`s and more), each owned by one
 * subsystem, with their ranges and the rules a change must pass: the catalogue every subsystem reads.
 * The values in force live in `Parameters-<owner>` entities (Parameters.ts), changed only by command.
 */
import { Schema } from "effect"

export const ParameterOwner = Schema.Literal("economy", "market", "governance", "registry")
export type ParameterOwner = typeof ParameterOwner.Type

const SECOND = 1_000n
const DAY = 86_400_000n
const PPM = 1_000_000n
/** A ceiling for amounts in rUv: 30 decimal digits, the most an amount from outside can have. */
const MAX_RUV = 10n ** 30n - 1n

/**
 * Every parameter, its owner and default, and the range no value may leave (genesis settings
 * included). Rates are integers in parts per million (ppm) or basis points (bps) so decisions stay in
 * integer arithmetic; durations in milliseconds; amounts in rUv. The ranges of durations admit the
 * short periods of a test network; how fast one proposal may move a value is `stepProblem`'s rule.
 */
export const PARAMETERS = {
  minStake: {
    owner: "economy",
    default: 100n,
    min: 1n,
    max: MAX_RUV,
    description: "rUv a node must stake to bid for tasks"
  },
  unbondingDelayMs: {
    owner: "economy",
    default: 60_000n,
    min: 0n,
    max: 90n * DAY,
    description: "wait between unbonding and withdrawing stake"
  },
  slashIncorrectResultPpm: {
    owner: "economy",
    default: 100_000n,
    min: 0n,
    max: PPM,
    description: "share of stake slashed for an incorrect result (10%)"
  },
  slashEquivocationPpm: {
    owner: "economy",
    default: 500_000n,
    min: 0n,
    max: PPM,
    description: "for conflicting claims (50%)"
  },
  slashChallengeTimeoutPpm: {
    owner: "economy",
    default: 50_000n,
    min: 0n,
    max: PPM,
    description: "for failing to deliver in time (5%)"
  },
  slashSybilAttackPpm: {
    owner: "economy",
    default: 1_000_000n,
    min: 0n,
    max: PPM,
    description: "for Sybil behaviour (100%)"
  },
  slashProtocolViolationPpm: {
    owner: "economy",
    default: 200_000n,
    min: 0n,
    max: PPM,
    description: "for protocol violations (20%)"
  },
  reputationDecayPpm: {
    owner: "economy",
    default: 10_000n,
    min: 0n,
    max: PPM,
    description: "reputation lost per decay interval (1%)"
  },
  reputationDecayIntervalMs: {
    owner: "economy",
    default: 3_600_000n,
    min: SECOND,
    max: 365n * DAY,
    description: "length of a decay interval"
  },
  vestingPeriodMs: {
    owner: "economy",
    default: 60_000n,
    min: 0n,
    max: 365n * DAY,
    description: "time before a reward can be claimed"
  },
  feeBps: { owner: "market", default: 30n, min: 0n, max: 1_000n, description: "AMM fee on input (0.30%), at most 10%" },
  maxDiscountPpm: {
    owner: "market",
    default: 200_000n,
    min: 0n,
    max: PPM,
    description: "largest reputation discount on the bonding curve (20%)"
  },
  bidDepositRuv: {
    owner: "market",
    default: 10n,
    min: 0n,
    max: MAX_RUV,
    description: "deposit a sealed bid locks until it is revealed"
  },
  quorumPpm: {
    owner: "governance",
    default: 500_000n,
    min: 100_000n,
    max: PPM,
    description: "share of snapshot stake that must vote (50%), 10% to 100%"
  },
  proposalThresholdRuv: {
    owner: "governance",
    default: 100n,
    min: 1n,
    max: MAX_RUV,
    description: "stake a proposer must have at the snapshot"
  },
  votingDelayMs: {
    owner: "governance",
    default: 10_000n,
    min: 0n,
    max: 7n * DAY,
    description: "wait between proposal and voting"
  },
  votingPeriodMs: {
    owner: "governance",
    default: 60_000n,
    min: 10n,
    max: 30n * DAY,
    description: "length of the vote"
  },
  timelockMs: {
    owner: "governance",
    default: 10_000n,
    min: 0n,
    max: 30n * DAY,
    description: "wait between queueing and execution"
  },
  adapterShareMinReputationPpm: {
    owner: "registry",
    default: 700_000n,
    min: 0n,
    max: PPM,
    description: "reputation a node needs to share an adapter (0.7, seed 10.2)"
  },
  adapterSharesPerHour: {
    owner: "registry",
    default: 10n,
    min: 0n,
    max: 10_000n,
    description: "adapters one node may share per hour (seed 10.2)"
  },
  adapterMinQualityPpm: {
    owner: "registry",
    default: 500_000n,
    min: 0n,
    max: PPM,
    description: "quality score a shared adapter must reach (0.5)"
  }
} as const satisfies Record<
  string,
  { owner: ParameterOwner; default: bigint; min: bigint; max: bigint; description: string }
>

export type ParameterName = keyof typeof PARAMETERS
export const ParameterNameSchema = Schema.Literal(
  ...(Object.keys(PARAMETERS) as [ParameterName, ...Array<ParameterName>])
)

export const parametersOwnedBy = (owner: ParameterOwner): ReadonlyArray<ParameterName> =>
  (Object.keys(PARAMETERS) as Array<ParameterName>).filter((name) => PARAMETERS[name].owner === owner)

export const defaultsFor = (owner: ParameterOwner): Record<string, bigint> =>
  Object.fromEntries(parametersOwnedBy(owner).map((name) => [name, PARAMETERS[name].default]))

export class InvalidParameter extends Schema.TaggedError<InvalidParameter>()("InvalidParameter", {
  name: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `parameter ${this.name}: ${this.reason}`
  }
}

/** Why `value` is outside the parameter's range, or undefined when it is inside. */
export const boundsProblem = (name: ParameterName, value: bigint): string | undefined => {
  const { min, max } = PARAMETERS[name]
  return value < min || value > max ? `must be between ${min} and ${max}, not ${value}` : undefined
}

/**
 * How far one proposal may move a parameter: at most double or halve it (rounding down), so a
 * captured vote cannot take a value from one end of its range to the other in one go. From 0 a value
 * may rise to at most its default, the scale the parameter was designed around.
 */
export const stepRange = (name: ParameterName, from: bigint): { readonly lowest: bigint; readonly highest: bigint } =>
  from === 0n ? { lowest: 0n, highest: PARAMETERS[name].default } : { lowest: from / 2n, highest: from * 2n }

export const stepProblem = (name: ParameterName, from: bigint, to: bigint): string | undefined => {
  const { highest, lowest } = stepRange(name, from)
  return to < lowest || to > highest
    ? `one proposal may move it from ${from} to between ${lowest} and ${highest}, not ${to}`
    : undefined
}

/** The checks a change by proposal must pass against the value in force: the range, then the step. */
export const proposedChangeProblem = (name: ParameterName, from: bigint, to: bigint): string | undefined =>
  boundsProblem(name, to) ?? stepProblem(name, from, to)
