/**
 * A worker thread running a module next to its caller. From sources (tests, tsx, benches) the thread
 * loads the .ts module through tsx's loader; from dist, the compiled .js.
 */
import { createRequire } from "node:module"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { Worker, type WorkerOptions } from "node:worker_threads"

const tsxEsmApi = () => {
  const manifest = createRequire(import.meta.url).resolve("tsx/package.json")
  return path.join(path.dirname(manifest), "dist", "esm", "api", "index.mjs")
}

/** `relative` is the module's path from the caller without extension, e.g. "./SqliteWriterThread". */
export const moduleWorker = (callerUrl: string, relative: string, options: WorkerOptions = {}): Worker =>
  callerUrl.endsWith(".ts")
    ? new Worker(
      `import(${JSON.stringify(pathToFileURL(tsxEsmApi()).href)})
           .then((tsx) => { tsx.register(); return import(${
        JSON.stringify(new URL(`${relative}.ts`, callerUrl).href)
      }) })`,
      { ...options, eval: true }
    )
    : new Worker(new URL(`${relative}.js`, callerUrl), options)
