/**
 * Staking: nodes bond rUv into `stake:<node>` through the ledger, unbond it with a delay, withdraw it
 * once matured, and lose a share of it (burned) when slashed; active stake now or at a journal position.
 */
import { Clock, Effect, Layer, Random, Schema } from "effect"
import { accountIdOf } from "../../domain/Ed25519.js"
import { makeStreamId, streamEntityId } from "../../domain/Ids.js"
import type { AuditFolds } from "../../events/ActorRegistry.js"
import * as ActorRunner from "../../events/ActorRunner.js"
import type { Envelope } from "../../events/Envelope.js"
import type { ForkProof } from "../../events/ForkProof.js"
import { forkProofId, forkProofValid } from "../../events/ForkProof.js"
import { Journal } from "../../events/Journal.js"
import * as Policy from "../../events/Policy.js"
import { Ledger } from "./Ledger.js"
import { InvalidAmount } from "./LedgerErrors.js"
import { NetworkParameters } from "./NetworkParameters.js"
import type { SlashReason, StakeEvent, StakeState } from "./Stake.js"
import {
  InsufficientStake,
  InvalidForkProof,
  PendingUnbond,
  stakeAccount,
  StakeEvent as StakeEventSchema,
  Stakes,
  unbondingTotal
} from "./Stake.js"

/** The offences a slash names, for callers of `slash`. */
export type { SlashReason }

export const StakeView = Schema.Struct({
  node: Schema.String,
  active: Schema.BigInt,
  unbonding: Schema.BigInt,
  pending: Schema.Array(PendingUnbond),
  withdrawn: Schema.BigInt,
  slashed: Schema.BigInt,
  version: Schema.Number
})
export type StakeView = typeof StakeView.Type

export const StakeReceipt = Schema.Struct({
  ...StakeView.fields,
  /** What this command recorded (the original events when it was a retry). */
  events: Schema.Array(StakeEventSchema),
  /** Global position of the stake entity's event. */
  position: Schema.Number,
  duplicate: Schema.Boolean
})
export type StakeReceipt = typeof StakeReceipt.Type

const PAGE = 4096

const toView = (node: string, state: StakeState, version: number): StakeView => ({
  node,
  active: state.active,
  unbonding: unbondingTotal(state),
  pending: state.unbonding,
  withdrawn: state.withdrawn,
  slashed: state.slashed,
  version
})

const newId = Effect.zipWith(
  Clock.currentTimeMillis,
  Random.nextInt,
  (now, n) => `${now.toString(36)}-${(n >>> 0).toString(36)}`
)

// The ids money moves under: derived from the stake operation, so a retried call moves nothing twice.
export const stakeTransferId = (node: string, stakeId: string) => `stake/${node}/${stakeId}`
export const withdrawTransferId = (node: string, withdrawId: string) => `withdraw/${node}/${withdrawId}`
export const slashBurnId = (node: string, slashId: string) => `slash/${node}/${slashId}`

