/**
 * What both CLIs' entry scripts do before anything heavy loads. `--version` alone is answered here, from
 * one constant: the command framework (effect and @effect/cli, about a megabyte and a half of
 * JavaScript to compile) is not needed to print it. Anything else loads the framework and the one
 * subcommand the line names (Main.ts, LazyCommands.ts).
 */
import "../node/Polyfills.js"
import { VERSION } from "../layers/Version.js"
import type { LazyTree } from "./LazyCommands.js"

/** Whether `argv` (as in process.argv) asks only for the version. */
export const asksVersionOnly = (argv: ReadonlyArray<string>): boolean => argv.length === 3 && argv[2] === "--version"

/** Runs the CLI named `name` whose tree `tree` loads, on `argv`. */
export const startCli = (name: string, tree: () => Promise<LazyTree>, argv: ReadonlyArray<string>): void => {
  if (asksVersionOnly(argv)) {
    process.stdout.write(`${VERSION}\n`)
    return
  }
  void Promise.all([import("./Main.js"), tree()]).then(([{ runCli }, loaded]) => runCli(loaded, name, argv))
}
