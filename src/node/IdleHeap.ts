/**
 * V8 in a node while it starts and idles: the young generation held at its initial size, the collector
 * told to favour memory, and no optimizing compiler; all back to V8's defaults while the node is at work,
 * and held again once it idles.
 */

/**
 * Node's v8 module, loaded when a flag is first set: this module is on every CLI command's path
 * (CodeCache.ts), and loading node:v8 there cost 3 ms of each start that holds nothing. (performance,
 * below, is Node's global, loaded as lazily.)
 */
const setFlags = (flags: string) => process.getBuiltinModule("node:v8").setFlagsFromString(flags)

/** V8's default: each growth doubles the young generation, up to its maximum (16 MB a semi-space). */
const DEFAULT_GROWTH_FACTOR = 2

/**
 * The share of one core the process (all its threads) uses from which the node is at work. It idles
 * at about 5%. Measured on the main thread's event loop instead, a node serving one-text embeddings to
 * 8 clients stayed held (its model runs on a thread of its own), and lost a fifth of its throughput
 * (`npm run bench -- serve`: 706–736 against 838–900 texts/s with the heap released).
 */
const BUSY_CORE_SHARE = 0.25

/** The V8 and Node options the process started with. */
const givenFlags = [...process.execArgv, ...(process.env["NODE_OPTIONS"] ?? "").split(/\s+/)].join(" ")

// Mirrors the flags, which are the process's (V8 flags have no getter): set only by the functions below.
let held = false

/**
 * `--optimize-for-size` implies `--max-semi-space-size=1`, which `--no-optimize-for-size` leaves set:
 * released, the flag gets back the value the process started with (V8's 0, "its own", unless
 * NODE_OPTIONS or the command line gave one). The heap read it at start and ignores it after; but V8
 * keys code caches by every flag's value (withDefaultFlags).
 */
const startMaxSemiSpace = /--max[-_]semi[-_]space[-_]size[= ](\d+)/.exec(givenFlags)?.[1] ?? "0"

/**
 * TurboFan compiles hot functions on V8's worker threads, and each compile job's memory, freed when it
 * is done, stays with the allocator's arena of the thread that ran it. A node's start-up made it
 * compile its hot start-up code, which an idle node never runs again: 4 to 6 MB resident in those
 * arenas, and 1 MB more of Node's binary paged in (the compiler's own code). Held, start-up and idling
 * run on V8's interpreter and baseline compiler; at work, TurboFan optimizes what is hot from then
 * on. A process started with its own choice (`--no-turbofan`, `--jitless`, ...) keeps it.
 */
const optimizerFlags = /--(no-)?(turbofan|opt|jitless|max-opt)\b/.test(givenFlags)
  ? { hold: "", release: "" }
  : { hold: " --no-turbofan", release: " --turbofan" }

const hold = () => setFlags(`--semi-space-growth-factor=1 --optimize-for-size${optimizerFlags.hold}`)
const release = () =>
  setFlags(
    `--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR} --no-optimize-for-size --max-semi-space-size=${startMaxSemiSpace}${optimizerFlags.release}`
  )

/**
 * Start-up loads the code, and builds the services, that live as long as the process: nearly all it
 * allocates survives, and survival is what makes V8 grow the young generation. A node grew it to its
 * maximum that way, 32 MB resident that an idle node never used again; and since V8 counts survivors
 * without end, an idle node's few (polls, timers) grow it again over minutes. Held, it stays at 1 MB
 * a semi-space. What start-up promotes instead, garbage included, stayed in an old generation of
 * 43 MB for 28 MB live; with `--optimize-for-size`, V8 collects and compacts it as it goes (31 MB).
 * V8 reads both flags as it works; where a version would not, this changes nothing. (Node's
 * `--max-semi-space-size` would bound the young generation for good; a process cannot set it itself.)
 */
export const holdIdleHeap = (): void => {
  // An operator's way out: V8's defaults from the start, for as long as the node runs.
  if (process.env["EDGE_NET_IDLE_HEAP"] === "off") return
  held = true
  hold()
}

/** Gives V8 its defaults back (a no-op if nothing was held). */
export const releaseIdleHeap = (): void => {
  held = false
  release()
}

