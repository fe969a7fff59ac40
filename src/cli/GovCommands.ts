/** `edge-net gov propose|vote|queue|execute|show|list`: parameter changes voted by stake. */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option, ParseResult, Schema } from "effect"
import { ParameterNameSchema } from "../actors/economy/ParameterCatalogue.js"
import type { ProposalSummary } from "../actors/governance/Proposal.js"
import { ProposalId, ProposalStatus } from "../actors/governance/Proposal.js"
import { CliError } from "./CliError.js"
import { asAnyKey, asOwner, keyOption, parseAccount } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output, parseWith } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption }
const proposalArg = Args.text({ name: "proposal-id" })
const parseProposalId = parseWith(ProposalId, "proposal id")

const describeProposal = (p: ProposalSummary) =>
  `proposal ${p.proposalId}: ${p.status}, set ${p.parameter} to ${p.value} (by ${p.proposer}: "${p.description}")`

const decodeParameter = Schema.decodeUnknown(ParameterNameSchema)

const propose = Command.make("propose", {
  proposer: Args.text({ name: "proposer" }),
  parameter: Args.text({ name: "parameter" }),
  value: Args.text({ name: "value" }),
  description: Options.text("description").pipe(Options.withDefault("")),
  key: keyOption,
  ...common
}, ({ data, description, json, key, node, parameter, proposer, value }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const name = yield* decodeParameter(parameter).pipe(
        Effect.mapError(() => new CliError({ message: `unknown parameter "${parameter}"` }))
      )
      if (!/^[0-9]+$/.test(value)) {
        return yield* Effect.fail(new CliError({ message: `invalid value "${value}": expected a whole number` }))
      }
      const receipt = yield* asOwner(key, proposer)(client.call(client.rpc.GovernancePropose({
        proposer: yield* parseAccount(proposer),
        parameter: name,
        value: BigInt(value),
        description: description === "" ? `set ${name} to ${value}` : description
      })))
      yield* output(
        json,
        receipt,
        (r) => `${describeProposal(r.proposal)}\nvoting until ${new Date(r.proposal.voteEnd).toISOString()}`
      )
    })
  )).pipe(Command.withDescription("propose a network parameter change (the proposer needs active stake)"))

const vote = Command.make("vote", {
  proposalId: proposalArg,
  voter: Args.text({ name: "voter" }),
  support: Args.choice([["for", "for"], ["against", "against"], ["abstain", "abstain"]] as const, { name: "support" }),
  key: keyOption,
  ...common
}, ({ data, json, key, node, proposalId, support, voter }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const receipt = yield* asOwner(key, voter)(
        client.call(
          client.rpc.GovernanceVote({
            proposalId: yield* parseProposalId(proposalId),
            voter: yield* parseAccount(voter),
            support
          })
        )
      )
      yield* output(json, receipt, (r) => `voted ${support}\n${describeProposal(r.proposal)}`)
    })
  )).pipe(Command.withDescription("vote with the stake held at the proposal's snapshot"))

/** Queue and execute: the same signed call on a proposal id, told apart by the RPC and the word printed. */
const lifecycleStep = (
  name: "queue" | "execute",
  done: string,
  description: string
) =>
  Command.make(
    name,
    { proposalId: proposalArg, key: keyOption, ...common },
    ({ data, json, key, node, proposalId }) =>
      withNode(
        data,
        node,
        Effect.gen(function*() {
          const client = yield* NodeClient
          const step = name === "queue" ? client.rpc.GovernanceQueue : client.rpc.GovernanceExecute
          const receipt = yield* asAnyKey(key)(client.call(step({ proposalId: yield* parseProposalId(proposalId) })))
          yield* output(json, receipt, (r) => `${done}\n${describeProposal(r.proposal)}`)
        })
      )
  ).pipe(Command.withDescription(description))

const queue = lifecycleStep("queue", "queued", "queue a succeeded proposal behind the timelock")
const execute = lifecycleStep(
  "execute",
  "executed",
  "execute a queued proposal after its timelock: the parameter changes"
)

const show = Command.make(
  "show",
  { proposalId: proposalArg, ...common },
  ({ data, json, node, proposalId }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const view = yield* client.call(client.rpc.GovernanceShow({ proposalId: yield* parseProposalId(proposalId) }))
        yield* output(json, view, (v) =>
          [
            describeProposal(v),
            ...v.votes.map((entry) =>
              `  ${JSON.stringify(entry, (_k, item) => (typeof item === "bigint" ? item.toString() : item))}`
            )
          ].join("\n"))
      })
    )
).pipe(Command.withDescription("a proposal, its votes and its history"))

const decodeStatus = Schema.decodeUnknown(ProposalStatus)

const list = Command.make(
  "list",
  { status: Options.text("status").pipe(Options.optional), ...common },
  ({ data, json, node, status }) =>
    withNode(
      data,
      node,
      Effect.gen(function*() {
        const client = yield* NodeClient
        const filter = Option.isNone(status) ? {} : {
          status: yield* decodeStatus(status.value).pipe(
            Effect.mapError((error) =>
              new CliError({
                message: `invalid status: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n")[0]}`
              })
            )
          )
        }
        const proposals = yield* client.call(client.rpc.GovernanceList(filter))
        yield* output(
          json,
          proposals,
          (all) => (all.length === 0 ? "no proposals" : all.map(describeProposal).join("\n"))
        )
      })
    )
).pipe(Command.withDescription("every proposal, or those in one status"))

export const govCommand = Command.make("gov").pipe(
  Command.withDescription("governance: propose, vote, queue and execute parameter changes"),
  Command.withSubcommands([propose, vote, queue, execute, show, list])
)
