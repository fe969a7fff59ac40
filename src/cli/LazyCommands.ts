/**
 * Command trees whose subcommands load only when the command line names them. Loading every
 * subcommand's module (the node, the economy, ONNX Runtime, libp2p...) took seconds before a quick
 * command such as `edge-net --version` or `edge-net-models list --local` could answer; the first
 * word after the program's name now picks the one module to load. With no subcommand named (help,
 * `--version`, completions) or a word no subcommand has, every one loads, so @effect/cli lists them all
 * and suggests the nearest name, exactly as before.
 */
import * as Command from "@effect/cli/Command"
import type { FileSystem } from "@effect/platform/FileSystem"
import type { Path } from "@effect/platform/Path"
import type { Terminal } from "@effect/platform/Terminal"
import type { Environment } from "../layers/Environment.js"

/**
 * What every command of our CLIs may need from its runtime: what @effect/cli itself needs, and our
 * environment. (Not the whole NodeContext: its child processes and workers, which no command takes
 * from the runtime, loaded Node's process, socket and worker modules into every command.)
 */
export type CliContext = FileSystem | Path | Terminal | Environment

/** A command as the trees hold them, whatever its name and parsed arguments (Command is invariant in both). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = Command.Command<any, CliContext, unknown, any>

/**
 * One subcommand by name, and how to load the module that defines it (several names may share one).
 * `load` is given the words after the subcommand's name (none when every subcommand loads), which a
 * nested tree reads to load its own.
 */
export interface LazySubcommand {
  readonly name: string
  readonly load: (rest: ReadonlyArray<string>) => Promise<AnyCommand>
}

export interface LazyTree {
  readonly name: string
  readonly description: string
  readonly subcommands: ReadonlyArray<LazySubcommand>
}

/** Options of @effect/cli's own that take a value: the word after them is not a subcommand. */
const VALUED_BUILT_INS = new Set(["--log-level", "--completions"])

/** Where the first word of `args` that is not an option or its value is, or -1. */
export const firstWordAt = (args: ReadonlyArray<string>): number => {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (!arg.startsWith("-")) return i
    if (VALUED_BUILT_INS.has(arg)) i++
  }
  return -1
}

/** The tree as a command, with only the subcommand `args` names loaded (all of them when it names none). */
export const loadTree = async (tree: LazyTree, args: ReadonlyArray<string>): Promise<AnyCommand> => {
  const bare = Command.make(tree.name).pipe(Command.withDescription(tree.description))
  const at = firstWordAt(args)
  // `--version` alone needs no subcommand: @effect/cli answers it before reading any.
  if (at < 0 && args.includes("--version")) return bare
  const named = tree.subcommands.filter((subcommand) => at >= 0 && subcommand.name === args[at])
  const loaded = await (named.length > 0
    ? Promise.all(named.map((subcommand) => subcommand.load(args.slice(at + 1))))
    : Promise.all(tree.subcommands.map((subcommand) => subcommand.load([]))))
  const [first, ...rest] = loaded
  if (first === undefined) throw new Error(`the command tree ${tree.name} has no subcommands`)
  return bare.pipe(Command.withSubcommands([first, ...rest]))
}

/** A tree nested in another (`edge-net models ...`): loads its own subcommands by the word after its name. */
export const nestedTree = (tree: LazyTree): LazySubcommand => ({
  name: tree.name,
  load: (rest) => loadTree(tree, rest)
})
