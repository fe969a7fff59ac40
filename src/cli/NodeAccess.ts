/**
 * How a command reaches a node: over RPC at `--node`, or directly on a data directory (the whole node
 * in process), and the services that run jobs in process. Kept apart from Shared.ts's options and
 * printing, which every command loads: this module brings in the node itself.
 */
import { Effect, Layer, Option } from "effect"
import * as fs from "node:fs"
import { AdapterTraining } from "../actors/adapters/AdapterTraining.js"
import { Optimizer } from "../actors/optimizer/Optimizer.js"
import type { Environment } from "../layers/Environment.js"
import { memoryKernel } from "../layers/Kernel.js"
import { nodeServices } from "../layers/Node.js"
import { journalFile } from "../layers/NodeConfig.js"
import { CliError } from "./CliError.js"
import { NodeClient } from "./NodeClient.js"
import { settingsFor } from "./Shared.js"

/**
 * The services that run and record jobs (optimizer, adapter training) for a command in process: the
 * node's, recording each job in its journal, when the data directory holds one; otherwise services
 * on an in-memory journal (the job is reported, not kept).
 */
export const jobServices = (data: Option.Option<string>) =>
  Effect.map(settingsFor(data), (settings) =>
    fs.existsSync(journalFile(settings))
      ? { layer: nodeServices(settings).pipe(Layer.orDie), recorded: true }
      : {
        layer: Layer.mergeAll(Optimizer.Default, AdapterTraining.Default).pipe(Layer.provide(memoryKernel)),
        recorded: false
      })

/** Runs `use` against the node at `--node`, or directly on the data directory, which must exist. */
export const withNode = <A, E, R>(
  data: Option.Option<string>,
  node: Option.Option<string>,
  use: Effect.Effect<A, E, R | NodeClient>
): Effect.Effect<A, E | CliError, Exclude<R, NodeClient> | Environment> => {
  if (Option.isSome(node)) return Effect.provide(use, NodeClient.remote(node.value))
  return Effect.flatMap(settingsFor(data), (settings) => {
    if (!fs.existsSync(journalFile(settings))) {
      return Effect.fail(
        new CliError({
          message:
            `no edge-net data in ${settings.dataDir} (start a node there first: edge-net node start --data ${settings.dataDir})`
        })
      )
    }
    const direct = NodeClient.direct(settings).pipe(
      Layer.catchAll((error) => Layer.fail(new CliError({ message: error.message })))
    )
    return Effect.provide(use, direct)
  })
}

/** `withNode` for a command that only needs the client: `use` gets it. */
export const withNodeClient = <A, E, R>(
  args: { readonly data: Option.Option<string>; readonly node: Option.Option<string> },
  use: (client: Effect.Effect.Success<typeof NodeClient>) => Effect.Effect<A, E, R>
) => withNode(args.data, args.node, Effect.flatMap(NodeClient, use))
