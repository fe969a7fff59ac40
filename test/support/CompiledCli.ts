/**
 * The edge-net CLIs and node compiled to JavaScript (bundled, see compileCli) for tests that run them as
 * child processes: tsx's loader would cost seconds per run, and once more in each worker thread.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as net from "node:net"
import * as path from "node:path"
import { promisify } from "node:util"
import { dashboardBuildOptions } from "../../src/http/DashboardBundle.js"

export interface RunningNode {
  readonly url: string
  readonly dataDir: string
  readonly process: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
  readonly kill: (signal: NodeJS.Signals) => Promise<number | null>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

/** Test nodes let the system pick their peer's ports: the HTTP port's neighbours may be taken. */
export const SYSTEM_PICKED_P2P = { EDGE_NET_P2P_LISTEN: "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/tcp/0/ws" }

const exec = promisify(execFile)
const SOURCES = "src"
// Inside the repository, so the compiled files resolve the packages in node_modules like dist/ does.
const CACHE = path.join("node_modules", ".cache", "edge-net-compiled-cli")

const sourceFiles = () =>
  (fs.readdirSync(SOURCES, { recursive: true }) as Array<string>).filter((file) => /\.(ts|css)$/.test(file)).sort()

/** Changes whenever the layout of a tree changes, so a tree of another layout is never reused. */
const BUNDLE_FORMAT = "esbuild-flat-8"

interface Esbuild {
  readonly buildSync: (options: Record<string, unknown>) => unknown
}

/**
 * Bundles the CLI and every worker thread's module as `npm run build` does (src/cli/Bundle.ts; types
 * stripped, `npm run typecheck` checks them) into a directory named after the sources' digest, so an
 * unchanged tree is bundled once.
 */
let compiled: string | undefined

export const compileCli = (): string => (compiled ??= compileTree())

const compileTree = (): string => {
  const files = sourceFiles().map((file) => ({ file, text: fs.readFileSync(path.join(SOURCES, file), "utf8") }))
  const digest = crypto.createHash("sha256").update(`${BUNDLE_FORMAT}\0`)
  for (const { file, text } of files) digest.update(file).update("\0").update(text).update("\0")
  const root = path.resolve(CACHE, digest.digest("hex").slice(0, 16))
  if (fs.existsSync(path.join(root, "package.json"))) {
    // Marks the tree as in use, so that another checkout sharing node_modules leaves it alone.
    const now = new Date()
    fs.utimesSync(root, now, now)
    return root
  }
  // Trees of older sources go, but not one another checkout (sharing node_modules) used in the last
  // hour, nor another test process's staging in progress.
  for (const entry of fs.existsSync(CACHE) ? fs.readdirSync(CACHE) : []) {
    const stale = path.join(CACHE, entry)
    if (stale === root) continue
    const modified = fs.statSync(stale, { throwIfNoEntry: false })?.mtimeMs ?? 0
    if (Date.now() - modified > 60 * 60_000) fs.rmSync(stale, { recursive: true, force: true })
  }
  const staging = `${root}.${process.pid}.tmp`
  // esbuild's plugins (Bundle.ts marks the external packages) need its asynchronous API: in a child.
  execFileSync(process.execPath, [
    "--import",
    "tsx",
    "--input-type=module",
    "--eval",
    `import { bundleCli } from "./src/cli/Bundle.ts"; await bundleCli(${JSON.stringify(SOURCES)}, ${
      JSON.stringify(path.join(staging, SOURCES, "cli"))
    })`
  ], { stdio: "inherit" })
  // The dashboard's browser bundle where a package keeps it: this tree has no src/ui for the node to build.
  const esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
  esbuild.buildSync(dashboardBuildOptions(path.join(SOURCES, "ui"), path.join(staging, "dist", "ui")))
  // Written last: its presence marks a complete tree (node_modules/ ends the package scope, so it is needed anyway).
  fs.writeFileSync(path.join(staging, "package.json"), JSON.stringify({ type: "module" }))
  try {
    fs.renameSync(staging, root)
  } catch (error) {
    // Another test process finished the same tree first: use that one.
    fs.rmSync(staging, { recursive: true, force: true })
    if (!fs.existsSync(path.join(root, "package.json"))) throw error
  }
  return root
}

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** Runs `edge-net <args>` from the compiled tree, outside any data dir of the tests; `env` adds e.g. `HOME` (whose .edge-net/keys sign). */
export const runCompiledCli = (
  root: string,
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>> = {}
): Promise<CliResult> =>
  exec(process.execPath, [path.join(root, SOURCES, "cli", "edge-net.js"), ...args], {
    env: { ...process.env, EDGE_NET_HOME: "/nonexistent/edge-net", ...env }
  }).then(
    ({ stderr, stdout }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      stdout: error.stdout,
      stderr: error.stderr
    })
  )

/** `edge-net node start` from the compiled tree on `port` (a free loopback port if none); `env` adds e.g. `EDGE_NET_GENESIS`. */
export const startCompiledNode = async (
  root: string,
  dataDir: string,
  env: Readonly<Record<string, string>> = {},
  port?: number
): Promise<RunningNode> => {
  port ??= await freePort()
  const child = spawn(process.execPath, [
    // Node's own flags for the node processes, e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile a benchmark's nodes.
    ...(process.env["EDGE_NET_NODE_FLAGS"]?.split(" ").filter((flag) => flag !== "") ?? []),
    path.join(root, SOURCES, "cli", "edge-net.js"),
    "node",
    "start",
    "--data",
    dataDir,
    "--port",
    String(port)
  ], {
    stdio: ["ignore", "pipe", "pipe"],
    // The reference models a new node publishes in the background cost CPU most tests do not need:
    // a test that wants them passes EDGE_NET_FIRST_START_MODELS=on.
    env: { ...process.env, EDGE_NET_HOME: dataDir, EDGE_NET_FIRST_START_MODELS: "off", ...SYSTEM_PICKED_P2P, ...env }
  })
  let output = ""
  child.stdout.on("data", (chunk) => (output += chunk))
  child.stderr.on("data", (chunk) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 30_000
  while (!(await fetch(`${url}/health`).then((response) => response.ok, () => false))) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode}:\n${output}`)
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`node did not come up:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    url,
    dataDir,
    process: child,
    output: () => output,
    exited,
    kill: (signal) => {
      child.kill(signal)
      return exited
    }
  }
}
