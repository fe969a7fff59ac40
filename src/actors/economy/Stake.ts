/**
 * A node's stake as an event-sourced entity (`Stake-<node>`): rUv bonded as collateral, unbonded with
 * a delay before it can be withdrawn, and slashed (burned) for offences at the rate in force.
 */
import { Clock, Effect, Schema } from "effect"
import { RecordedCredits } from "../../domain/Money.js"
import type { EventSourced } from "../../events/Decider.js"
import { InvalidAmount } from "./LedgerErrors.js"
import type { ParameterName } from "./ParameterCatalogue.js"

/** The seed's offences, each with its own slashing rate (`slash<Reason>Ppm`). */
export const SlashReason = Schema.Literal(
  "IncorrectResult",
  "Equivocation",
  "ChallengeTimeout",
  "SybilAttack",
  "ProtocolViolation"
)
export type SlashReason = typeof SlashReason.Type

export const slashRateParameter = (reason: SlashReason): ParameterName => `slash${reason}Ppm`

/** The ledger account that holds a node's bonded and unbonding rUv. */
export const stakeAccount = (node: string): string => `stake:${node}`

const PPM = 1_000_000n

// Events
export const Staked = Schema.TaggedStruct("Staked", {
  stakeId: Schema.String,
  amount: RecordedCredits,
  at: Schema.Number
})
export const Unbonding = Schema.TaggedStruct("Unbonding", {
  unbondId: Schema.String,
  amount: RecordedCredits,
  at: Schema.Number,
  availableAt: Schema.Number,
  unbondingDelayMs: Schema.BigInt,
  parametersVersion: Schema.Number
})
export const Withdrawn = Schema.TaggedStruct("Withdrawn", {
  withdrawId: Schema.String,
  amount: RecordedCredits,
  /** The matured unbondings this withdrawal paid out. */
  unbondIds: Schema.Array(Schema.String),
  at: Schema.Number
})
export const Slashed = Schema.TaggedStruct("Slashed", {
  slashId: Schema.String,
  reason: SlashReason,
  /** floor(activeBefore * ratePpm / 1e6), burned from `stake:<node>`. */
  amount: RecordedCredits,
  ratePpm: Schema.BigInt,
  activeBefore: RecordedCredits,
  evidence: Schema.String,
  at: Schema.Number,
  parametersVersion: Schema.Number
})
export const StakeEvent = Schema.Union(Staked, Unbonding, Withdrawn, Slashed)
export type StakeEvent = typeof StakeEvent.Type

export const PendingUnbond = Schema.Struct({
  unbondId: Schema.String,
  amount: RecordedCredits,
  availableAt: Schema.Number
})
export type PendingUnbond = typeof PendingUnbond.Type

export const StakeState = Schema.Struct({
  /** Bonded stake: what counts for bidding, voting and slashing. */
  active: RecordedCredits,
  /** Unbonded, waiting for its delay; no longer active, not yet withdrawn. */
  unbonding: Schema.Array(PendingUnbond),
  withdrawn: RecordedCredits,
  slashed: RecordedCredits
})
export type StakeState = typeof StakeState.Type

/** The economy parameters in force when the service sent the command, and their stream version. */
export interface ParametersSeen {
  readonly values: Readonly<Record<string, bigint>>
  readonly version: number
}

export type StakeCommand =
  | { readonly _tag: "Stake"; readonly stakeId: string; readonly amount: bigint }
  | { readonly _tag: "Unbond"; readonly unbondId: string; readonly amount: bigint; readonly parameters: ParametersSeen }
  | { readonly _tag: "Withdraw"; readonly withdrawId: string }
  | {
    readonly _tag: "Slash"
    readonly slashId: string
    readonly reason: SlashReason
    readonly evidence: string
    readonly parameters: ParametersSeen
  }

// Errors a node can hit; they cross RPC as typed failures.
/** A fork proof brought to slash a node that proves nothing: refused before anything is decided. */
export class InvalidForkProof extends Schema.TaggedError<InvalidForkProof>()("InvalidForkProof", {
  publicKey: Schema.String
}) {
  override get message() {
    return `the fork proof against ${this.publicKey} does not show two histories signed by that key`
  }
}

export class InsufficientStake extends Schema.TaggedError<InsufficientStake>()("InsufficientStake", {
  staked: RecordedCredits,
  required: RecordedCredits
}) {
  override get message() {
    return `insufficient stake: ${this.staked} rUv staked, ${this.required} required`
  }
}

