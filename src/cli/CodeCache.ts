/**
 * Runs a bundle chunk's code through V8's code cache. Node 20 keeps no cache for ES modules (Node 22's
 * module.enableCompileCache does), and compiling the CLI's chunks was a third of a quick command's
 * start. The build (CachedChunks.ts) moves a chunk's body into a script beside it, wrapped in a
 * function of the bindings the chunk imports; what remains of the chunk imports them, calls runCached,
 * and exports what the body returned. The first process to run a body writes its cache at exit; later
 * ones read it instead of compiling. Node builtins (and the tiny IdleHeap.ts) only: every facade loads
 * this module first.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as vm from "node:vm"
import { withDefaultFlags } from "../node/IdleHeap.js"

/** `EDGE_NET_CODE_CACHE=off` compiles every chunk afresh and writes no cache (to measure, or to rule it out). */
const enabled = process.env["EDGE_NET_CODE_CACHE"] !== "off"

/**
 * A process that exits within this many seconds (a CLI command) caches every function it compiled; one
 * that lived longer (a node) caches what loading the chunk compiled. A node's whole cache cost a CLI
 * more time to read than compiling would have.
 */
const SHORT_LIVED_SECONDS = 5

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

/**
 * Compiles (or takes from its cache) the body of chunk `name`, which lies beside the facade at
 * `facadeUrl`, and calls it with the chunk's imported bindings; answers the chunk's exports.
 */
export const runCached = (
  facadeUrl: string,
  name: string,
  imported: ReadonlyArray<unknown>
): Record<string, unknown> => {
  const directory = path.dirname(fileURLToPath(facadeUrl))
  const bodyFile = path.join(directory, `${name}.body.js`)
  const cacheFile = path.join(directory, `${name}.v8cache`)
  const cachedData = enabled ? readCache(cacheFile) : undefined
  // The build writes bodies in ASCII (Bundle.ts): read as Latin-1, the bytes become the string as they
  // are, without the UTF-8 decoder's pass over a megabyte and a half (5 ms of a quick command).
  const source = fs.readFileSync(bodyFile, "latin1")
  const script = withDefaultFlags(() =>
    new vm.Script(source, { filename: bodyFile, ...(cachedData === undefined ? {} : { cachedData }) })
  )
  const body = script.runInThisContext() as (...imported: ReadonlyArray<unknown>) => Record<string, unknown>
  const exports = body(...imported)
  // Worker threads leave writing the cache to the main thread. (node:worker_threads is loaded only to
  // ask: 4 ms of every start that finds its caches.)
  if (
    enabled && (cachedData === undefined || script.cachedDataRejected === true) &&
    process.getBuiltinModule("node:worker_threads").isMainThread
  ) {
    if (uncached.size === 0) process.once("exit", writeCaches)
    uncached.set(cacheFile, { script, loaded: withDefaultFlags(() => script.createCachedData()) })
  }
  return exports
}
