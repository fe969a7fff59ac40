/**
 * `edge-net-models list`: the models of the registry, or with `--local` those pulled into the cache.
 * Its own module, and the registry's HTTP client loaded only when asked, so that `list --local` loads
 * neither the node's API nor SQLite: it reads the manifests of the cache directory, nothing more.
 */
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { listManifests } from "../content/LocalModels.js"
import { manifestBytes } from "../content/Manifest.js"
import { cacheDirectory } from "../content/ModelsConfig.js"
import { configOption, ModelsSettings, registryOption, registryUrl, withModelsSettings } from "./ModelsContext.js"
import { formatBytes } from "./Progress.js"
import { jsonOption, output } from "./Shared.js"

const typeOption = Options.text("type").pipe(
  Options.withDescription("text-generation, embedding, vision, ..."),
  Options.optional
)
const QUANTIZATIONS = ["FP32", "FP16", "INT8", "INT4"] as const
const quantizationOption = Options.choice("quantization", QUANTIZATIONS).pipe(Options.optional)
const localOption = Options.boolean("local").pipe(
  Options.withDescription("list the models pulled into the cache instead of the registry's")
)

interface Filter {
  readonly type: string | undefined
  readonly quantization: typeof QUANTIZATIONS[number] | undefined
}

const cachedModels = (filter: Filter) =>
  Effect.gen(function*() {
    const { config } = yield* ModelsSettings
    const manifests = yield* listManifests(cacheDirectory(config))
    return manifests
      .filter((m) =>
        (filter.type === undefined || m.type === filter.type) &&
        (filter.quantization === undefined || m.optimization?.quantization === filter.quantization)
      )
      .map((m) => ({
        id: m.id,
        name: m.name,
        type: m.type,
        quantization: m.optimization?.quantization ?? "FP32",
        size: manifestBytes(m),
        version: m.version,
        publishedBy: m.publishedBy
      }))
  })

const registryModels = (registry: Option.Option<string>, filter: Filter) =>
  Effect.gen(function*() {
    const url = yield* registryUrl(registry)
    const { listModels } = yield* Effect.promise(() => import("../http/RegistryClient.js"))
    return yield* listModels(url, filter)
  })

export const listCommand = Command.make(
  "list",
  {
    type: typeOption,
    quantization: quantizationOption,
    local: localOption,
    registry: registryOption,
    config: configOption,
    json: jsonOption
  },
  ({ config, json, local, quantization, registry, type }) =>
    withModelsSettings(
      config,
      Effect.gen(function*() {
        const filter = { type: Option.getOrUndefined(type), quantization: Option.getOrUndefined(quantization) }
        const models = local ? yield* cachedModels(filter) : yield* registryModels(registry, filter)
        yield* output(json, models, (rows) =>
          rows.length === 0
            ? "no models"
            : rows.map((m) =>
              `${m.id.padEnd(28)} ${m.version.padEnd(10)} ${m.type.padEnd(16)} ${
                (m.quantization ?? "FP32").padEnd(5)
              } ${formatBytes(m.size).padStart(10)}  ${m.name}`
            ).join("\n"))
      })
    )
).pipe(Command.withDescription("models in the registry (or, with --local, in the cache)"))
