/**
 * The `edge-net` command line: parse, run, and turn expected failures into one line on stderr with
 * exit code 1. Bugs (defects) still print their full cause.
 */
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Option } from "effect"
import { Environment } from "../layers/Environment.js"
import { VERSION } from "../layers/NodeStatus.js"
import { auditCommand } from "./AuditCommands.js"
import { eventsCommand } from "./EventsCommands.js"
import { govCommand } from "./GovCommands.js"
import { jobsCommand } from "./JobsCommands.js"
import { learnCommand } from "./LearnCommands.js"
import { ledgerCommand } from "./LedgerCommands.js"
import { marketCommand } from "./MarketCommands.js"
import { modelsCommand } from "./ModelsCommands.js"
import { nodeAdaptersCommand } from "./NodeAdaptersCommands.js"
import { nodeCommand } from "./NodeCommands.js"
import { nodeModelsCommand } from "./NodeModelsCommands.js"
import { peersCommand } from "./PeersCommands.js"
import { stakeCommand } from "./StakeCommands.js"

export const edgeNet = Command.make("edge-net").pipe(
  Command.withDescription("edge-net: optimize, distribute, adapt and trade AI models between peers"),
  Command.withSubcommands([
    nodeCommand,
    peersCommand,
    auditCommand,
    eventsCommand,
    ledgerCommand,
    stakeCommand,
    marketCommand,
    govCommand,
    jobsCommand,
    nodeAdaptersCommand,
    nodeModelsCommand,
    learnCommand,
    modelsCommand
  ])
)

const messageOf = (error: unknown): string => {
  if (
    typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" &&
    error.message !== ""
  ) {
    return error.message
  }
  if (typeof error === "object" && error !== null && "_tag" in error) return String(error._tag)
  return String(error)
}

const report = (name: string) => (cause: Cause.Cause<unknown>) =>
  Effect.sync(() => {
    if (Cause.isInterruptedOnly(cause)) return
    const failure = Cause.failureOption(cause)
    if (Option.isNone(failure)) console.error(Cause.pretty(cause))
    // @effect/cli has already printed what was wrong with the command line.
    else if (!ValidationError.isValidationError(failure.value)) console.error(`${name}: ${messageOf(failure.value)}`)
  })

/**
 * @effect/cli takes `--version` anywhere on the line as its own "print the version" flag, but the
 * seed's CLI passes a model version that way (`pull m --version 1.0.0`). Alone, `--version` still
 * prints ours; after a subcommand it becomes `--model-version`.
 */
export const modelVersionArgs = (argv: ReadonlyArray<string>): ReadonlyArray<string> => {
  const [runtime = "", script = "", ...args] = argv
  if (args.length <= 1) return argv
  return [
    runtime,
    script,
    ...args.map((
      arg
    ) => (arg === "--version" ? "--model-version" : arg.startsWith("--version=") ? `--model-${arg.slice(2)}` : arg))
  ]
}

/** Runs a command tree as a program: `argv` as in process.argv. */
export const runCli = <Name extends string, E>(
  // Any command tree, whatever its parsed arguments (Command is invariant in them).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  command: Command.Command<Name, NodeContext.NodeContext | Environment, E, any>,
  name: string,
  argv: ReadonlyArray<string>
) =>
  Command.run(command, { name, version: VERSION })(modelVersionArgs(argv)).pipe(
    // The environment is read and checked before any command runs: a bad variable is the one line printed.
    Effect.provide(Environment.layer),
    Effect.tapErrorCause(report(name)),
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain({ disableErrorReporting: true })
  )
