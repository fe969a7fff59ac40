/**
 * `~/.edge-net/models.yaml`, the seed's CLI configuration: cache location and cap, the registry,
 * CDN, IPFS gateways and peers to pull from, download tuning, and signing and trust settings.
 */
import { Data, Effect, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { writeFileAtomicallySync } from "../node/AtomicFile.js"

export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly file: string; readonly reason: string }> {
  override get message() {
    return `${this.file}: ${this.reason}`
  }
}

/** `10GB`, `512MiB`, `1.5 GB` or a plain number of bytes. */
export const parseByteSize = (text: string | number): number | undefined => {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? Math.floor(text) : undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i.exec(text)
  if (match === null) return undefined
  const units: Record<string, number> = {
    b: 1,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
    kib: 1024,
    mib: 1024 ** 2,
    gib: 1024 ** 3,
    tib: 1024 ** 4
  }
  return Math.floor(Number(match[1]) * (units[(match[2] ?? "b").toLowerCase()] ?? 1))
}

const ByteSize = Schema.Union(Schema.String, Schema.Number).pipe(
  Schema.filter((value) => parseByteSize(value) !== undefined || "a size such as 10GB, 512MiB or a number of bytes")
)

const Url = Schema.String.pipe(Schema.filter((text) => URL.canParse(text) || `"${text}" is not a URL`))

export const SourceKind = Schema.Literal("http", "ipfs", "peer")
export type SourceKind = typeof SourceKind.Type

export const ModelsConfigSchema = Schema.Struct({
  version: Schema.Literal(1),
  /** Which kind of source a pull uses when `--source` is not given; `auto` uses all of them at once. */
  defaultSource: Schema.Literal("auto", "http", "ipfs", "peer", "gcs", "cdn"),
  registry: Url,
  /** `autoCleanup`: a pull evicts least recently used blobs to stay under `maxSize`; off, it fails instead. */
  cache: Schema.Struct({ directory: Schema.String, maxSize: ByteSize, autoCleanup: Schema.Boolean }),
  cdn: Schema.Struct({ endpoint: Schema.String, timeout: Schema.Number, retries: Schema.Number }),
  /** `timeout`: ms a gateway may go without sending a byte (also bounds finding a file's pieces). */
  ipfs: Schema.Struct({ gateways: Schema.Array(Url), timeout: Schema.Number.pipe(Schema.int(), Schema.positive()) }),
  peers: Schema.Array(Url),
  download: Schema.Struct({ parallel: Schema.Number, maxBytesPerSecond: ByteSize }),
  signing: Schema.Struct({ keyPath: Schema.String, keyId: Schema.String }),
  trust: Schema.Struct({ keysDir: Schema.String, threshold: Schema.Number })
})
export type ModelsConfig = typeof ModelsConfigSchema.Type

export const configHome = () => path.join(os.homedir(), ".edge-net")

export const defaultConfig = (): ModelsConfig => ({
  version: 1,
  defaultSource: "auto",
  registry: "http://127.0.0.1:7878",
  cache: { directory: "~/.edge-net/models", maxSize: "10GiB", autoCleanup: true },
  cdn: { endpoint: "", timeout: 30_000, retries: 3 },
  ipfs: { gateways: ["https://ipfs.io/", "https://dweb.link/"], timeout: 60_000 },
  peers: [],
  download: { parallel: 4, maxBytesPerSecond: 0 },
  signing: { keyPath: "~/.edge-net/keys/publisher.key", keyId: "publisher" },
  trust: { keysDir: "~/.edge-net/keys", threshold: 1 }
})

export const expandHome = (
  file: string
) => (file === "~" || file.startsWith("~/") ? path.join(os.homedir(), file.slice(1)) : file)

/** `override` (the CLI's `--config`, else `EDGE_NET_MODELS_CONFIG`), else `~/.edge-net/models.yaml`. */
export const configFile = (override?: string) => override ?? path.join(configHome(), "models.yaml")

type Tree = Record<string, unknown>

const defaultTree = (): Tree => defaultConfig()

const isTree = (value: unknown): value is Tree => typeof value === "object" && value !== null && !Array.isArray(value)

/** The user's settings laid over the defaults, key by key. */
const overlay = (base: Tree, user: Tree): Tree => {
  const merged: Tree = { ...base }
  for (const [key, value] of Object.entries(user)) {
    merged[key] = isTree(value) && isTree(base[key])
      ? overlay(base[key], value)
      : value
  }
  return merged
}

const decode = Schema.decodeUnknownEither(ModelsConfigSchema, { onExcessProperty: "error" })

const firstIssue = (error: { message: string }) =>
  error.message.split("\n").filter((line) => line.trim() !== "").slice(-1)[0]?.trim() ?? error.message

const validate = (file: string, tree: Tree) => {
  const decoded = decode(tree)
  return decoded._tag === "Right"
    ? Effect.succeed(decoded.right)
    : Effect.fail(new ConfigError({ file, reason: firstIssue(decoded.left) }))
}

