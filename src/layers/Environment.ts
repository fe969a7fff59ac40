/**
 * Every setting a program takes from its environment (`EDGE_NET_*`), read once through Effect's
 * `Config`, validated, with its default: a bad value is one line naming the variable, at start.
 */
import { Config, ConfigError, Context, Data, Effect, Either, Layer, Option } from "effect"
import { parseByteSize } from "../content/ModelsConfig.js"
import type { Synchronous } from "../events/SqliteDatabase.js"
import {
  corsOriginProblem,
  DEFAULT_HOST,
  DEFAULT_INFERENCE,
  DEFAULT_PORT,
  type InferenceSettings
} from "../layers/NodeConfig.js"
import { parseCharterSettings } from "./CharterSettings.js"
import type { GenesisParameters } from "./GenesisSettings.js"
import { parseGenesisParameters } from "./GenesisSettings.js"

export interface EnvironmentSettings {
  /** `EDGE_NET_HOME`: the data directory when `--data` is not given. */
  readonly home: Option.Option<string>
  /** `EDGE_NET_MODELS_CONFIG`: models.yaml when `--config` is not given. */
  readonly modelsConfig: Option.Option<string>
  /** `EDGE_NET_SYNC`: SQLite's `synchronous` for the journal (off, normal, full); default normal. */
  readonly synchronous: Synchronous
  /** `EDGE_NET_CONTENT_MAX`: the cap of a node's blob store, e.g. 10GiB (the default). */
  readonly maxContentBytes: number
  /** `EDGE_NET_HOST` and `EDGE_NET_PORT`: where `node start` listens when `--host` / `--port` are not given. */
  readonly host: string
  readonly port: number
  /** `EDGE_NET_GENESIS`: `name=value,...` parameters applied while never changed. */
  readonly genesisParameters: GenesisParameters
  /** `EDGE_NET_NETWORK`, `EDGE_NET_OPERATORS`, `EDGE_NET_OPERATOR_THRESHOLD`: the charter named at first start. */
  readonly network?: string | undefined
  readonly operators?: ReadonlyArray<string> | undefined
  readonly operatorThreshold?: number | undefined
  /** `EDGE_NET_SEQUENCER`: the economy's sequencer named at first start (`self`, a public key or a peer id). */
  readonly sequencer?: string | undefined
  /** `EDGE_NET_P2P_LISTEN`, `EDGE_NET_BOOTSTRAP`, `EDGE_NET_FOLLOW`: comma-separated multiaddrs / peer ids. */
  readonly p2pListen: Option.Option<ReadonlyArray<string>>
  readonly bootstrap: ReadonlyArray<string>
  readonly follow: ReadonlyArray<string>
  /** `EDGE_NET_INFERENCE_WORKERS`, `EDGE_NET_INFERENCE_CONCURRENCY`, `EDGE_NET_INFERENCE_QUEUE`,
   * `EDGE_NET_INFERENCE_MODELS`: served inference's threads and bounds (unset: `inferenceSettingsOf`'s defaults);
   * `EDGE_NET_TASK_ENCODER`: the model that embeds requests for the adapter pool's choice. */
  readonly inference: Partial<InferenceSettings>
  /** `EDGE_NET_CORS_ORIGINS`: comma-separated origins (or `*`) whose pages may read the registry and blobs. */
  readonly corsOrigins: ReadonlyArray<string>
  /**
   * `EDGE_NET_FIRST_START_MODELS`: `on` (default) publishes the reference models at first start, `off`
   * not, or a comma-separated list of catalog ids publishes those only.
   */
  readonly firstStartModels: boolean
  readonly firstStartIds: ReadonlyArray<string> | undefined
}

const byteSize = (name: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const bytes = parseByteSize(text)
      return bytes === undefined
        ? Either.left(invalid(`expected a size such as 10GiB, 512MB or a number of bytes, got "${text}"`))
        : Either.right(bytes)
    })
  )

// The parsers of the genesis and charter variables name the variable in their message already.
const parsed = <A>(name: string, parse: (text: string) => A) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      try {
        return Either.right(parse(text))
      } catch (error) {
        return Either.left(invalid((error instanceof Error ? error.message : String(error)).replace(`${name}: `, "")))
      }
    })
  )

// Config prefixes the variable's name to a problem found by mapping its value.
const invalid = (message: string, path: ReadonlyArray<string> = []) => ConfigError.InvalidData([...path], message)

const charter = Config.all({
  network: Config.option(Config.string("EDGE_NET_NETWORK")),
  operators: Config.option(Config.string("EDGE_NET_OPERATORS")),
  threshold: Config.option(Config.string("EDGE_NET_OPERATOR_THRESHOLD")),
  sequencer: Config.option(Config.string("EDGE_NET_SEQUENCER"))
}).pipe(
  Config.mapOrFail(({ network, operators, sequencer, threshold }) => {
    try {
      return Either.right(parseCharterSettings({
        EDGE_NET_NETWORK: Option.getOrUndefined(network),
        EDGE_NET_OPERATORS: Option.getOrUndefined(operators),
        EDGE_NET_OPERATOR_THRESHOLD: Option.getOrUndefined(threshold),
        EDGE_NET_SEQUENCER: Option.getOrUndefined(sequencer)
      }))
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      const [name = "EDGE_NET_NETWORK", ...rest] = message.split(": ")
      return Either.left(invalid(rest.join(": "), [name]))
    }
  })
)

const commaList = (name: string, item: RegExp, expected: string) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const items = text.split(",").map((part) => part.trim()).filter((part) => part !== "")
      const bad = items.find((part) => !item.test(part))
      return bad === undefined ? Either.right(items) : Either.left(invalid(`"${bad}" is not ${expected}`))
    })
  )

