/** `edge-net ledger balance|transfer|mint`: rUv accounts, on a data dir or through a running node. */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import type { Balance } from "../actors/economy/Ledger.js"
import { asOperator, asOwner, keyOption, parseAccount } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output, parseAmount, parseOperationId } from "./Shared.js"

const describe = (balance: Balance) =>
  `${balance.account}: ${balance.available} rUv available${
    balance.held > 0n ? `, ${balance.held} held in ${Object.keys(balance.holds).length} escrow hold(s)` : ""
  }`

const balance = Command.make(
  "balance",
  { account: Args.text({ name: "account" }), data: dataOption, node: nodeOption, json: jsonOption },
  ({ account, data, json, node }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const id = yield* parseAccount(account)
        yield* output(json, yield* (yield* NodeClient).balance(id), describe)
      })
    )
).pipe(Command.withDescription("an account's available and held rUv"))

const transferId = Options.text("id").pipe(
  Options.withDescription("transfer id: sending the same id again moves nothing twice (default: a new id)"),
  Options.optional
)

const transfer = Command.make(
  "transfer",
  {
    from: Args.text({ name: "from" }),
    to: Args.text({ name: "to" }),
    amount: Args.text({ name: "amount" }),
    id: transferId,
    key: keyOption,
    data: dataOption,
    node: nodeOption,
    json: jsonOption
  },
  ({ amount, data, from, id, json, key, node, to }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const payer = yield* parseAccount(from)
        const payee = yield* parseAccount(to)
        const credits = yield* parseAmount(amount)
        const transferId = Option.isNone(id) ? undefined : yield* parseOperationId(id.value)
        const receipt = yield* asOwner(key, from)((yield* NodeClient).transfer(payer, payee, credits, transferId))
        yield* output(json, receipt, (r) =>
          [
            `${
              r.duplicate ? "already transferred" : "transferred"
            } ${credits} rUv ${payer} -> ${payee} (transfer ${r.transferId}, position ${r.position})`,
            describe(r.from),
            describe(r.to)
          ].join("\n"))
      })
    )
).pipe(Command.withDescription("move rUv from one account to another"))

const mint = Command.make(
  "mint",
  {
    account: Args.text({ name: "account" }),
    amount: Args.text({ name: "amount" }),
    key: keyOption,
    data: dataOption,
    node: nodeOption,
    json: jsonOption
  },
  ({ account, amount, data, json, key, node }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const id = yield* parseAccount(account)
        const credits = yield* parseAmount(amount)
        const balance = yield* asOperator(key, data)((yield* NodeClient).mint(id, credits))
        yield* output(json, balance, (b) => `minted ${credits} rUv\n${describe(b)}`)
      })
    )
).pipe(
  Command.withDescription(
    "create new rUv in an account: signed by the operator key(s) named at genesis (default: the node key of --data)"
  )
)

export const ledgerCommand = Command.make("ledger").pipe(
  Command.withDescription("rUv credit accounts"),
  Command.withSubcommands([balance, transfer, mint])
)
