/**
 * `edge-net node dead-letters [retry|clear]`: the events the node's policies gave up on, listed, run
 * once more through their policy (the record goes when it succeeds), or cleared; on a data dir or
 * through a running node. Retry and clear are operator commands, signed as `market issue` is.
 */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import type { DeadLetter } from "../events/Checkpoints.js"
import type { DeadLetterTarget, RetryOutcome } from "../events/DeadLetters.js"
import { CliError } from "./CliError.js"
import { asOperator, keyOption } from "./CommandKeys.js"
import { withNode } from "./NodeAccess.js"
import { NodeClient, type NodeClientService } from "./NodeClient.js"
import { dataOption, jsonOption, nodeOption, output, positiveInteger } from "./Shared.js"

const common = { data: dataOption, node: nodeOption, json: jsonOption }

const firstLine = (text: string) => text.split("\n", 1)[0] ?? ""
const idOf = (letter: { readonly policy: string; readonly position: number }) => `${letter.policy}@${letter.position}`
const plural = (count: number) => `${count} dead letter${count === 1 ? "" : "s"}`

const describe = (letter: DeadLetter) => {
  const what = `${letter.eventType} on ${letter.streamId}, ${letter.attempts} attempts, last at ${letter.failedAt}`
  return `${idOf(letter)}  ${what}: ${firstLine(letter.error)}`
}

const limitOption = Options.integer("limit").pipe(
  Options.withDescription("how many to show, newest first (default 100)"),
  Options.withDefault(100)
)

const list = Command.make("dead-letters", { limit: limitOption, ...common }, ({ data, json, limit, node }) =>
  withNode(
    data,
    node,
    Effect.gen(function*() {
      const client = yield* NodeClient
      const shown = yield* positiveInteger(limit, "limit")
      const view = yield* client.call(client.rpc.DeadLetterList({ limit: Math.min(shown, 10_000) }))
      yield* output(json, view, (v) =>
        [
          plural(v.count) + (v.count > v.letters.length ? ` (the newest ${v.letters.length} shown)` : ""),
          ...v.letters.map(describe)
        ].join("\n"))
    })
  ))

const idArg = Args.text({ name: "id" }).pipe(
  Args.withDescription("a dead letter as the list names it: POLICY@POSITION, e.g. ledger.credits@42"),
  Args.optional
)
const allOption = Options.boolean("all").pipe(Options.withDescription("every dead letter"))

/** `POLICY@POSITION` or `--all`, one of them. */
const targetOf = (id: Option.Option<string>, all: boolean) =>
  Effect.gen(function*() {
    if (Option.isSome(id) === all) {
      return yield* new CliError({ message: "name one dead letter (POLICY@POSITION, as the list shows) or pass --all" })
    }
    if (Option.isNone(id)) return "all" as const satisfies DeadLetterTarget
    const at = id.value.lastIndexOf("@")
    const position = Number(id.value.slice(at + 1))
    if (at < 1 || !/^[1-9][0-9]*$/.test(id.value.slice(at + 1)) || !Number.isSafeInteger(position)) {
      return yield* new CliError({
        message: `invalid dead letter "${id.value}": expected POLICY@POSITION, e.g. ledger.credits@42`
      })
    }
    return { policy: id.value.slice(0, at), position } satisfies DeadLetterTarget
  })

const describeOutcome = (outcome: RetryOutcome) =>
  outcome.handled
    ? `${idOf(outcome)} handled: record removed`
    : `${idOf(outcome)} failed again (attempt ${outcome.attempts}): ${firstLine(outcome.error ?? "")}`

/** `retry` and `clear`: one letter or `--all`, sent as an operator command, its answer reported. */
const onLetters = <A, E, R>(
  name: string,
  send: (client: NodeClientService, target: DeadLetterTarget) => Effect.Effect<A, E, R>,
  report: (json: boolean, answer: A) => Effect.Effect<void, CliError>
) =>
  Command.make(
    name,
    { id: idArg, all: allOption, key: keyOption, ...common },
    ({ all, data, id, json, key, node }) =>
      withNode(
        data,
        node,
        Effect.gen(function*() {
          const client = yield* NodeClient
          const target = yield* targetOf(id, all)
          yield* report(json, yield* asOperator(key, data)(send(client, target)))
        })
      )
  )

const retry = onLetters(
  "retry",
  (client, target) => client.call(client.rpc.DeadLetterRetry({ target })),
  (json, outcomes) =>
    Effect.gen(function*() {
      yield* output(json, outcomes, (o) => (o.length === 0 ? "no dead letters" : o.map(describeOutcome).join("\n")))
      const failed = outcomes.filter((outcome) => !outcome.handled).length
      if (failed > 0) {
        return yield* new CliError({
          message: `${failed} of ${plural(outcomes.length)} failed again (the record has the new error)`
        })
      }
    })
).pipe(Command.withDescription("run the policy once more on a dead letter's event; when it succeeds the record goes"))

const clear = onLetters(
  "clear",
  (client, target) => client.call(client.rpc.DeadLetterClear({ target })),
  (json, cleared) =>
    output(
      json,
      cleared,
      (c) => (c.length === 0 ? "no dead letters" : c.map((letter) => `cleared ${describe(letter)}`).join("\n"))
    )
).pipe(Command.withDescription("forget dead letters without running anything (the events stay in the journal)"))

export const deadLettersCommand = list.pipe(
  Command.withDescription("the events the node's policies gave up on (newest first); retry or clear them"),
  Command.withSubcommands([retry, clear])
)