export class Staking extends Effect.Service<Staking>()("edge-net/Staking", {
  effect: Effect.gen(function*() {
    const stakes = yield* ActorRunner.make(Stakes, { snapshotEvery: 100 })
    const ledger = yield* Ledger
    const parameters = yield* NetworkParameters
    const journal = yield* Journal
    const decodeEvent = Schema.decodeUnknownSync(StakeEventSchema)

    const receipt = (node: string, result: ActorRunner.CommandResult<StakeEvent, StakeState>): StakeReceipt => ({
      ...toView(node, result.state, result.version),
      events: result.events,
      position: result.position,
      duplicate: result.duplicate
    })

    // Money moves after the entity recorded the decision; both steps are idempotent, and the
    // `staking.settlement` policy finishes a payout or burn that a crash interrupted.
    const settle = (node: string, event: StakeEvent) => {
      if (event._tag === "Withdrawn") {
        return Effect.asVoid(
          ledger.transfer(stakeAccount(node), node, event.amount, withdrawTransferId(node, event.withdrawId))
        )
      }
      if (event._tag === "Slashed" && event.amount > 0n) {
        return Effect.asVoid(ledger.burn(stakeAccount(node), event.amount, slashBurnId(node, event.slashId)))
      }
      return Effect.void
    }

    const stakeOf = Effect.fn("Staking.stakeOf")(function*(node: string) {
      const { state, version } = yield* stakes.state(node)
      return toView(node, state, version)
    })

    /** Bonds `amount` of the node's rUv: a transfer node -> `stake:<node>`, then the Staked event. */
    const stake = Effect.fn("Staking.stake")(function*(node: string, amount: bigint, operationId?: string) {
      if (amount <= 0n) return yield* Effect.fail(new InvalidAmount({ amount, reason: "must be positive" }))
      const stakeId = operationId ?? (yield* newId)
      // Money first: a stake is never recorded without its rUv; a retry with the same id finishes both.
      yield* ledger.transfer(node, stakeAccount(node), amount, stakeTransferId(node, stakeId))
      const result = yield* stakes.send(node, { _tag: "Stake", stakeId, amount }, {
        commandId: `stake/${node}/${stakeId}`
      })
      return receipt(node, result)
    })

    /** Stops `amount` of active stake from counting at once; it can be withdrawn after `unbondingDelayMs`. */
    const unbond = Effect.fn("Staking.unbond")(function*(node: string, amount: bigint, operationId?: string) {
      const unbondId = operationId ?? (yield* newId)
      const inForce = yield* parameters.current("economy")
      const result = yield* stakes.send(node, { _tag: "Unbond", unbondId, amount, parameters: inForce }, {
        commandId: `unbond/${node}/${unbondId}`
      })
      return receipt(node, result)
    })

    /** Pays every matured unbonding back to the node (`stake:<node>` -> node). */
    const withdraw = Effect.fn("Staking.withdraw")(function*(node: string, operationId?: string) {
      const withdrawId = operationId ?? (yield* newId)
      const result = yield* stakes.send(node, { _tag: "Withdraw", withdrawId }, {
        commandId: `withdraw/${node}/${withdrawId}`
      })
      yield* Effect.forEach(result.events, (event) => settle(node, event), { discard: true })
      return receipt(node, result)
    })

    /** Burns the offence's share (`slash<Reason>Ppm` in force, floor) of the node's active stake. */
    const slash = Effect.fn("Staking.slash")(
      function*(node: string, reason: SlashReason, evidence: string, operationId: string) {
        const inForce = yield* parameters.current("economy")
        const result = yield* stakes.send(
          node,
          { _tag: "Slash", slashId: operationId, reason, evidence, parameters: inForce },
          { commandId: `slash/${node}/${operationId}` }
        )
        yield* Effect.forEach(result.events, (event) => settle(node, event), { discard: true })
        return receipt(node, result)
      }
    )

    /**
     * Slashes the node whose key signed two histories, on a fork proof anyone may bring (the proof is
     * the authority: it is checked here, and stored with the command for every replayer to check
     * again). The node is the key's account. Peers that catch one fork hold different pairs of heads
     * for it, so the slash is once per key: a key proven to equivocate is slashed once, and every
     * follower has stopped trusting its feed; further proofs against it change nothing.
     */
    const slashEquivocation = Effect.fn("Staking.slashEquivocation")(function*(proof: ForkProof) {
      if (!forkProofValid(proof)) return yield* new InvalidForkProof({ publicKey: proof.publicKey })
      return yield* slash(accountIdOf(proof.publicKey), "Equivocation", forkProofId(proof), "equivocation")
    })

    const activeStake = Effect.fn("Staking.activeStake")(function*(node: string) {
      return (yield* stakes.state(node)).state.active
    })

    /** Whether the node's active stake reaches `minStake` in force. */
    const hasMinStake = Effect.fn("Staking.hasMinStake")(function*(node: string) {
      const minStake = (yield* parameters.current("economy")).values["minStake"] ?? 0n
      return (yield* activeStake(node)) >= minStake
    })

    /** Fails with InsufficientStake (`insufficient stake: 50 rUv staked, 100 required`) below `minStake`. */
    const requireMinStake = Effect.fn("Staking.requireMinStake")(function*(node: string) {
      const minStake = (yield* parameters.current("economy")).values["minStake"] ?? 0n
      const active = yield* activeStake(node)
      if (active < minStake) return yield* Effect.fail(new InsufficientStake({ staked: active, required: minStake }))
      return active
    })

    /** Active stake folded from the node's stake events at or before global `position` (governance snapshots). */
    const stakeAt = Effect.fn("Staking.stakeAt")(function*(node: string, position: number) {
      const streamId = makeStreamId(Stakes.category, node)
      let state = Stakes.decider.initialState
      let fromVersion = 1
      while (true) {
        const page = yield* journal.readStream(streamId, fromVersion, PAGE)
        for (const envelope of page) {
          if (envelope.position > position) return state.active
          state = Stakes.decider.evolve(state, decodeEvent(envelope.payload))
        }
        if (page.length < PAGE) return state.active
        fromVersion = page[page.length - 1]!.streamVersion + 1
      }
    })

    /** The active stake of every staker at global `position`, replayed from the log. */
    const totalActiveStakeAt = Effect.fn("Staking.totalActiveStakeAt")(function*(position: number) {
      let total = 0n
      for (const { state } of (yield* stakes.replay(position)).values()) total += state.active
      return total
    })

    /** The rUv each stake account should hold (active and unbonding stake), folded from the log alone, for the audit's books. */
    const stakeAccountsFromLog = Effect.fn("Staking.stakeAccountsFromLog")(function*(folds?: AuditFolds) {
      const owed = new Map<string, bigint>()
      for (const [node, { state }] of yield* stakes.replayedIn(folds)) {
        owed.set(stakeAccount(node), state.active + unbondingTotal(state))
      }
      return owed as ReadonlyMap<string, bigint>
    })

    /** For the settlement policy: finishes the payout or burn of a Withdrawn or Slashed event. */
    const completeSettlement = (envelope: Envelope) =>
      settle(streamEntityId(envelope.streamId), decodeEvent(envelope.payload))

    return {
      stake,
      unbond,
      withdraw,
      slash,
      slashEquivocation,
      stakeOf,
      activeStake,
      hasMinStake,
      requireMinStake,
      stakeAt,
      totalActiveStakeAt,
      stakeAccountsFromLog,
      completeSettlement
    } as const
  })
}) {}

/** The policy that finishes withdrawals and burns a crash interrupted: at least once, applied once. */
export const stakingSettlementPolicyDefinition = Effect.map(Staking, (staking): Policy.PolicyDefinition<never> => ({
  name: "staking.settlement",
  categories: [Stakes.category],
  eventTypes: ["Withdrawn", "Slashed"],
  handle: staking.completeSettlement
}))

export const stakingSettlementPolicy = Layer.unwrapEffect(Effect.map(stakingSettlementPolicyDefinition, Policy.layer))
