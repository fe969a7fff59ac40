/**
 * The size of V8's young generation while a long-running process starts: held at its initial size
 * until the process serves, then free to grow as V8 sees fit.
 */
import * as v8 from "node:v8"

/** V8's default: each growth doubles the young generation, up to its maximum (16 MB a semi-space). */
const DEFAULT_GROWTH_FACTOR = 2

// Mirrors the flag, which is the process's (V8 flags have no getter): set only by the functions below.
let held = false

const growthFactor = (factor: number) => v8.setFlagsFromString(`--semi-space-growth-factor=${factor}`)

/**
 * Start-up loads the code, and builds the services, that live as long as the process: nearly all it
 * allocates survives, and survival is what makes V8 grow the young generation. A node grew it to its
 * maximum that way, 32 MB resident that an idle node never used again. Held, it stays at 1 MB a
 * semi-space during start-up; released, it grows again when requests need it (their garbage dies
 * young, as before). V8 reads the factor at each growth; where a version would not, this changes
 * nothing. (Node's `--max-semi-space-size` would bound it for good, and a process cannot set it for
 * itself once started.)
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

/** Whether `argv` (as in process.argv) starts a node: `edge-net [options] node start ...`. */
export const startsNode = (argv: ReadonlyArray<string>): boolean => {
  const at = argv.indexOf("node", 2)
  return at >= 2 && argv[at + 1] === "start"
}
