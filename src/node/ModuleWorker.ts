/**
 * A worker thread running a module next to its caller. From dist, the thread loads the compiled .js.
 * From sources (tests, tsx, benches) it runs the .ts module bundled by esbuild (which tsx is built on)
 * into one file: the thread then starts in a fraction of the time a tsx loader would take, since it
 * neither loads tsx nor the whole `effect` package through it.
 */
import type { ChildProcess } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Worker, type WorkerOptions } from "node:worker_threads"
import { keepIdleHeapHeld } from "./IdleHeap.js"

interface Esbuild {
  readonly buildSync: (options: Record<string, unknown>) => {
    readonly outputFiles: ReadonlyArray<{ readonly text: string }>
  }
}

/** The directory of the package the sources belong to: the nearest one above them with a package.json. */
const packageRoot = (from: string): string => {
  let dir = path.dirname(from)
  while (!fs.existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir)
    if (parent === dir) throw new Error(`no package.json above ${from}`)
    dir = parent
  }
  return dir
}

// One bundle per module and process; the file is named after its content, so processes share it.
const bundles = new Map<string, URL>()

/**
 * Bundles `entry` with the project's sources and `effect` (tree-shaken: loading all of it is most of a
 * thread's start) into `node_modules/.cache/edge-net-workers`, where the other packages, kept external,
 * resolve as they do from the sources.
 */
const bundled = (entry: string): URL => {
  const known = bundles.get(entry)
  if (known !== undefined) return known
  const root = packageRoot(entry)
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as {
    readonly dependencies?: Record<string, string>
    readonly devDependencies?: Record<string, string>
  }
  const external = Object.keys({ ...manifest.dependencies, ...manifest.devDependencies })
    .filter((name) => name !== "effect")
    .flatMap((name) => [name, `${name}/*`])
  const esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
  const { outputFiles } = esbuild.buildSync({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: "node",
    format: "esm",
    target: "node20",
    external,
    logLevel: "silent"
  })
  const text = outputFiles[0]!.text
  const digest = crypto.createHash("sha256").update(text).digest("hex").slice(0, 16)
  const dir = path.join(root, "node_modules", ".cache", "edge-net-workers")
  const file = path.join(dir, `${path.basename(entry, ".ts")}-${digest}.mjs`)
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true })
    // Another process may write the same file at once: each renames its own complete copy into place.
    const staging = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`
    fs.writeFileSync(staging, text)
    fs.renameSync(staging, file)
  }
  const url = pathToFileURL(file)
  bundles.set(entry, url)
  return url
}

/** The module `relative` to the caller: from sources its bundle, from dist the compiled .js beside it. */
const moduleUrl = (callerUrl: string, relative: string): URL =>
  callerUrl.endsWith(".ts")
    ? bundled(fileURLToPath(new URL(`${relative}.ts`, callerUrl)))
    : new URL(`${relative}.js`, callerUrl)

/**
 * A child process running a module next to its caller, as `moduleWorker` runs a thread, with an IPC
 * channel that carries typed arrays (`serialization: "advanced"`). node:child_process is loaded here,
 * when a child starts, not with every module that imports this one.
 */
export const moduleProcess = (callerUrl: string, relative: string): ChildProcess =>
  process.getBuiltinModule("node:child_process").fork(fileURLToPath(moduleUrl(callerUrl, relative)), [], {
    serialization: "advanced",
    stdio: ["ignore", "inherit", "inherit", "ipc"]
  })

/** `relative` is the module's path from the caller without extension, e.g. "./SqliteWriterThread". */
export const moduleWorker = (callerUrl: string, relative: string, options: WorkerOptions = {}): Worker => {
  const worker = new Worker(moduleUrl(callerUrl, relative), options)
  worker.once("online", keepIdleHeapHeld)
  return worker
}
