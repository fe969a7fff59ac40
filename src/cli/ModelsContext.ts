/**
 * What every `edge-net-models` command runs in: the validated `models.yaml` (or `--config FILE`) and
 * the local model cache, a blob store under `cache.directory` capped at `cache.maxSize`.
 */
import { Options } from "@effect/cli"
import { Context, Effect, Layer, Option } from "effect"
import type { BlobStore } from "../content/BlobStore.js"
import type { ModelsConfig } from "../content/ModelsConfig.js"
import { cacheDirectory, cacheMaxBytes, configFile, loadConfig } from "../content/ModelsConfig.js"
import { Environment } from "../layers/Environment.js"
import { CliError } from "./CliError.js"

export class ModelsSettings extends Context.Tag("edge-net/cli/ModelsSettings")<
  ModelsSettings,
  { readonly config: ModelsConfig; readonly file: string }
>() {}

export const configOption = Options.file("config").pipe(
  Options.withDescription("models config file (default: $EDGE_NET_MODELS_CONFIG, else ~/.edge-net/models.yaml)"),
  Options.optional
)

export const registryOption = Options.text("registry").pipe(
  Options.withDescription("URL of the registry node (default: `registry` in models.yaml)"),
  Options.optional
)

const asCliError = <A, E extends { readonly message: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.mapError(effect, (error) => new CliError({ message: error.message }))

/** The validated `models.yaml` (or `--config FILE`) and the file it came from. */
const loadSettings = (configPath: Option.Option<string>) =>
  Effect.gen(function*() {
    const environment = yield* Environment
    const file = configFile(Option.getOrUndefined(Option.orElse(configPath, () => environment.modelsConfig)))
    const config = yield* asCliError(loadConfig(file))
    return { config, file }
  })

/** Provides the config to `use`, without opening the cache. */
export const withModelsSettings = <A, E, R>(
  configPath: Option.Option<string>,
  use: Effect.Effect<A, E, R | ModelsSettings>
): Effect.Effect<A, E | CliError, Exclude<R, ModelsSettings> | Environment> =>
  Effect.flatMap(loadSettings(configPath), (settings) => Effect.provideService(use, ModelsSettings, settings))

/** Provides the config and the cache's blob store to `use`. */
export const withModels = <A, E, R>(
  configPath: Option.Option<string>,
  use: Effect.Effect<A, E, R | ModelsSettings | BlobStore>
): Effect.Effect<A, E | CliError, Exclude<R, ModelsSettings | BlobStore> | Environment> =>
  Effect.gen(function*() {
    const { config, file } = yield* loadSettings(configPath)
    // Loaded here, not with this module: the commands that never open the cache (`list --local`,
    // `config`) then start without SQLite.
    const { BlobStore } = yield* Effect.promise(() => import("../content/BlobStore.js"))
    const store = BlobStore.layer({ root: cacheDirectory(config), maxBytes: cacheMaxBytes(config) }).pipe(
      Layer.catchAll((error) => Layer.fail(new CliError({ message: error.message })))
    )
    return yield* use.pipe(Effect.provide(Layer.merge(store, Layer.succeed(ModelsSettings, { config, file }))))
  })

export const registryUrl = (flag: Option.Option<string>) =>
  Effect.map(ModelsSettings, ({ config }) => Option.getOrElse(flag, () => config.registry).replace(/\/+$/, ""))

/** `id` or `id@version`. */
export const parseReference = (text: string) => {
  const at = text.lastIndexOf("@")
  return at > 0 ? { id: text.slice(0, at), version: text.slice(at + 1) } : { id: text, version: undefined }
}
