/**
 * The manifests of pulled models, kept beside the cache's blobs as `manifests/<id>/<version>.json`
 * exactly as their publishers signed them, so `verify` and `info` work offline.
 */
import { Data, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { jsonDecoder, JsonValue } from "../domain/JsonText.js"
import { writeFileAtomicallySync } from "../node/AtomicFile.js"
import type { ModelManifest } from "./Manifest.js"
import { parseManifest, versionsAmong } from "./Manifest.js"

export class LocalModelError extends Data.TaggedError("LocalModelError")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

// The manifest decoder checks the shape; this only turns the text into a value, with the file named.
const decodeJson = jsonDecoder(JsonValue)

const manifestsDir = (cacheRoot: string) => path.join(cacheRoot, "manifests")

export const saveManifest = (cacheRoot: string, manifest: ModelManifest) =>
  Effect.try({
    try: () => {
      const dir = path.join(manifestsDir(cacheRoot), manifest.id)
      fs.mkdirSync(dir, { recursive: true })
      const file = path.join(dir, `${manifest.version}.json`)
      writeFileAtomicallySync(file, JSON.stringify(manifest, null, 2) + "\n")
      return file
    },
    catch: (cause) => new LocalModelError({ reason: `cannot save the manifest of ${manifest.id}: ${String(cause)}` })
  })

const versionsOf = (cacheRoot: string, id: string) => {
  const dir = path.join(manifestsDir(cacheRoot), id)
  if (!fs.existsSync(dir)) return []
  return versionsAmong(fs.readdirSync(dir).filter((name) => name.endsWith(".json")).map((name) => name.slice(0, -5)))
}

/** A pulled manifest: the given version, else the highest one pulled. */
export const readManifest = (cacheRoot: string, id: string, version?: string) =>
  Effect.gen(function*() {
    const versions = versionsOf(cacheRoot, id)
    const chosen = version ?? versions[versions.length - 1]
    if (chosen === undefined || !versions.includes(chosen)) {
      return yield* Effect.fail(
        new LocalModelError({
          reason: `${id}${
            version === undefined ? "" : `@${version}`
          } is not in the cache (pull it first: edge-net-models pull ${id})`
        })
      )
    }
    const file = path.join(manifestsDir(cacheRoot), id, `${chosen}.json`)
    const json = decodeJson(fs.readFileSync(file, "utf8"), file)
    if (Either.isLeft(json)) return yield* Effect.fail(new LocalModelError({ reason: json.left.message }))
    const parsed = parseManifest(json.right)
    if (Either.isLeft(parsed)) {
      return yield* Effect.fail(new LocalModelError({ reason: `${file}: ${parsed.left.message}` }))
    }
    return parsed.right
  })

/** Every pulled model's highest version. */
export const listManifests = (cacheRoot: string) =>
  Effect.gen(function*() {
    const dir = manifestsDir(cacheRoot)
    if (!fs.existsSync(dir)) return []
    const ids = fs.readdirSync(dir).sort()
    const manifests: Array<ModelManifest> = []
    for (const id of ids) {
      if (versionsOf(cacheRoot, id).length > 0) manifests.push(yield* readManifest(cacheRoot, id))
    }
    return manifests
  })

export const removeManifest = (cacheRoot: string, id: string, version: string) =>
  Effect.sync(() => fs.rmSync(path.join(manifestsDir(cacheRoot), id, `${version}.json`), { force: true }))
