/**
 * The CLIs as one flat directory of ESM files, bundled by esbuild from the sources: both CLIs, one file
 * per worker thread's module, and the chunks they share, each subcommand's module its own chunk
 * (LazyCommands.ts loads it by dynamic import). The packages are bundled and tree-shaken with them:
 * loading `effect` whole, and resolving a few hundred files, was most of a second of every start, and
 * libp2p's few hundred small modules a quarter of a node's start. Native addons and the packages that
 * read files beside their own stay in node_modules (EXTERNAL). `npm run build` writes it to dist/bin
 * (the package's bin scripts run it); the tests bundle the same way.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import type { Metafile } from "./CachedChunks.js"
import { cacheChunks, REQUIRE_BANNER } from "./CachedChunks.js"

interface Esbuild {
  readonly build: (options: Record<string, unknown>) => Promise<{
    readonly metafile: Metafile
    readonly outputFiles: ReadonlyArray<{ readonly path: string; readonly text: string }>
  }>
}

const CLIS = ["edge-net", "edge-net-models"]

/** The modules the sources start as threads or processes (each moduleWorker or moduleProcess of the caller's URL and a relative path). */
const threadEntries = (sources: string): ReadonlyArray<string> =>
  (fs.readdirSync(sources, { recursive: true }) as Array<string>)
    .filter((file) => file.endsWith(".ts"))
    .flatMap((file) =>
      Array.from(
        fs.readFileSync(path.join(sources, file), "utf8").matchAll(
          /module(?:Worker|Process)\(import\.meta\.url, "(\.\.?\/[^"]+)"/g
        ),
        (match) => path.join(sources, path.dirname(file), `${match[1]}.ts`)
      )
    )

/**
 * Packages that stay in node_modules, marked free of side effects: native addons (and the loaders that
 * find their binaries beside their own files), onnxruntime (its WebAssembly and binaries are read from
 * its directory), and packages whose optional native parts are found by a require at run time. Marked
 * so because @effect's barrels re-export modules of such packages (msgpackr...), and an external import
 * esbuild must assume has side effects would be kept, and loaded at start, though nothing uses it.
 * (None of our modules imports a package for its side effects alone.)
 */
const EXTERNAL =
  /^(better-sqlite3|sodium-native|msgpackr|msgpackr-extract|onnxruntime-node|onnxruntime-web|onnxruntime-common|@huggingface\/transformers|sharp|esbuild|tsx|playwright-core|ws|bufferutil|utf-8-validate|bindings|node-gyp-build|require-addon)(\/|$)/

const CLI_FILES = /[\\/]@effect[\\/]cli[\\/]dist[\\/]esm[\\/]internal[\\/]files\.js$/
const PLATFORM_BARREL = /[\\/]@effect[\\/]platform[\\/]dist[\\/]esm[\\/]index\.js$/

const PEER_STORE_SORTS = /[\\/]@libp2p[\\/]peer-store[\\/]dist[\\/]src[\\/]utils[\\/](to-peer-pb|dedupe-addresses)\.js$/

/**
 * `source` with each `x.localeCompare(y)` (x a name, property or call without arguments; y the same)
 * comparing in code-unit order instead. A call it cannot rewrite fails the build: a new version of
 * the package is looked at again, not bundled half-changed.
 */
export const inCodeUnitOrder = (source: string, file: string): string => {
  const operand = String.raw`[\w$]+(?:\.[\w$]+|\(\))*`
  const call = new RegExp(String.raw`(${operand})\.localeCompare\((${operand})\)`, "g")
  const rewritten = source.replace(call, "__codeUnitOrder($1, $2)")
  if (rewritten === source || rewritten.includes("localeCompare")) {
    throw new Error(`${file}: its localeCompare calls are not the ones Bundle.ts rewrites`)
  }
  return `const __codeUnitOrder = (a, b) => (a < b ? -1 : a > b ? 1 : 0);\n${rewritten}`
}

