/** edge-net's version, as the CLI, the node's status and its telemetry report it (package.json's). */
export const VERSION = "0.1.0"
