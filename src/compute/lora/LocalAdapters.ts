/**
 * The adapters on this machine, kept in the models cache as `adapters/<id>/<version>/` (our adapter
 * directory: `adapter.json` + `adapter.safetensors`): trained here, imported, merged or pulled.
 */
import { Data, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { versionsAmong } from "../../content/Manifest.js"
import { jsonDecoderSync, JsonTextError, JsonValue } from "../../domain/JsonText.js"
import type { AdapterMetadata, LoraWeights } from "./Adapter.js"
import type { AdapterDescription, SaveAdapterOptions, VerifyAdapterOptions } from "./AdapterFile.js"
import { loadAdapter, parseAdapterMetadata, saveAdapter } from "./AdapterFile.js"

// adapter.json as a value; parseAdapterMetadata checks its shape.
const decodeJson = jsonDecoderSync(JsonValue)

export class LocalAdapterError extends Data.TaggedError("LocalAdapterError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const adaptersRoot = (cacheRoot: string) => path.join(cacheRoot, "adapters")

export const localAdapterDir = (cacheRoot: string, id: string, version: string) =>
  path.join(adaptersRoot(cacheRoot), id, version)

const versionsOf = (cacheRoot: string, id: string): Array<string> => {
  const dir = path.join(adaptersRoot(cacheRoot), id)
  if (!fs.existsSync(dir)) return []
  return versionsAmong(fs.readdirSync(dir)).filter((version) => fs.existsSync(path.join(dir, version, "adapter.json")))
}

/** Stores an adapter under its id and version; an existing version is never overwritten. */
export const saveLocalAdapter = (
  cacheRoot: string,
  description: AdapterDescription,
  weights: LoraWeights,
  options: SaveAdapterOptions = {}
) =>
  Effect.gen(function*() {
    if (versionsOf(cacheRoot, description.id).includes(description.version)) {
      return yield* new LocalAdapterError({
        reason: `adapter ${description.id}@${description.version} is already stored here (give another --model-version)`
      })
    }
    return yield* saveAdapter(
      localAdapterDir(cacheRoot, description.id, description.version),
      description,
      weights,
      options
    ).pipe(
      Effect.mapError((error) => new LocalAdapterError({ reason: error.message }))
    )
  })

/** A stored adapter, checked (checksum, and the signature as `options` ask): the given version, else the highest. */
export const loadLocalAdapter = (cacheRoot: string, id: string, version?: string, options: VerifyAdapterOptions = {}) =>
  Effect.gen(function*() {
    const versions = versionsOf(cacheRoot, id)
    const chosen = version ?? versions[versions.length - 1]
    if (chosen === undefined || !versions.includes(chosen)) {
      return yield* new LocalAdapterError({
        reason: `no adapter ${id}${
          version === undefined ? "" : `@${version}`
        } here (edge-net-models adapters list shows what there is)`
      })
    }
    return yield* loadAdapter(localAdapterDir(cacheRoot, id, chosen), options).pipe(
      Effect.mapError((error) => new LocalAdapterError({ reason: error.message }))
    )
  })

/** The metadata of every stored adapter's highest version, by id; unreadable ones are reported beside them. */
export const listLocalAdapters = (cacheRoot: string) =>
  Effect.sync(() => {
    const root = adaptersRoot(cacheRoot)
    const adapters: Array<AdapterMetadata> = []
    const unreadable: Array<string> = []
    for (const id of fs.existsSync(root) ? fs.readdirSync(root).sort() : []) {
      const version = versionsOf(cacheRoot, id).at(-1)
      if (version === undefined) continue
      const file = path.join(localAdapterDir(cacheRoot, id, version), "adapter.json")
      try {
        const metadata = parseAdapterMetadata(decodeJson(fs.readFileSync(file, "utf8"), file))
        if (Either.isRight(metadata)) adapters.push(metadata.right)
        else unreadable.push(`${file}: ${metadata.left}`)
      } catch (error) {
        unreadable.push(
          error instanceof JsonTextError
            ? error.message
            : `${file}: ${error instanceof Error ? error.message : String(error)}`
        )
      }
    }
    return { adapters, unreadable }
  })
