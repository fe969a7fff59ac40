/**
 * Start-up benchmark: what a user waits for and what a node holds in memory before any work.
 *
 * - wall time and peak memory (max RSS) of `edge-net --version` and of `edge-net-models list --local`
 *   on a cache holding the two reference models, against `node -e 0` (Node's own start, the floor any
 *   JavaScript CLI pays), best of 7 runs each, interleaved;
 * - the resident memory of an idle node 3 s after `edge-net node start` answered `/health` (first-start
 *   models off, so nothing is being published), and again past the idle time of any journal writer
 *   thread its start needed (a quiet journal commits on the event loop and starts none), against a bare
 *   `node:http` server answering the same;
 * - the same, past that idle time again after a new node published its first-start models (what
 *   `npm start` does on a new machine).
 *
 * The CLIs run as `npm run build` ships them (src/cli/Bundle.ts, bundled into a cached tree by
 * test/support/CompiledCli.ts). Peak memory is read in the child itself at exit
 * (process.resourceUsage().maxRSS, preloaded with --require), the same way for the baseline.
 */
import { Duration, Effect, Layer } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { BlobStore } from "../src/content/BlobStore.js"
import { DEFAULT_WRITER_IDLE_STOP } from "../src/events/SqliteWriter.js"
import { compileCli, freePort, startCompiledNode } from "../test/support/CompiledCli.js"
import { cacheReferenceModel } from "../test/support/SdkModels.js"
import { tempDir } from "../test/support/TempDir.js"
import { report } from "./Report.js"

const RUNS = 7

interface Start {
  readonly seconds: number
  readonly maxRssMb: number
}

