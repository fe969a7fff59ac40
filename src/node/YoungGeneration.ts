/**
 * The size of V8's young generation in a node: held at its initial size while the node starts, and
 * while it idles; free to grow as V8 sees fit once the node is at work.
 */
import { performance } from "node:perf_hooks"
import * as v8 from "node:v8"

/** V8's default: each growth doubles the young generation, up to its maximum (16 MB a semi-space). */
const DEFAULT_GROWTH_FACTOR = 2

/** The share of a second the event loop is in use from which the node is at work (it idles at about 4%). */
const BUSY_UTILIZATION = 0.5

// Mirrors the flag, which is the process's (V8 flags have no getter): set only by the functions below.
let held = false

const growthFactor = (factor: number) => v8.setFlagsFromString(`--semi-space-growth-factor=${factor}`)

/**
 * Start-up loads the code, and builds the services, that live as long as the process: nearly all it
 * allocates survives, and survival is what makes V8 grow the young generation. A node grew it to its
 * maximum that way, 32 MB resident that an idle node never used again; and since V8 counts survivors
 * without end, an idle node's few (polls, timers) grow it again over minutes. Held, it stays at 1 MB
 * a semi-space. V8 reads the factor at each growth; where a version would not, this changes nothing.
 * (Node's `--max-semi-space-size` would bound it for good, and a process cannot set it for itself.)
 */
export const holdYoungGeneration = (): void => {
  held = true
  growthFactor(1)
}

/** Lets the young generation grow again as it would have (a no-op if it was not held). */
export const releaseYoungGeneration = (): void => {
  held = false
  growthFactor(DEFAULT_GROWTH_FACTOR)
}

/**
 * A thread, as it starts, applies Node's V8 options anew, which puts the factor back to V8's
 * default: called when each thread is online, this holds it again if it was held.
 */
export const keepYoungGenerationHeld = (): void => {
  if (held) growthFactor(1)
}

/**
 * Releases the young generation once the event loop is in use half of a second or more: serving
 * requests, catching up with a feed, publishing models. Each scavenge of a small young generation
 * is cheap, but a busy process needs V8's sizes, where its short-lived garbage dies young instead of
 * being promoted (a node serving at 1 MB a semi-space pays for it in collections). An idle node
 * (about 4%) keeps its 1 MB. Samples once a second until then (nothing if nothing is held); returns
 * what stops the sampling. (No Effect here: the CLI's entry imports this module before the framework.)
 */
export const releaseYoungGenerationWhenBusy = (): () => void => {
  if (!held) return () => undefined
  let since = performance.eventLoopUtilization()
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization()
    const { utilization } = performance.eventLoopUtilization(now, since)
    since = now
    if (utilization < BUSY_UTILIZATION) return
    clearInterval(timer)
    releaseYoungGeneration()
  }, 1000)
  timer.unref()
  return () => clearInterval(timer)
}

/** Whether `argv` (as in process.argv) starts a node: `edge-net [options] node start ...`. */
export const startsNode = (argv: ReadonlyArray<string>): boolean => {
  const at = argv.indexOf("node", 2)
  return at >= 2 && argv[at + 1] === "start"
}
