/**
 * Runs the bundle's chunks as scripts, through V8's code cache. Node 20 keeps no cache for ES modules
 * (Node 22's module.enableCompileCache does), and compiling the CLI's chunks was a third of a quick
 * command's start. The build (CachedChunks.ts) moves a chunk's body into a script beside it, wrapped in
 * a function of a linker; what remains of the chunk, its facade, calls runChunk and exports what the
 * body returned. A body's imports of other bodies are run here, synchronously, without Node's module
 * loader. The first process to run a large body writes its cache at exit; later ones read it instead
 * of compiling. Node builtins (and the tiny IdleHeap.ts) only: every facade loads this module first.
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"
import { startsNode, withDefaultFlags } from "../node/IdleHeap.js"

/** `EDGE_NET_CODE_CACHE=off` compiles every chunk afresh and writes no cache (to measure, or to rule it out). */
const enabled = process.env["EDGE_NET_CODE_CACHE"] !== "off"

/** Smaller bodies compile in less time than reading a cache costs. */
const MIN_CACHED_LENGTH = 16 * 1024

/**
 * A process that exits within this many seconds (a CLI command) caches every function it compiled; one
 * that lived longer (a node) caches what loading the chunk compiled. A node's whole cache cost a CLI
 * more time to read than compiling would have.
 */
const SHORT_LIVED_SECONDS = 5

/**
 * A node and a CLI command keep caches of their own: a cache V8 accepts is never written again, and
 * a node's (what loading compiled) served the commands that ran after it, which then compiled what
 * it left out each time: `list --local` took 0.36 s instead of 0.27 s once `npm start` had run first.
 */
const cacheSuffix = startsNode(process.argv) ? ".node.v8cache" : ".v8cache"

/** The chunks this process compiled without a usable cache, by the cache file each one should write. */
const uncached = new Map<string, { readonly script: vm.Script; readonly loaded: Buffer }>()

const writeCaches = () => {
  const shortLived = process.uptime() < SHORT_LIVED_SECONDS
  for (const [cacheFile, { loaded, script }] of uncached) {
    const staging = `${cacheFile}.${process.pid}.tmp`
    try {
      fs.writeFileSync(staging, shortLived ? withDefaultFlags(() => script.createCachedData()) : loaded)
      fs.renameSync(staging, cacheFile)
    } catch {
      // A read-only installation: the next process compiles the chunk again, as without a cache.
      fs.rmSync(staging, { force: true })
    }
  }
}

const readCache = (cacheFile: string): Buffer | undefined => {
  try {
    return fs.readFileSync(cacheFile)
  } catch {
    return undefined
  }
}

type Exports = Readonly<Record<string, unknown>>

/** A chunk's body (CachedChunks.ts): a function of its linker, `require`, `import.meta` and `import()`. */
type Body = (
  link: (specifier: string) => unknown,
  require: NodeJS.Require,
  importMeta: { readonly url: string },
  dynamicImport: (specifier: string) => Promise<unknown>
) => Exports

/** The exports of every chunk this process ran, by name: each runs once, for whoever asks first. */
const ran = new Map<string, Exports>()

/** The modules facades imported for their bodies, by specifier (a chunk's `./chunk-....js`, a package's name). */
const modules = new Map<string, unknown>()

/** Compiles the body of a chunk from its source, or from its cache (for a body large enough to have one). */
const compile = (directory: string, name: string): Body => {
  const bodyFile = path.join(directory, `${name}.body.js`)
  const cacheFile = path.join(directory, `${name}${cacheSuffix}`)
  // The build writes bodies in ASCII (Bundle.ts): read as Latin-1, the bytes become the string as they
  // are, without the UTF-8 decoder's pass over a megabyte and a half (5 ms of a quick command).
  const source = fs.readFileSync(bodyFile, "latin1")
  const cached = enabled && source.length >= MIN_CACHED_LENGTH
  const cachedData = cached ? readCache(cacheFile) : undefined
  const script = withDefaultFlags(() =>
    new vm.Script(source, { filename: bodyFile, ...(cachedData === undefined ? {} : { cachedData }) })
  )
  const body = script.runInThisContext() as Body
  // Worker threads leave writing the cache to the main thread. (node:worker_threads is loaded only to
  // ask: 4 ms of every start that finds its caches.)
  if (
    cached && (cachedData === undefined || script.cachedDataRejected === true) &&
    process.getBuiltinModule("node:worker_threads").isMainThread
  ) {
    // What running the body compiles is taken at exit, or now for a long-lived process (writeCaches).
    return (...args) => {
      const exports = body(...args)
      if (uncached.size === 0) process.once("exit", writeCaches)
      uncached.set(cacheFile, { script, loaded: withDefaultFlags(() => script.createCachedData()) })
      return exports
    }
  }
  return body
}

/**
 * The exports of chunk `name`, which lies beside the facade at `facadeUrl`; its body runs the first
 * time it is asked for. `linked` holds the modules its facade imported (packages, chunks that stay
 * modules), by the specifier bodies name them with; any other chunk a body imports is a body that
 * links itself, run here.
 */
export const runChunk = (facadeUrl: string, name: string, linked: Readonly<Record<string, unknown>>): Exports => {
  for (const [specifier, module] of Object.entries(linked)) modules.set(specifier, module)
  const done = ran.get(name)
  if (done !== undefined) return done
  const body = compile(path.dirname(fileURLToPath(facadeUrl)), name)
  const link = (specifier: string): unknown =>
    modules.has(specifier)
      ? modules.get(specifier)
      : runChunk(new URL(specifier, facadeUrl).href, path.basename(specifier, ".js"), {})
  // Every chunk lies beside this module: an import() here resolves as it would in the chunk.
  const exports = body(link, createRequire(facadeUrl), { url: facadeUrl }, (specifier) => import(specifier))
  ran.set(name, exports)
  return exports
}
