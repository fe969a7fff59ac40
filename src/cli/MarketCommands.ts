/**
 * `edge-net market quote|buy|sell|pool` and `edge-net market auction open|commit|reveal|resolve|complete|fail|show`:
 * the compute pool and task auctions, on a data dir or through a running node.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as crypto from "node:crypto"
import type { AuctionView } from "../actors/market/AuctionService.js"
import { AuctionId, commitmentOf } from "../actors/market/TaskAuction.js"
import { AccountId } from "../domain/Money.js"
import { CliError } from "./CliError.js"
import { asAnyKey, asOperator, asOwner, asOwnerAndOperator, keyOption, parseAccount } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import {
  dataOption,
  jsonOption,
  nodeOption,
  output,
  parseAmount,
  parseOperationId,
  parseWith,
  positiveInteger
} from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption }
const orderOption = Options.text("id").pipe(
  Options.withDescription("order id: sending the same id again trades nothing twice"),
  Options.optional
)
const minOutOption = Options.text("min-out").pipe(
  Options.withDescription("refuse the trade if it gives less than this (slippage limit; default 0)"),
  Options.optional
)
const sideArg = Args.choice([["buy", "buy"], ["sell", "sell"]] as const, { name: "side" })

const parseLimit = (text: Option.Option<string>) =>
  Option.isNone(text) ?
    Effect.succeed(0n)
    : /^[0-9]+$/.test(text.value) ?
    Effect.succeed(BigInt(text.value))
    : Effect.fail(new CliError({ message: `invalid limit "${text.value}": expected a whole number` }))

const orderIdOf = (id: Option.Option<string>) =>
  Option.isNone(id) ? Effect.succeed({}) : Effect.map(parseOperationId(id.value), (orderId) => ({ orderId }))

const quote = Command.make("quote", {
  side: sideArg,
  amount: Args.text({ name: "amount-in" }),
  trader: Options.text("trader").pipe(Options.optional),
  ...common
}, ({ amount, data, json, node, side, trader }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const amountIn = yield* parseAmount(amount)
      const who = Option.isSome(trader) ? { node: yield* parseAccount(trader.value) } : {}
      const result = yield* client.call(
        client.rpc.MarketQuote({ side, trade: { exact: "in", amountIn, minAmountOut: 0n }, ...who })
      )
      yield* output(json, result, ({ quote: q, reputation }) =>
        [
          `${side} ${q.amountIn} ${side === "buy" ? "rUv" : "compute"} -> ${q.amountOut} ${
            side === "buy" ? "compute" : "rUv"
          } (fee ${q.feeBps} bps, market parameters version ${q.parametersVersion})`,
          `reserves: ${q.reserves.compute} compute, ${q.reserves.ruv} rUv`,
          ...(reputation === null
            ? []
            : [
              `with reputation ${reputation.reputationPpm} ppm: ${reputation.price} rUv (discount ${reputation.discountPpm} ppm on ${reputation.basePrice})`
            ])
        ].join("\n"))
    })
  )).pipe(Command.withDescription("what a trade of `amount-in` would give now, with the fee in force"))

const trade = (side: "buy" | "sell") =>
  Command.make(side, {
    trader: Args.text({ name: "trader" }),
    amount: Args.text({ name: "amount-in" }),
    minOut: minOutOption,
    id: orderOption,
    key: keyOption,
    ...common
  }, ({ amount, data, id, json, key, minOut, node, trader }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const account = yield* parseAccount(trader)
        const tradeSpec = {
          exact: "in" as const,
          amountIn: yield* parseAmount(amount),
          minAmountOut: yield* parseLimit(minOut)
        }
        const payload = { trader: AccountId.make(account), trade: tradeSpec, ...(yield* orderIdOf(id)) }
        const receipt = yield* asOwner(key, trader)(
          client.call(side === "buy" ? client.rpc.MarketBuy(payload) : client.rpc.MarketSell(payload))
        )
        yield* output(json, receipt, (r) =>
          `${r.duplicate ? "already done: " : ""}${side === "buy" ? "bought" : "sold"}: ${r.amountIn} ${
            side === "buy" ? "rUv" : "compute"
          } -> ${r.amountOut} ${side === "buy" ? "compute" : "rUv"} (order ${r.orderId}, fee ${r.feeBps} bps${
            r.settled ? "" : ", settlement pending"
          })`)
      })
    )).pipe(
      Command.withDescription(
        side === "buy" ? "pay rUv for compute units from the pool" : "sell compute units to the pool for rUv"
      )
    )

const pool = Command.make(
  "pool",
  { trader: Options.text("trader").pipe(Options.optional), ...common },
  ({ data, json, node, trader }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const who = Option.isSome(trader) ? { node: yield* parseAccount(trader.value) } : {}
        const state = yield* client.call(client.rpc.MarketPoolState(who))
        yield* output(json, state, ({ pool: p, trader: t }) =>
          [
            `pool: ${p.compute} compute, ${p.ruv} rUv (pricing ${p.pricing.compute} / ${p.pricing.ruv}, k ${p.k}), ${p.totalShares} shares, version ${p.version}`,
            ...(t === null ? [] : [`${t.node}: ${t.compute} compute, ${t.shares} shares`])
          ].join("\n"))
      })
    )
).pipe(Command.withDescription("the compute pool's reserves (and a trader's balance with --trader)"))

const issue = Command.make("issue", {
  provider: Args.text({ name: "node-id" }),
  units: Args.text({ name: "units" }),
  id: Options.text("id").pipe(Options.optional),
  key: keyOption,
  ...common
}, ({ data, id, json, key, node, provider, units }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const amount = yield* parseAmount(units)
      const operationId = yield* parseOperationId(Option.getOrElse(id, () => crypto.randomBytes(8).toString("hex")))
      const trader = yield* asOperator(key, data)(
        client.call(client.rpc.MarketIssueCompute({ node: yield* parseAccount(provider), units: amount, operationId }))
      )
      yield* output(
        json,
        trader,
        (t) => `issued ${amount} compute units\n${t.node}: ${t.compute} compute, ${t.shares} shares`
      )
    })
  )).pipe(Command.withDescription("issue compute units to a node (the operator's capacity), e.g. to seed the pool"))

const addLiquidity = Command.make("add-liquidity", {
  provider: Args.text({ name: "provider" }),
  compute: Args.text({ name: "compute" }),
  ruv: Args.text({ name: "ruv" }),
  id: orderOption,
  key: keyOption,
  ...common
}, ({ compute, data, id, json, key, node, provider, ruv }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const receipt = yield* asOwnerAndOperator(key, provider, data)(client.call(client.rpc.MarketAddLiquidity({
        provider: yield* parseAccount(provider),
        computeDesired: yield* parseAmount(compute),
        ruvDesired: yield* parseAmount(ruv),
        ...(yield* orderIdOf(id))
      })))
      yield* output(
        json,
        receipt,
        (r) => `added ${r.compute} compute and ${r.ruv} rUv for ${r.shares} shares (of ${r.totalShares})`
      )
    })
  )).pipe(
    Command.withDescription(
      "deposit compute units and rUv into the pool for shares: signed by the provider and the operator key(s)"
    )
  )

// Auctions
export const describeAuction = (a: typeof AuctionView.Type) =>
  [
    `auction ${a.auctionId}: ${a.status}, posted by ${a.poster}, max price ${a.maxPrice} rUv, min bids ${a.minBids}, deposit ${a.bidDepositRuv} rUv`,
    `commit until ${new Date(a.commitDeadline).toISOString()}, reveal until ${
      new Date(a.revealDeadline).toISOString()
    }, lease until ${new Date(a.leaseDeadline).toISOString()}`,
    ...a.bids.map((bid) => `  bid ${bid.bidder}: ${bid.price === null ? "sealed" : `${bid.price} rUv`}`),
    ...(a.winner === null
      ? []
      : [`winner ${a.winner}, paid ${a.price} rUv${a.failure === null ? "" : ` (lease failed: ${a.failure})`}`])
  ].join("\n")

const auctionArg = Args.text({ name: "auction-id" })
const parseAuctionId = parseWith(AuctionId, "auction id")
const millis = (name: string, fallback: number, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.withDefault(fallback))

const open = Command.make(
  "open",
  {
    auctionId: auctionArg,
    poster: Args.text({ name: "poster" }),
    maxPrice: Args.text({ name: "max-price" }),
    minBids: Options.integer("min-bids").pipe(Options.withDefault(1)),
    commitMs: millis("commit-ms", 60_000, "commit window in ms"),
    revealMs: millis("reveal-ms", 60_000, "reveal window in ms"),
    leaseMs: millis("lease-ms", 3_600_000, "time the winner has to deliver, after the reveal window"),
    task: Options.text("task").pipe(
      Options.withDescription("the task's specification as JSON"),
      Options.withDefault("{}")
    ),
    key: keyOption,
    ...common
  },
  ({ auctionId, commitMs, data, json, key, leaseMs, maxPrice, minBids, node, poster, revealMs, task }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const spec = yield* Effect.try({
          try: () => JSON.parse(task) as unknown,
          catch: () => new CliError({ message: `--task is not JSON: ${task}` })
        })
        const view = yield* asOwner(key, poster)(client.call(client.rpc.AuctionOpen({
          auctionId: yield* parseAuctionId(auctionId),
          poster: AccountId.make(yield* parseAccount(poster)),
          task: spec,
          maxPrice: yield* parseAmount(maxPrice),
          minBids: yield* positiveInteger(minBids, "min-bids"),
          commitPeriodMs: yield* positiveInteger(commitMs, "commit-ms"),
          revealPeriodMs: yield* positiveInteger(revealMs, "reveal-ms"),
          leasePeriodMs: yield* positiveInteger(leaseMs, "lease-ms")
        })))
        yield* output(json, view, describeAuction)
      })
    )
).pipe(Command.withDescription("open a sealed-bid, second-price task auction"))

const commit = Command.make("commit", {
  auctionId: auctionArg,
  bidder: Args.text({ name: "bidder" }),
  price: Args.text({ name: "price" }),
  salt: Options.text("salt").pipe(
    Options.withDescription("secret mixed into the commitment (default: 16 random bytes)"),
    Options.optional
  ),
  key: keyOption,
  ...common
}, ({ auctionId, bidder, data, json, key, node, price, salt }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const id = yield* parseAuctionId(auctionId)
      const who = yield* parseAccount(bidder)
      const amount = yield* parseAmount(price)
      const secret = Option.getOrElse(salt, () => crypto.randomBytes(16).toString("hex"))
      // The price never leaves this machine before the reveal: only its commitment does.
      const commitment = commitmentOf({ auctionId: id, bidder: who, price: amount, salt: secret })
      const view = yield* asOwner(key, bidder)(
        client.call(client.rpc.AuctionCommit({ auctionId: id, bidder: AccountId.make(who), commitment }))
      )
      yield* output(
        json,
        { salt: secret, commitment, auction: view },
        (r) =>
          `committed a sealed bid for ${auctionId} (commitment ${r.commitment})\nkeep this salt to reveal: ${r.salt}`
      )
    })
  )).pipe(
    Command.withDescription("commit a sealed bid: the price is hashed here with a salt, which you keep for the reveal")
  )

const reveal = Command.make("reveal", {
  auctionId: auctionArg,
  bidder: Args.text({ name: "bidder" }),
  price: Args.text({ name: "price" }),
  salt: Args.text({ name: "salt" }),
  key: keyOption,
  ...common
}, ({ auctionId, bidder, data, json, key, node, price, salt }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const view = yield* asOwner(key, bidder)(
        client.call(
          client.rpc.AuctionReveal({
            auctionId: yield* parseAuctionId(auctionId),
            bidder: AccountId.make(yield* parseAccount(bidder)),
            price: yield* parseAmount(price),
            salt
          })
        )
      )
      yield* output(json, view, describeAuction)
    })
  )).pipe(Command.withDescription("reveal a sealed bid's price and salt"))

const byArg = Args.text({ name: "by" })
const resolve = Command.make(
  "resolve",
  { auctionId: auctionArg, key: keyOption, ...common },
  ({ auctionId, data, json, key, node }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const view = yield* asAnyKey(key)(
          client.call(client.rpc.AuctionResolve({ auctionId: yield* parseAuctionId(auctionId) }))
        )
        yield* output(json, view, describeAuction)
      })
    )
).pipe(Command.withDescription("after the reveal window: lowest price wins, paid the second-lowest"))

const complete = Command.make(
  "complete",
  { auctionId: auctionArg, by: byArg, key: keyOption, ...common },
  ({ auctionId, by, data, json, key, node }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const view = yield* asOwner(key, by)(
          client.call(
            client.rpc.AuctionComplete({
              auctionId: yield* parseAuctionId(auctionId),
              by: AccountId.make(yield* parseAccount(by))
            })
          )
        )
        yield* output(json, view, describeAuction)
      })
    )
).pipe(Command.withDescription("the poster accepts the result: the winner is paid"))

const fail = Command.make("fail", {
  auctionId: auctionArg,
  by: byArg,
  reason: Options.choice("reason", ["incorrectResult", "challengeTimeout"] as const).pipe(
    Options.withDefault("incorrectResult" as const)
  ),
  key: keyOption,
  ...common
}, ({ auctionId, by, data, json, key, node, reason }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const view = yield* asOwner(key, by)(
        client.call(
          client.rpc.AuctionFail({
            auctionId: yield* parseAuctionId(auctionId),
            by: AccountId.make(yield* parseAccount(by)),
            reason
          })
        )
      )
      yield* output(json, view, describeAuction)
    })
  )).pipe(
    Command.withDescription("reject the result or report a timeout: the poster keeps the money, the winner is slashed")
  )

const show = Command.make(
  "show",
  { auctionId: auctionArg, ...common },
  ({ auctionId, data, json, node }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const view = yield* client.call(client.rpc.AuctionState({ auctionId: yield* parseAuctionId(auctionId) }))
        yield* output(json, view, describeAuction)
      })
    )
).pipe(Command.withDescription("an auction's terms, bids and outcome"))

const auction = Command.make("auction").pipe(
  Command.withDescription("sealed-bid, second-price task auctions"),
  Command.withSubcommands([open, commit, reveal, resolve, complete, fail, show])
)

export const marketCommand = Command.make("market").pipe(
  Command.withDescription("the compute market: pool trades and task auctions"),
  Command.withSubcommands([quote, trade("buy"), trade("sell"), pool, issue, addLiquidity, auction])
)
