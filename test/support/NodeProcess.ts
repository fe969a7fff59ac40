/**
 * Runs `edge-net node start` as a real child process on a free loopback port, from the sources
 * compiled to JavaScript as `npm run build` compiles them (see CompiledCli.ts): a tsx loader in each
 * child would cost seconds per start, and once more in each of its worker threads.
 */
import * as path from "node:path"
import { compileCli, freePort, type RunningNode, startCompiledNode, SYSTEM_PICKED_P2P } from "./CompiledCli.js"

export { freePort, type RunningNode, SYSTEM_PICKED_P2P }

/** Arguments for `process.execPath` that run `edge-net <args>` from the compiled sources. */
export const cliArgs = (
  ...args: ReadonlyArray<string>
) => [path.join(compileCli(), "src", "cli", "edge-net.js"), ...args]

/** Arguments for `process.execPath` that run `edge-net-models <args>` from the compiled sources. */
export const modelsCliArgs = (
  ...args: ReadonlyArray<string>
) => [path.join(compileCli(), "src", "cli", "edge-net-models.js"), ...args]

/** `env` adds to the environment, e.g. `EDGE_NET_GENESIS` for short governance periods. */
export const startNode = (
  dataDir: string,
  port?: number,
  env: Readonly<Record<string, string>> = {}
): Promise<RunningNode> => startCompiledNode(compileCli(), dataDir, env, port)
