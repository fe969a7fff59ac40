/**
 * `edge-net models` (also installed as `edge-net-models`): the model distribution commands. The
 * group is here so both entry points exist from the start; its subcommands arrive with the registry.
 */
import { Command } from "@effect/cli"

export const modelsCommand = Command.make("models").pipe(
  Command.withDescription("optimize, publish, sign, pull and verify models (edge-net-models)")
)