/** Runs `node ...args` to its end; its wall time and peak memory. */
const startOnce = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>>, probe: string): Start => {
  const rssFile = path.join(path.dirname(probe), `rss-${process.hrtime.bigint()}`)
  const started = process.hrtime.bigint()
  const result = spawnSync(process.execPath, ["--require", probe, ...args], {
    env: { ...process.env, ...env, EDGE_NET_BENCH_RSS_FILE: rssFile },
    encoding: "utf8"
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  if (result.status !== 0) throw new Error(`node ${args.join(" ")} failed (${result.status}): ${result.stderr}`)
  const maxRssMb = Number(fs.readFileSync(rssFile, "utf8")) / 1024
  fs.rmSync(rssFile)
  return { seconds, maxRssMb }
}

/** Best wall time and lowest peak memory of `RUNS` runs of each command, the runs interleaved. */
const startFigures = (
  commands: ReadonlyArray<ReadonlyArray<string>>,
  env: Readonly<Record<string, string>>,
  probe: string
): Array<Start> => {
  const best = commands.map(() => ({ seconds: Number.POSITIVE_INFINITY, maxRssMb: Number.POSITIVE_INFINITY }))
  for (let run = 0; run < RUNS; run++) {
    commands.forEach((args, i) => {
      const start = startOnce(args, env, probe)
      best[i] = {
        seconds: Math.min(best[i]!.seconds, start.seconds),
        maxRssMb: Math.min(best[i]!.maxRssMb, start.maxRssMb)
      }
    })
  }
  return best
}

const residentMb = (pid: number): number => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
  if (kb === undefined) throw new Error(`no VmRSS for process ${pid}`)
  return Number(kb) / 1024
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A bare node:http server's resident memory, once it answers and has sat idle as long as the node. */
const bareServerMb = async (): Promise<number> => {
  const port = await freePort()
  const child = spawn(process.execPath, [
    "-e",
    `require("node:http").createServer((_, res) => res.end("ok")).listen(${port}, "127.0.0.1")`
  ], { stdio: "ignore" })
  try {
    const deadline = Date.now() + 10_000
    while (!(await fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error("the bare HTTP server did not come up")
      await settle(50)
    }
    await settle(3_000)
    return residentMb(child.pid!)
  } finally {
    child.kill("SIGKILL")
  }
}

export const run = async () => {
  const tree = compileCli()
  const home = tempDir("edge-net-bench-cli-")
  const probe = path.join(home, "rss-probe.cjs")
  fs.writeFileSync(
    probe,
    `process.once("exit", () => require("node:fs").writeFileSync(process.env.EDGE_NET_BENCH_RSS_FILE, String(process.resourceUsage().maxRSS)))\n`
  )
  // Two reference models in the default cache (~/.edge-net/models) of HOME, as after two pulls.
  await Effect.runPromise(
    Effect.all([cacheReferenceModel("tiny-lm"), cacheReferenceModel("tiny-encoder")]).pipe(
      Effect.provide(Layer.orDie(BlobStore.layer({ root: path.join(home, ".edge-net", "models") })))
    )
  )
  const env = { HOME: home, EDGE_NET_HOME: path.join(home, ".edge-net") }
  const edgeNet = path.join(tree, "src", "cli", "edge-net.js")
  const models = path.join(tree, "src", "cli", "edge-net-models.js")
  const listed = spawnSync(process.execPath, [models, "list", "--local"], {
    env: { ...process.env, ...env },
    encoding: "utf8"
  })
  if (!/tiny-lm/.test(listed.stdout) || !/tiny-encoder/.test(listed.stdout)) {
    throw new Error(`list --local does not show the cached models:\n${listed.stdout}${listed.stderr}`)
  }

  const [bare, version, list] = startFigures(
    [["-e", "0"], [edgeNet, "--version"], [models, "list", "--local"]],
    env,
    probe
  )
  report("edge-net --version: wall", "s", version!.seconds, bare!.seconds, "node -e 0", "<= 0.3 s")
  report("edge-net --version: max RSS", "MB", version!.maxRssMb, bare!.maxRssMb, "node -e 0")
  report("edge-net-models list --local: wall", "s", list!.seconds, bare!.seconds, "node -e 0", "<= 0.3 s")
  report("edge-net-models list --local: max RSS", "MB", list!.maxRssMb, bare!.maxRssMb, "node -e 0")

  const bareMb = await bareServerMb()
  const node = await startCompiledNode(tree, tempDir("edge-net-bench-idle-"))
  try {
    await settle(3_000)
    const justStarted = residentMb(node.process.pid!)
    report("idle node RSS, 3 s after node start", "MB", justStarted, bareMb, "bare node:http server", "<= 100 MB")
    // A node left alone: past the journal writer's idle time, any thread it started has stopped (SqliteWriter.ts).
    const idleMs = Duration.toMillis(DEFAULT_WRITER_IDLE_STOP) + 5_000
    await settle(idleMs - 3_000)
    const idle = residentMb(node.process.pid!)
    report(
      `idle node RSS, ${idleMs / 1000} s after node start`,
      "MB",
      idle,
      bareMb,
      "bare node:http server",
      "<= 100 MB"
    )
  } finally {
    await node.kill("SIGTERM")
  }

  // What `npm start` leaves on a new machine: a node that published the first-start models (quantizing
  // them in its child processes), once idle again.
  const first = await startCompiledNode(tree, tempDir("edge-net-bench-first-"), { EDGE_NET_FIRST_START_MODELS: "on" })
  try {
    const deadline = Date.now() + 180_000
    while (!first.output().includes("first-start models ready")) {
      if (Date.now() > deadline) throw new Error(`the first-start models were never ready:\n${first.output()}`)
      await settle(200)
    }
    const idleMs = Duration.toMillis(DEFAULT_WRITER_IDLE_STOP) + 5_000
    await settle(idleMs)
    report(
      `node RSS after first start, +${idleMs / 1000} s idle`,
      "MB",
      residentMb(first.process.pid!),
      bareMb,
      "bare node:http server",
      "<= 100 MB"
    )
  } finally {
    await first.kill("SIGTERM")
  }
}