/**
 * Heavy work for a caller begins (a model run of the node's API): a held heap is released now, not at
 * the next second's sample of the process's load. A burst of requests shorter than that second was
 * served entirely on a 1 MB young generation with no optimizing compiler: eight clients sending 256
 * one-text embeddings got 0.61x to 0.75x of the library in process (`npm run bench -- serve`). The
 * sampler holds it again once the process idles (heapFollowsLoad).
 */
export const releaseForWork = (): void => {
  if (held) releaseIdleHeap()
}

/**
 * Runs `work` under V8's default flags. V8 keys a code cache by all its flags: a chunk compiled, or
 * its cache taken, while the heap is held would refuse the caches the CLIs write, and write one that
 * they refuse (src/cli/CodeCache.ts compiles and takes caches through this).
 */
export const withDefaultFlags = <A>(work: () => A): A => {
  if (!held) return work()
  release()
  try {
    return work()
  } finally {
    hold()
  }
}

/**
 * A thread, as it starts, applies Node's V8 options anew, which puts both flags back to V8's
 * defaults: called when each thread is online, this holds them again if they were held.
 */
export const keepIdleHeapHeld = (): void => {
  if (held) hold()
}

/** The share of one core under which a process that was at work counts as idle again, on average. */
const IDLE_CORE_SHARE = 0.1

/** How long a process that was at work must idle before the heap is held again. */
export const IDLE_AGAIN_SECONDS = 30

/**
 * The last `seconds` of a released process's load, one share of a core a second: idle again once
 * their average is under IDLE_CORE_SHARE and none of them reached BUSY_CORE_SHARE. An idle node's
 * housekeeping (its journal writer stopping, a compaction) takes 12% of a core for a second now and
 * then; counted as seconds in a row under a tenth, one of those put the hold off by another 30 s
 * (a node that had published its first-start models was held 43 s after it went idle, not 30 s).
 */
export class LoadWindow {
  private readonly shares: Array<number> = []
  constructor(private readonly seconds: number) {}

  /** Adds a second's share; true once the window is whole and idle (it starts again empty). */
  idleAfter(share: number): boolean {
    this.shares.push(share)
    if (this.shares.length > this.seconds) this.shares.shift()
    if (this.shares.length < this.seconds) return false
    let sum = 0
    for (const each of this.shares) {
      if (each >= BUSY_CORE_SHARE) return false
      sum += each
    }
    if (sum / this.seconds >= IDLE_CORE_SHARE) return false
    this.shares.length = 0
    return true
  }
}

/**
 * Releases the heap once the process uses a quarter of a core or more: serving requests, running
 * models or training on its threads, catching up with a feed, publishing models. A busy process needs
 * V8's sizes, where short-lived garbage dies young instead of being promoted, and its collector tuned
 * for speed (a node serving at 1 MB a semi-space pays for it in collections; the flags are the whole
 * process's, its model threads' too). An idle node (2 to 5%) stays small.
 *
 * Holds it again once the process has idled for `idleAgainSeconds` (LoadWindow), and V8's memory
 * reducer then shrinks the young generation the work grew: after two optimizer jobs, a node's heap
 * pages were back at 37 MB 20 s later, where they had stayed at 42 MB. (A full collection at that
 * moment, `gc()` of any flavour, shrinks nothing: the young generation stayed at 32 MB.) Samples once
 * a second (nothing if nothing was held at start); returns what stops the sampling. (No Effect here:
 * the CLI's entry imports this module before the framework loads.)
 */
export const heapFollowsLoad = (idleAgainSeconds = IDLE_AGAIN_SECONDS): () => void => {
  if (!held) return () => undefined
  let since = { cpu: process.cpuUsage(), at: performance.now() }
  const window = new LoadWindow(idleAgainSeconds)
  const timer = setInterval(() => {
    const now = { cpu: process.cpuUsage(), at: performance.now() }
    const used = process.cpuUsage(since.cpu)
    const share = (used.user + used.system) / 1000 / (now.at - since.at)
    since = now
    if (held) {
      if (share >= BUSY_CORE_SHARE) releaseIdleHeap()
      return
    }
    if (!window.idleAfter(share)) return
    held = true
    hold()
  }, 1000)
  timer.unref()
  return () => clearInterval(timer)
}

/** Whether `argv` (as in process.argv) starts a node: `edge-net [options] node start ...`. */
export const startsNode = (argv: ReadonlyArray<string>): boolean => {
  const at = argv.indexOf("node", 2)
  return at >= 2 && argv[at + 1] === "start"
}