const count = (name: string, least: number) =>
  Config.string(name).pipe(
    Config.mapOrFail((text) => {
      const value = Number(text.trim())
      return Number.isSafeInteger(value) && value >= least && text.trim() !== ""
        ? Either.right(value)
        : Either.left(invalid(`expected a whole number of at least ${least}, got "${text}"`))
    })
  )

const MULTIADDR = /^\/[^,\s]+$/
const PEER_MULTIADDR = /^\/[^,\s]+\/p2p\/[1-9A-HJ-NP-Za-km-z]{46,60}$/
const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{46,60}$/

export const environmentConfig: Config.Config<EnvironmentSettings> = Config.all({
  home: Config.option(Config.nonEmptyString("EDGE_NET_HOME")),
  modelsConfig: Config.option(Config.nonEmptyString("EDGE_NET_MODELS_CONFIG")),
  synchronous: Config.literal("off", "normal", "full")("EDGE_NET_SYNC").pipe(Config.withDefault("normal" as const)),
  maxContentBytes: byteSize("EDGE_NET_CONTENT_MAX").pipe(Config.withDefault(10 * 1024 ** 3)),
  host: Config.nonEmptyString("EDGE_NET_HOST").pipe(Config.withDefault(DEFAULT_HOST)),
  port: Config.port("EDGE_NET_PORT").pipe(Config.withDefault(DEFAULT_PORT)),
  genesisParameters: parsed("EDGE_NET_GENESIS", parseGenesisParameters).pipe(Config.withDefault({})),
  charter,
  p2pListen: Config.option(commaList("EDGE_NET_P2P_LISTEN", MULTIADDR, "a multiaddr such as /ip4/0.0.0.0/tcp/7879")),
  bootstrap: commaList(
    "EDGE_NET_BOOTSTRAP",
    PEER_MULTIADDR,
    "a peer address such as /ip4/10.0.0.2/tcp/7879/p2p/12D3KooW..."
  ).pipe(Config.withDefault([])),
  follow: commaList("EDGE_NET_FOLLOW", PEER_ID, "a peer id such as 12D3KooW...").pipe(Config.withDefault([])),
  inference: Config.all({
    workers: Config.option(count("EDGE_NET_INFERENCE_WORKERS", 0)),
    concurrency: Config.option(count("EDGE_NET_INFERENCE_CONCURRENCY", 1)),
    queue: count("EDGE_NET_INFERENCE_QUEUE", 0).pipe(Config.withDefault(DEFAULT_INFERENCE.queue)),
    maxModels: count("EDGE_NET_INFERENCE_MODELS", 1).pipe(Config.withDefault(DEFAULT_INFERENCE.maxModels)),
    taskEncoder: Config.option(Config.nonEmptyString("EDGE_NET_TASK_ENCODER"))
  }).pipe(Config.map(({ concurrency, taskEncoder, workers, ...bounds }): Partial<InferenceSettings> => ({
    ...bounds,
    ...(Option.isSome(workers) ? { workers: workers.value } : {}),
    ...(Option.isSome(concurrency) ? { concurrency: concurrency.value } : {}),
    ...(Option.isSome(taskEncoder) ? { taskEncoder: taskEncoder.value } : {})
  }))),
  corsOrigins: Config.string("EDGE_NET_CORS_ORIGINS").pipe(
    Config.mapOrFail((text) => {
      const origins = text.split(",").map((part) => part.trim()).filter((part) => part !== "")
      const problem = origins.map(corsOriginProblem).find((found) => found !== undefined)
      return problem === undefined ? Either.right(origins) : Either.left(invalid(problem))
    }),
    Config.withDefault<ReadonlyArray<string>>([])
  ),
  firstStart: Config.string("EDGE_NET_FIRST_START_MODELS").pipe(
    Config.mapOrFail(
      (value): Either.Either<{ on: boolean; ids: ReadonlyArray<string> | undefined }, ConfigError.ConfigError> => {
        if (value === "on" || value === "off") return Either.right({ on: value === "on", ids: undefined })
        const ids = value.split(",").map((id) => id.trim()).filter((id) => id !== "")
        return ids.length > 0 && ids.every((id) => /^[a-z0-9][a-z0-9._-]{0,99}$/.test(id))
          ? Either.right({ on: true, ids })
          : Either.left(invalid(`is on, off or a comma-separated list of model ids, not ${JSON.stringify(value)}`))
      }
    ),
    Config.withDefault<{ on: boolean; ids: ReadonlyArray<string> | undefined }>({ on: true, ids: undefined })
  )
}).pipe(
  Config.map(({ charter, firstStart, ...settings }) => ({
    ...settings,
    ...charter,
    firstStartModels: firstStart.on,
    firstStartIds: firstStart.ids
  }))
)

export class EnvironmentError
  extends Data.TaggedError("EnvironmentError")<{ readonly variable: string; readonly problem: string }>
{
  override get message() {
    return `${this.variable}: ${this.problem}`
  }
}

/** The first thing wrong, as `VARIABLE: what was expected`. */
const firstProblem = (error: ConfigError.ConfigError): EnvironmentError => {
  switch (error._op) {
    case "And":
    case "Or":
      return firstProblem(error.left)
    case "InvalidData":
    case "MissingData":
    case "SourceUnavailable":
    case "Unsupported": {
      const message = error.message.replace(/^Expected/, "expected")
      return new EnvironmentError({ variable: error.path.join("_") || "environment", problem: message })
    }
  }
}

/** The environment's settings, validated; provided once at a program's edge. */
export class Environment extends Context.Tag("edge-net/Environment")<Environment, EnvironmentSettings>() {
  static readonly layer = Layer.effect(Environment, Effect.mapError(environmentConfig, firstProblem))
}