/**
 * The YAML library, a quarter of a megabyte of code, loaded by the first file read or written: a node
 * (or a command) that meets no models.yaml never loads it.
 */
const yamlLibrary = Effect.promise(() => import("./YamlText.js"))

const readTree = (file: string): Effect.Effect<Tree, ConfigError> =>
  Effect.suspend(() =>
    fs.existsSync(file)
      ? Effect.flatMap(yamlLibrary, (YAML) =>
        Effect.try({
          try: () => {
            const parsed: unknown = YAML.parse(fs.readFileSync(file, "utf8"))
            if (parsed === null || parsed === undefined) return {}
            if (!isTree(parsed)) throw new Error("expected a YAML mapping at the top level")
            return parsed
          },
          catch: (cause) =>
            new ConfigError({ file, reason: cause instanceof Error ? cause.message.split("\n")[0]! : String(cause) })
        }))
      : Effect.succeed({})
  )

/**
 * The first key of `user` the CLI does not use, dotted. The seed's `ipfs.parallel` and `preferences.*`
 * are among them: downloads take their parallelism from `download.parallel`, and nothing chooses among
 * a model's variants, so a file that sets them is told so rather than silently ignored.
 */
const unknownKey = (user: Tree, base: Tree, prefix = ""): string | undefined => {
  for (const [key, value] of Object.entries(user)) {
    if (!Object.hasOwn(base, key)) return `${prefix}${key}`
    const inner = base[key]
    if (isTree(value) && isTree(inner)) {
      const found = unknownKey(value, inner, `${prefix}${key}.`)
      if (found !== undefined) return found
    }
  }
  return undefined
}

/** Reads the config file (missing file = defaults), validated; a bad file or an unknown key is one clear error. */
export const loadConfig = (file = configFile()) =>
  Effect.flatMap(readTree(file), (tree) => {
    const defaults = defaultTree()
    const unknown = unknownKey(tree, defaults)
    if (unknown !== undefined) {
      return Effect.fail(
        new ConfigError({
          file,
          reason: `unknown key "${unknown}" (keys: ${configKeys().filter((k) => k !== "version").join(", ")})`
        })
      )
    }
    return validate(file, overlay(defaults, tree))
  })

/** Every settable key, dotted, e.g. `cache.maxSize`. */
export const configKeys = (tree: Tree = defaultTree(), prefix = ""): Array<string> =>
  Object.entries(tree).flatMap((
    [key, value]
  ) => (isTree(value) ? configKeys(value, `${prefix}${key}.`) : [`${prefix}${key}`]))

const coerce = (current: unknown, text: string): unknown => {
  if (Array.isArray(current)) return text === "" ? [] : text.split(",").map((item) => item.trim())
  if (typeof current === "number") return /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text
  if (typeof current === "boolean") return text === "true" ? true : text === "false" ? false : text
  return text
}

/** The seed's camelCase spellings of keys (`config set cacheDir ~/.edge-net/models`, seed 6.1) and the dotted keys they set. */
const seedKeys: ReadonlyMap<string, string> = new Map([["cacheDir", "cache.directory"]])

/** The dotted key a `config set` key names: itself, or the key a seed spelling stands for. */
export const configKeyOf = (key: string) => seedKeys.get(key) ?? key

/** Sets one dotted key in the file, keeping the user's comments and layout, after validating the result. */
export const setConfig = (requested: string, value: string, file = configFile()) =>
  Effect.gen(function*() {
    const key = configKeyOf(requested)
    const keys = configKeys()
    if (!keys.includes(key) || key === "version") {
      return yield* Effect.fail(
        new ConfigError({
          file,
          reason: `unknown key "${key}" (keys: ${keys.filter((k) => k !== "version").join(", ")})`
        })
      )
    }
    const defaults = defaultTree()
    const segments = key.split(".")
    const current = segments.reduce<unknown>((node, segment) => (isTree(node) ? node[segment] : undefined), defaults)
    const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "version: 1\n"
    const YAML = yield* yamlLibrary
    const document = YAML.parseDocument(text)
    document.setIn(segments, coerce(current, value))
    const tree = (document.toJS() ?? {}) as Tree
    const config = yield* validate(file, overlay(defaults, tree))
    yield* Effect.try({
      try: () => {
        fs.mkdirSync(path.dirname(file), { recursive: true })
        writeFileAtomicallySync(file, document.toString())
      },
      catch: (cause) => new ConfigError({ file, reason: cause instanceof Error ? cause.message : String(cause) })
    })
    return config
  })

export const cacheMaxBytes = (config: ModelsConfig) => parseByteSize(config.cache.maxSize) ?? 10 * 1024 ** 3
export const cacheDirectory = (config: ModelsConfig) => path.resolve(expandHome(config.cache.directory))
export const keysDirectory = (config: ModelsConfig) => path.resolve(expandHome(config.trust.keysDir))
