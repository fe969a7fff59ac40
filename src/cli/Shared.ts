/**
 * Options, argument parsing and output shared by every command: `--data`, `--node`, `--json`, amounts
 * and account ids checked before anything runs, and JSON that writes bigints as decimal strings.
 */
import { Options } from "@effect/cli"
import { Effect, Option, ParseResult, Schema } from "effect"
import * as path from "node:path"
import { AccountId, OperationId } from "../domain/Money.js"
import { Environment } from "../layers/Environment.js"
import type { NodeSettings } from "../layers/NodeConfig.js"
import { CliError } from "./CliError.js"

export const dataOption = Options.text("data").pipe(
  Options.withDescription("data directory (default: $EDGE_NET_HOME, else ./.edge-net)"),
  Options.optional
)

export const nodeOption = Options.text("node").pipe(
  Options.withDescription(
    "URL of a running node to ask over RPC, e.g. http://127.0.0.1:7878 (default: open the data directory)"
  ),
  Options.optional
)

export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON instead of text"))

/** A node's settings: `--data`, else `EDGE_NET_HOME`, else `./.edge-net`; the rest from the environment. */
export const settingsFor = (data: Option.Option<string>, overrides: Partial<NodeSettings> = {}) =>
  Effect.map(Environment, (environment): NodeSettings => ({
    dataDir: path.resolve(Option.getOrElse(Option.orElse(data, () => environment.home), () => ".edge-net")),
    host: environment.host,
    port: environment.port,
    synchronous: environment.synchronous,
    maxContentBytes: environment.maxContentBytes,
    inference: environment.inference,
    corsOrigins: environment.corsOrigins,
    firstStartModels: environment.firstStartModels,
    firstStartIds: environment.firstStartIds,
    ...overrides
  }))

export const parseAmount = (text: string) =>
  /^[0-9]+$/.test(text) && BigInt(text) > 0n
    ? Effect.succeed(BigInt(text))
    : Effect.fail(new CliError({ message: `invalid amount "${text}": expected a positive whole number of rUv` }))

/**
 * Checks a command-line value against the schema the node checks it with, before anything is sent: a
 * value the schema refuses is one readable line (`invalid <what> "<text>": <why>`), not a parse tree.
 */
export const parseWith = <A>(schema: Schema.Schema<A, string>, what: string) => {
  const decode = Schema.decodeUnknown(schema)
  return (text: string) =>
    decode(text).pipe(
      Effect.mapError((error) =>
        new CliError({
          message: `invalid ${what} "${text}": ${innermost(ParseResult.TreeFormatter.formatErrorSync(error))}`
        })
      )
    )
}

/** An account id as the node checks it (CommandKeys.resolveAccount also takes a key's name). */
export const parseAccountId = parseWith(AccountId, "account")

/** An operation, order or transfer id given with `--id`. */
export const parseOperationId = parseWith(OperationId, "id")

/** An integer option that must be positive (a count, a period in ms). */
export const positiveInteger = (value: number, option: string) =>
  Number.isSafeInteger(value) && value > 0
    ? Effect.succeed(value)
    : Effect.fail(new CliError({ message: `invalid --${option} ${value}: expected a positive whole number` }))

// The deepest line of a parse tree says what was wrong; the tree's glyphs go.
const innermost = (text: string) =>
  text.split("\n").filter((line) => line.trim() !== "").pop()?.replace(/^[\s└├│─]+/, "") ?? text

export const toJson = (value: unknown): string =>
  JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item), 2)

/** Prints `value` as JSON with `--json`, else the human text. */
export const output = <A>(json: boolean, value: A, human: (value: A) => string) =>
  Effect.sync(() => console.log(json ? toJson(value) : human(value)))
