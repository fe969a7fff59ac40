/** `edge-net stake add|unbond|withdraw|show`: a node's bonded rUv, its reputation and rewards. */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import type { StakeView } from "../actors/economy/StakeService.js"
import { asOwner, keyOption, parseAccount } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output, parseAmount, parseOperationId } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption }
const stakerArg = Args.text({ name: "node-id" })
const operationOption = Options.text("id").pipe(
  Options.withDescription("operation id: sending the same id again moves nothing twice"),
  Options.optional
)
const operationOf = (id: Option.Option<string>) =>
  Option.isNone(id) ? Effect.succeed({}) : Effect.map(parseOperationId(id.value), (operationId) => ({ operationId }))

const describeStake = (s: typeof StakeView.Type) =>
  [
    `${s.node}: ${s.active} rUv active stake, ${s.unbonding} unbonding, ${s.withdrawn} withdrawn, ${s.slashed} slashed`,
    ...s.pending.map((unbond) =>
      `  ${unbond.amount} rUv withdrawable from ${new Date(unbond.availableAt).toISOString()}`
    )
  ].join("\n")

const add = Command.make("add", {
  staker: stakerArg,
  amount: Args.text({ name: "amount" }),
  id: operationOption,
  key: keyOption,
  ...common
}, ({ amount, data, id, json, key, node, staker }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const receipt = yield* asOwner(key, staker)(
        client.call(
          client.rpc.Stake({
            node: yield* parseAccount(staker),
            amount: yield* parseAmount(amount),
            ...(yield* operationOf(id))
          })
        )
      )
      yield* output(
        json,
        receipt,
        (r) =>
          `${r.duplicate ? "already staked" : "staked"} ${amount} rUv (position ${r.position})\n${describeStake(r)}`
      )
    })
  )).pipe(Command.withDescription("bond rUv from the node's account into its stake"))

const unbond = Command.make("unbond", {
  staker: stakerArg,
  amount: Args.text({ name: "amount" }),
  id: operationOption,
  key: keyOption,
  ...common
}, ({ amount, data, id, json, key, node, staker }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const receipt = yield* asOwner(key, staker)(
        client.call(
          client.rpc.Unbond({
            node: yield* parseAccount(staker),
            amount: yield* parseAmount(amount),
            ...(yield* operationOf(id))
          })
        )
      )
      yield* output(json, receipt, (r) => `unbonding ${amount} rUv\n${describeStake(r)}`)
    })
  )).pipe(Command.withDescription("stop stake from counting now; withdraw it after the unbonding delay"))

const withdraw = Command.make(
  "withdraw",
  { staker: stakerArg, id: operationOption, key: keyOption, ...common },
  ({ data, id, json, key, node, staker }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const receipt = yield* asOwner(key, staker)(
          client.call(client.rpc.Withdraw({ node: yield* parseAccount(staker), ...(yield* operationOf(id)) }))
        )
        yield* output(json, receipt, (r) => `withdrew matured unbondings\n${describeStake(r)}`)
      })
    )
).pipe(Command.withDescription("pay matured unbondings back to the node's account"))

const show = Command.make(
  "show",
  { staker: stakerArg, ...common },
  ({ data, json, node, staker }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const who = yield* parseAccount(staker)
        const [stake, reputation, rewards] = yield* Effect.all([
          client.call(client.rpc.StakeOf({ node: who })),
          client.call(client.rpc.ReputationOf({ node: who })),
          client.call(client.rpc.RewardsOf({ node: who }))
        ])
        yield* output(json, { stake, reputation, rewards }, (r) =>
          [
            describeStake(r.stake),
            `reputation ${r.reputation.scorePpm} ppm (${r.reputation.successes} successes, ${r.reputation.failures} failures)`,
            `rewards: ${r.rewards.total} rUv pending, ${r.rewards.vested} claimable, ${r.rewards.claimed} claimed`
          ].join("\n"))
      })
    )
).pipe(Command.withDescription("a node's stake, reputation and rewards"))

export const stakeCommand = Command.make("stake").pipe(
  Command.withDescription("stake rUv to bid and vote; slashed on failed tasks"),
  Command.withSubcommands([add, unbond, withdraw, show])
)