const externalPackages = {
  name: "external-packages",
  setup: (build: {
    readonly onResolve: (
      options: { readonly filter: RegExp },
      callback: (args: { readonly path: string; readonly importer: string }) => unknown
    ) => void
    readonly onLoad: (
      options: { readonly filter: RegExp; readonly namespace: string },
      callback: (args: { readonly path: string }) => unknown
    ) => void
  }) => {
    // effect's Schema keeps fast-check (a property-testing library of a megabyte) for its Arbitrary
    // annotations, which only tests call: in the CLIs and the node it is an empty module, 50 ms and
    // 6 MB less at every start.
    build.onResolve({ filter: /^fast-check$/ }, () => ({ path: "fast-check", namespace: "unused" }))
    // @effect/platform-node's HTTP server module imports its undici HTTP client (for a test layer),
    // whose namespace re-export of the undici package esbuild must keep: 112 files loaded at every node
    // start, 165 ms and 20 MB of memory. Our code's clients use fetch (Node's own undici); nothing we
    // run calls the undici client, so the package is an empty module here too.
    build.onResolve({ filter: /^undici$/ }, () => ({ path: "undici", namespace: "unused" }))
    // @effect/platform's barrel re-exports HttpApiSwagger, whose module holds Swagger UI (1.9 MB of
    // source, a 3.4 MB string): reached from the barrel, esbuild puts it in a chunk every node loads at
    // start. Our code imports it by its own path, loaded on the first request for /docs (http/Docs.ts),
    // never through the barrel, where it is an empty module.
    build.onResolve(
      { filter: /^\.\/HttpApiSwagger\.js$/ },
      (args) => PLATFORM_BARREL.test(args.importer) ? { path: "HttpApiSwagger", namespace: "unused" } : undefined
    )
    build.onLoad({ filter: /.*/, namespace: "unused" }, () => ({ contents: "export default {}", loader: "js" }))
    // @effect/cli's file parsing (Options.fileParse, ConfigFile) imports parsers of YAML, TOML and INI,
    // which its module loads with the framework at every command: 0.4 MB of source, 1 MB of heap. Our
    // commands never use it (test/cli/Bundle.test.ts checks): each is a module whose parse says so.
    // ModelsConfig.ts loads yaml for itself.
    build.onResolve(
      { filter: /^(toml|ini|yaml)$/ },
      (args) => CLI_FILES.test(args.importer) ? { path: args.path, namespace: "cli-file-format" } : undefined
    )
    build.onLoad({ filter: /.*/, namespace: "cli-file-format" }, (args) => ({
      contents: `export const parse = () => { throw new Error(${
        JSON.stringify(`edge-net's CLI does not read ${args.path} files`)
      }) }`,
      loader: "js"
    }))
    // libp2p's peer store sorts addresses and tag names by localeCompare, at every node's start: ICU's
    // collator loads, and 2 MB of Node's binary (its collation data) stays paged in for good. The order
    // only makes the store's records deterministic; code-unit order does that as well.
    build.onLoad({ filter: PEER_STORE_SORTS, namespace: "file" }, (args) => ({
      contents: inCodeUnitOrder(fs.readFileSync(args.path, "utf8"), args.path),
      loader: "js"
    }))
    // Bare specifiers (Go's regular expressions have no look-ahead: the external ones are told apart here).
    build.onResolve(
      { filter: /^[^./]/ },
      (args) => EXTERNAL.test(args.path) ? { path: args.path, external: true, sideEffects: false } : undefined
    )
  }
}

/** esbuild's options for the bundle of `entries` in `outdir` (the package plugin apart). */
export const bundleOptions = (entries: ReadonlyArray<string>, outdir: string) => ({
  entryPoints: entries,
  entryNames: "[name]",
  chunkNames: "chunk-[hash]",
  outdir,
  bundle: true,
  splitting: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // Bundled CommonJS packages require Node's own modules: a require in every chunk.
  banner: { js: REQUIRE_BANNER.trimEnd() },
  // What CachedChunks.ts reads: each chunk's sources and imports.
  metafile: true,
  logLevel: "error"
})

/**
 * Bundles the CLIs of the sources under `sources` (the repository's `src`) into `outdir`. A thread is
 * started with `new URL("./Name.js", import.meta.url)`, so every chunk lives beside the entries.
 */
export const bundleCli = async (sources: string, outdir: string): Promise<void> => {
  // CodeCache.ts is loaded by the chunks CachedChunks.ts rewrites, as ./CodeCache.js beside them.
  const entries = [
    ...CLIS.map((cli) => path.join(sources, "cli", `${cli}.ts`)),
    ...new Set(threadEntries(sources)),
    path.join(sources, "cli", "CodeCache.ts")
  ]
  const names = entries.map((entry) => path.basename(entry, ".ts"))
  if (new Set(names).size !== names.length) throw new Error(`two entries share a file name: ${names.join(", ")}`)
  const esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
  const { metafile, outputFiles } = await esbuild.build({
    ...bundleOptions(entries, outdir),
    plugins: [externalPackages],
    write: false
  })
  for (const file of outputFiles) {
    fs.mkdirSync(path.dirname(file.path), { recursive: true })
    fs.writeFileSync(file.path, asciiOnly(file.text))
  }
  // CodeCache.js runs the bodies, and `--version` is answered without it (Entry.ts): the chunks these
  // import stay modules.
  cacheChunks(metafile, ["CodeCache.js", ...CLIS.map((cli) => `${cli}.js`)])
}

/**
 * esbuild escapes every character past ASCII in code, but copies comments as they are: one "√" in a
 * comment, and V8 keeps the whole chunk's source as two bytes a character, for as long as the process
 * runs (2 MB of an idle node's heap). The only characters left to escape are in comments, where any
 * spelling does; `\u{...}` keeps them readable.
 */
const asciiOnly = (text: string): string =>
  text.replace(/[^\x00-\x7f]/gu, (character) => `\\u{${(character.codePointAt(0) ?? 0).toString(16)}}`)
