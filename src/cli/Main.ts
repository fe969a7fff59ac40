/**
 * The `edge-net` command line: parse, run, and turn expected failures into one line on stderr with
 * exit code 1. Bugs (defects) still print their full cause.
 */
import * as Command from "@effect/cli/Command"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { defaultTeardown, type Teardown } from "@effect/platform/Runtime"
import { Cause, Effect, Layer, Option } from "effect"
import { Environment } from "../layers/Environment.js"
import { VERSION } from "../layers/Version.js"
import { type CliContext, type LazyTree, loadTree, nestedTree } from "./LazyCommands.js"
import { modelsTree } from "./ModelsTree.js"

/** `edge-net`: each subcommand's module loads only when the command line names it (LazyCommands.ts). */
export const edgeNet: LazyTree = {
  name: "edge-net",
  description: "edge-net: optimize, distribute, adapt and trade AI models between peers",
  subcommands: [
    { name: "node", load: () => import("./NodeCommands.js").then((m) => m.nodeCommand) },
    { name: "peers", load: () => import("./PeersCommands.js").then((m) => m.peersCommand) },
    { name: "audit", load: () => import("./AuditCommands.js").then((m) => m.auditCommand) },
    { name: "events", load: () => import("./EventsCommands.js").then((m) => m.eventsCommand) },
    { name: "ledger", load: () => import("./LedgerCommands.js").then((m) => m.ledgerCommand) },
    { name: "stake", load: () => import("./StakeCommands.js").then((m) => m.stakeCommand) },
    { name: "market", load: () => import("./MarketCommands.js").then((m) => m.marketCommand) },
    { name: "gov", load: () => import("./GovCommands.js").then((m) => m.govCommand) },
    { name: "jobs", load: () => import("./JobsCommands.js").then((m) => m.jobsCommand) },
    { name: "adapters", load: () => import("./NodeAdaptersCommands.js").then((m) => m.nodeAdaptersCommand) },
    { name: "registry", load: () => import("./NodeModelsCommands.js").then((m) => m.nodeModelsCommand) },
    { name: "learn", load: () => import("./LearnCommands.js").then((m) => m.learnCommand) },
    nestedTree(modelsTree)
  ]
}

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

/** The runtime's part of CliContext. */
const cliRuntime: Layer.Layer<Exclude<CliContext, Environment>> = Layer.mergeAll(
  NodeFileSystem.layer,
  NodePath.layer,
  NodeTerminal.layer
)

/** Resolves once what was written to `stream` before has been handed to the system. */
const flushed = (stream: NodeJS.WriteStream) => new Promise<unknown>((resolve) => stream.write("", resolve))

/**
 * A command is over when its effect is: the process exits then, once its output is flushed, instead
 * of when the event loop has drained. Draining ran what V8 and the runtime had scheduled meanwhile,
 * a young-generation collection above all: 5-10 ms after the output of every quick command. (A failure
 * already exits at once, in NodeRuntime; the "exit" handlers still run, CodeCache.ts's among them.)
 */
const exitWhenDone: Teardown = (exit, onExit) =>
  defaultTeardown(exit, (code) => {
    if (code !== 0) return onExit(code)
    void flushed(process.stdout).then(() => flushed(process.stderr)).then(() => process.exit(code))
  })

/** Runs a command tree as a program: `argv` as in process.argv. */
export const runCli = (tree: LazyTree, name: string, argv: ReadonlyArray<string>) => {
  const args = modelVersionArgs(argv)
  return Effect.promise(() => loadTree(tree, args.slice(2))).pipe(
    Effect.flatMap((command) => Command.run(command, { name, version: VERSION })(args)),
    // The environment is read and checked before any command runs: a bad variable is the one line printed.
    Effect.provide(Environment.layer),
    Effect.tapErrorCause(report(name)),
    Effect.provide(cliRuntime),
    NodeRuntime.runMain({ disableErrorReporting: true, teardown: exitWhenDone })
  )
}
