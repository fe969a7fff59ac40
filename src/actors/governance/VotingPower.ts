/**
 * Where governance reads stake: a voter's stake and the network's total at a journal position (the
 * proposal's snapshot), and a node's active stake now. The economy's Staking service provides it.
 */
import { Context } from "effect"
import type { Effect } from "effect"

export interface VotingPowerSource {
  /** The node's active stake folded from its stake events at global positions <= `position`. */
  readonly stakeAt: (node: string, position: number) => Effect.Effect<bigint>
  /** Every node's active stake at `position`, summed. */
  readonly totalStakeAt: (position: number) => Effect.Effect<bigint>
  readonly activeStake: (node: string) => Effect.Effect<bigint>
}

export class VotingPower extends Context.Tag("edge-net/VotingPower")<VotingPower, VotingPowerSource>() {}