export class NothingToWithdraw extends Schema.TaggedError<NothingToWithdraw>()("NothingToWithdraw", {
  unbonding: RecordedCredits,
  /** When the first unbonding matures (ms since the epoch), null when nothing is unbonding. */
  availableAt: Schema.NullOr(Schema.Number)
}) {
  override get message() {
    return this.availableAt === null
      ? "nothing to withdraw: no stake is unbonding"
      : `nothing to withdraw yet: ${this.unbonding} rUv unbonding, the first available at ${
        new Date(this.availableAt).toISOString()
      }`
  }
}

export const StakeError = Schema.Union(InvalidAmount, InsufficientStake, NothingToWithdraw)
export type StakeError = typeof StakeError.Type

const initialState: StakeState = { active: 0n, unbonding: [], withdrawn: 0n, slashed: 0n }

export const unbondingTotal = (state: StakeState): bigint =>
  state.unbonding.reduce((sum, unbond) => sum + unbond.amount, 0n)

const positive = (amount: bigint) =>
  amount > 0n ? Effect.void : Effect.fail(new InvalidAmount({ amount, reason: "must be positive" }))

const parameter = (parameters: ParametersSeen, name: ParameterName): bigint => parameters.values[name] ?? 0n

const decide = (command: StakeCommand, state: StakeState): Effect.Effect<ReadonlyArray<StakeEvent>, StakeError> =>
  Effect.flatMap(Clock.currentTimeMillis, (at): Effect.Effect<ReadonlyArray<StakeEvent>, StakeError> => {
    switch (command._tag) {
      case "Stake":
        return positive(command.amount).pipe(
          Effect.as([Staked.make({ stakeId: command.stakeId, amount: command.amount, at })])
        )
      case "Unbond": {
        if (command.amount > state.active) {
          return Effect.fail(new InsufficientStake({ staked: state.active, required: command.amount }))
        }
        const unbondingDelayMs = parameter(command.parameters, "unbondingDelayMs")
        return positive(command.amount).pipe(Effect.as([Unbonding.make({
          unbondId: command.unbondId,
          amount: command.amount,
          at,
          availableAt: at + Number(unbondingDelayMs),
          unbondingDelayMs,
          parametersVersion: command.parameters.version
        })]))
      }
      case "Withdraw": {
        const matured = state.unbonding.filter((unbond) => unbond.availableAt <= at)
        if (matured.length === 0) {
          const first = state.unbonding.reduce<number | null>(
            (min, unbond) => (min === null || unbond.availableAt < min ? unbond.availableAt : min),
            null
          )
          return Effect.fail(new NothingToWithdraw({ unbonding: unbondingTotal(state), availableAt: first }))
        }
        return Effect.succeed([Withdrawn.make({
          withdrawId: command.withdrawId,
          amount: matured.reduce((sum, unbond) => sum + unbond.amount, 0n),
          unbondIds: matured.map((unbond) => unbond.unbondId),
          at
        })])
      }
      case "Slash": {
        const ratePpm = parameter(command.parameters, slashRateParameter(command.reason))
        // Floor, as the design says: the slashed node never loses more than the rate.
        const amount = (state.active * ratePpm) / PPM
        return Effect.succeed([Slashed.make({
          slashId: command.slashId,
          reason: command.reason,
          amount,
          ratePpm,
          activeBefore: state.active,
          evidence: command.evidence,
          at,
          parametersVersion: command.parameters.version
        })])
      }
    }
  })

const evolve = (state: StakeState, event: StakeEvent): StakeState => {
  switch (event._tag) {
    case "Staked":
      return { ...state, active: state.active + event.amount }
    case "Unbonding":
      return {
        ...state,
        active: state.active - event.amount,
        unbonding: [...state.unbonding, {
          unbondId: event.unbondId,
          amount: event.amount,
          availableAt: event.availableAt
        }]
      }
    case "Withdrawn": {
      const paid = new Set(event.unbondIds)
      return {
        ...state,
        unbonding: state.unbonding.filter((unbond) => !paid.has(unbond.unbondId)),
        withdrawn: state.withdrawn + event.amount
      }
    }
    case "Slashed":
      return { ...state, active: state.active - event.amount, slashed: state.slashed + event.amount }
  }
}

export const Stakes: EventSourced<StakeCommand, StakeEvent, StakeState, StakeError> = {
  category: "Stake",
  decider: { initialState, decide, evolve },
  event: StakeEvent,
  state: StakeState
}
