/** `edge-net-models cache info|clear|prune` and `config show|set`: the local model cache and models.yaml. */
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import * as YAML from "yaml"
import { BlobStore } from "../content/BlobStore.js"
import type { BlobInfo } from "../content/BlobStore.js"
import { configKeyOf, setConfig } from "../content/ModelsConfig.js"
import { CliError } from "./CliError.js"
import { configOption, ModelsSettings, withModels } from "./ModelsContext.js"
import { formatBytes } from "./Progress.js"
import { jsonOption, output } from "./Shared.js"

/** `30d`, `12h`, `45m`, `90s` or `2w` in milliseconds. */
export const parseAge = (text: string) => {
  const match = /^(\d+)\s*(s|m|h|d|w)$/.exec(text.trim())
  if (match === null) {
    return Effect.fail(
      new CliError({ message: `invalid age "${text}": expected a number and a unit, e.g. 30d, 12h, 45m` })
    )
  }
  const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[match[2] as "s" | "m" | "h" | "d" | "w"]
  return Effect.succeed(Number(match[1]) * unit)
}

const removedText = (removed: ReadonlyArray<BlobInfo>) =>
  removed.length === 0
    ? "nothing to remove"
    : `removed ${removed.length} blob(s), ${formatBytes(removed.reduce((sum, blob) => sum + blob.size, 0))} freed`

const info = Command.make("info", { config: configOption, json: jsonOption }, ({ config, json }) =>
  withModels(
    config,
    Effect.gen(function*() {
      const store = yield* BlobStore
      const summary = yield* store.summary
      const blobs = yield* store.list
      const withRefs = yield* Effect.forEach(blobs, (blob) =>
        Effect.map(store.refsOf(blob.digest), (refs) => ({ ...blob, refs })))
      yield* output(json, { ...summary, items: withRefs }, (s) =>
        [
          `cache ${s.root}: ${s.blobs} blob(s), ${formatBytes(s.bytes)} of ${
            formatBytes(s.maxBytes)
          }, ${s.pinned} pinned`,
          ...s.items.map((blob) =>
            `  ${blob.digest.slice(0, 19)}  ${formatBytes(blob.size).padStart(10)}  last used ${
              new Date(blob.lastUsed).toISOString()
            }` +
            `${blob.pinned ? "  pinned" : ""}  ${blob.refs.join(", ") || "(unreferenced)"}`
          )
        ].join("\n"))
    })
  )).pipe(Command.withDescription("cache location, size, cap and what it holds"))

const olderThan = Options.text("older-than").pipe(
  Options.withDescription("only blobs not used for this long, e.g. 30d, 12h"),
  Options.optional
)

const clear = Command.make(
  "clear",
  { config: configOption, olderThan, json: jsonOption },
  ({ config, json, olderThan }) =>
    withModels(
      config,
      Effect.gen(function*() {
        const age = Option.isSome(olderThan) ? yield* parseAge(olderThan.value) : undefined
        const removed = yield* (yield* BlobStore).clear(age)
        yield* output(json, { removed }, () => removedText(removed))
      })
    )
).pipe(Command.withDescription("remove cached blobs (pinned and in-use blobs stay)"))

const prune = Command.make("prune", { config: configOption, json: jsonOption }, ({ config, json }) =>
  withModels(
    config,
    Effect.gen(function*() {
      const removed = yield* (yield* BlobStore).prune
      yield* output(json, { removed }, () => removedText(removed))
    })
  )).pipe(Command.withDescription("remove blobs no pulled model refers to"))

export const cacheCommand = Command.make("cache").pipe(
  Command.withDescription("the local model cache"),
  Command.withSubcommands([info, clear, prune])
)

const show = Command.make("show", { config: configOption, json: jsonOption }, ({ config, json }) =>
  withModels(
    config,
    Effect.gen(function*() {
      const settings = yield* ModelsSettings
      yield* output(json, settings.config, (c) => `# ${settings.file}\n${YAML.stringify(c)}`.trimEnd())
    })
  )).pipe(Command.withDescription("the effective configuration (file over defaults)"))

const set = Command.make(
  "set",
  { key: Args.text({ name: "KEY" }), value: Args.text({ name: "VALUE" }), config: configOption },
  ({ config, key, value }) =>
    withModels(
      config,
      Effect.gen(function*() {
        const { file } = yield* ModelsSettings
        yield* setConfig(key, value, file).pipe(Effect.mapError((error) => new CliError({ message: error.message })))
        yield* Effect.sync(() => console.log(`${configKeyOf(key)} = ${value} (${file})`))
      })
    )
).pipe(
  Command.withDescription(
    "set one key, e.g. `config set cache.maxSize 20GB`, `config set ipfs.gateways URL1,URL2`, `config set cacheDir DIR` (the seed's name for cache.directory)"
  )
)

export const configCommand = Command.make("config").pipe(
  Command.withDescription("show or change ~/.edge-net/models.yaml"),
  Command.withSubcommands([show, set])
)
