/**
 * The `edge-net-models` tree (also `edge-net models`), the seed's model CLI: each subcommand's module
 * loads only when the command line names it, so `list --local` does not start ONNX Runtime.
 */
import type { LazyTree } from "./LazyCommands.js"

export const modelsTree: LazyTree = {
  name: "models",
  description: "list, pull, verify, publish and sign models; manage the cache (edge-net-models)",
  subcommands: [
    { name: "list", load: () => import("./ListCommand.js").then((m) => m.listCommand) },
    { name: "pull", load: () => import("./ModelsCommands.js").then((m) => m.pullCommand) },
    { name: "verify", load: () => import("./ModelsCommands.js").then((m) => m.verifyCommand) },
    { name: "info", load: () => import("./ModelsCommands.js").then((m) => m.infoCommand) },
    { name: "optimize", load: () => import("./OptimizeCommands.js").then((m) => m.optimizeCommand) },
    { name: "run", load: () => import("./RunCommand.js").then((m) => m.runCommand) },
    { name: "publish", load: () => import("./PublishCommands.js").then((m) => m.publishCommand) },
    { name: "sign", load: () => import("./PublishCommands.js").then((m) => m.signCommand) },
    { name: "keys", load: () => import("./PublishCommands.js").then((m) => m.keysCommand) },
    { name: "adapters", load: () => import("./AdaptersCommands.js").then((m) => m.adaptersCommand) },
    { name: "cache", load: () => import("./CacheCommands.js").then((m) => m.cacheCommand) },
    { name: "config", load: () => import("./CacheCommands.js").then((m) => m.configCommand) }
  ]
}
