/**
 * The heap held small while a node starts and idles (src/node/IdleHeap.ts): its young generation does not grow while
 * held, not even once a thread has started, and grows again once released; nothing is optimized while held; code
 * caches stay shareable.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile, execFileSync } from "node:child_process"
import { promisify } from "node:util"
import { LoadWindow, startsNode } from "../../src/node/IdleHeap.js"

/** The new space's size (MB) in a fresh process: when held, then after survivors while held, after a thread started, once released. */
const newSpaceSizes = (): ReadonlyArray<number> => {
  const program = `
    import * as v8 from "node:v8"
    import { keepIdleHeapHeld, holdIdleHeap, releaseIdleHeap } from "./src/node/IdleHeap.ts"
    import { Worker } from "node:worker_threads"
    const kept = []
    const survivors = () => { for (let i = 0; i < 300_000; i++) kept.push({ i, text: "survivor " + i }) }
    const newSpace = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space").space_size / 2 ** 20
    const sizes = []
    holdIdleHeap()
    sizes.push(newSpace())
    survivors()
    sizes.push(newSpace())
    const worker = new Worker("setTimeout(() => {}, 100)", { eval: true })
    await new Promise((resolve) => worker.once("online", () => { keepIdleHeapHeld(); resolve() }))
    survivors()
    sizes.push(newSpace())
    releaseIdleHeap()
    survivors()
    sizes.push(newSpace())
    console.log(JSON.stringify(sizes))
  `
  const output = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "--eval", program], {
    encoding: "utf8"
  })
  return JSON.parse(output) as ReadonlyArray<number>
}

describe("the heap of a node starting and idling", () => {
  it("stays at its initial size while held, after a thread started too, and grows once released", () => {
    // (tsx's loader, a thread of its own, has grown it some before the hold.)
    const [initial, held, afterThread, released] = newSpaceSizes()
    // (V8 may still shrink it.)
    expect(held).toBeLessThanOrEqual(initial!)
    expect(afterThread).toBeLessThanOrEqual(initial!)
    expect(released).toBeGreaterThan(initial!)
  }, 30_000)

  /**
   * The new space's size (MB): held, then after an idle second and a half, then after 2.5 s of work on
   * `where`; and whether it is held again after idling 3.5 s (it is after 2 s).
   */
  const releasedBy = async (where: "the event loop" | "a thread"): Promise<[number, number, number, boolean]> => {
    const program = `
      import * as v8 from "node:v8"
      import { Worker } from "node:worker_threads"
      import { heapFollowsLoad, holdIdleHeap, keepIdleHeapHeld } from "./src/node/IdleHeap.ts"
      const kept = []
      const survivors = () => { for (let i = 0; i < 300_000; i++) kept.push({ i, text: "survivor " + i }) }
      const newSpace = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === "new_space").space_size / 2 ** 20
      const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
      holdIdleHeap()
      const initial = newSpace()
      const stop = heapFollowsLoad(2)
      await sleep(1_500)
      survivors()
      const idle = newSpace()
      if (${JSON.stringify(where)} === "a thread") {
        // A model's thread at work, the event loop idle.
        const worker = new Worker("const until = Date.now() + 2_500; while (Date.now() < until);", { eval: true })
        // As ModuleWorker.ts does: a thread's start puts V8's flags back, and the hold is applied again.
        worker.once("online", keepIdleHeapHeld)
        await new Promise((resolve) => worker.once("exit", resolve))
      } else {
        // The event loop in use for over a second, in short turns.
        const until = Date.now() + 2_500
        while (Date.now() < until) { const turn = Date.now() + 20; while (Date.now() < turn); await sleep(1) }
      }
      survivors()
      const busy = newSpace()
      await sleep(3_500)
      // Held again: a function called hot is not optimized (as while held at start).
      const status = new Function("f", "return %GetOptimizationStatus(f)")
      const hot = (x) => { let sum = 0; for (let i = 0; i < 100; i++) sum += i * x; return sum }
      for (let i = 0; i < 200_000; i++) hot(i)
      await sleep(100)
      for (let i = 0; i < 1_000; i++) hot(i)
      stop()
      console.log(JSON.stringify([initial, idle, busy, (status(hot) & 16) === 0]))
    `
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--allow-natives-syntax", "--import", "tsx", "--input-type=module", "--eval", program],
      { encoding: "utf8" }
    )
    return JSON.parse(stdout) as [number, number, number, boolean]
  }

  it(
    "is released once the process is busy, on its event loop or on a thread, and only then; held again once idle",
    async () => {
      // Two processes at once: each measures its own load, and most of their time is spent waiting.
      const places = ["the event loop", "a thread"] as const
      const results = await Promise.all(places.map(releasedBy))
      for (const [index, where] of places.entries()) {
        const [initial, idle, busy, heldAgain] = results[index]!
        expect(idle, where).toBeLessThanOrEqual(initial)
        expect(busy, where).toBeGreaterThan(initial)
        expect(heldAgain, where).toBe(true)
      }
    },
    60_000
  )

  it("compiles under V8's default flags, so a code cache written by a CLI serves a node while held", () => {
    const program = `
      import * as vm from "node:vm"
      import { holdIdleHeap, withDefaultFlags } from "./src/node/IdleHeap.ts"
      const source = "(function () { return [1, 2, 3].map((x) => x * 2) })"
      // Each compile its own file name: V8 would otherwise answer from the script it compiled before.
      const compile = (name, cachedData) => new vm.Script(source, { filename: name, cachedData })
      const cachedData = compile("cli.js").createCachedData()
      holdIdleHeap()
      const held = compile("held.js", cachedData).cachedDataRejected
      const compiled = withDefaultFlags(() => compile("node.js", cachedData))
      const taken = withDefaultFlags(() => compiled.createCachedData())
      const reread = withDefaultFlags(() => compile("again.js", taken)).cachedDataRejected
      console.log(JSON.stringify([held, compiled.cachedDataRejected, reread]))
    `
    const output = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "--eval", program], {
      encoding: "utf8"
    })
    // V8 refuses a cache made under other flags; through withDefaultFlags the CLI's cache is taken, and
    // a cache taken while held is one a CLI takes.
    expect(JSON.parse(output)).toEqual([true, false, false])
  }, 30_000)

  it(
    "optimizes no function while held, as V8 does again once released (by work too), unless the process chose for itself",
    () => {
      /** Whether a hot function got optimized: held, then once released (under the process's own `flags`). */
      const optimized = (flags: ReadonlyArray<string>): ReadonlyArray<boolean> => {
        const program = `
        import { holdIdleHeap, releaseForWork, releaseIdleHeap } from "./src/node/IdleHeap.ts"
        const status = new Function("f", "return %GetOptimizationStatus(f)")
        // A function of its own each time: closures of one literal share the code V8 optimized for it.
        let made = 0
        const make = () => new Function("x", \`/* \${made++} */ let sum = 0; for (let i = 0; i < 100; i++) sum += i * x; return sum\`)
        const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
        // Called hot, and again once V8's compile thread had time to finish.
        const optimizedWhenHot = async (f) => {
          for (let i = 0; i < 200_000; i++) f(i)
          await sleep(100)
          for (let i = 0; i < 1_000; i++) f(i)
          return (status(f) & 16) !== 0
        }
        holdIdleHeap()
        const held = await optimizedWhenHot(make())
        releaseIdleHeap()
        const released = await optimizedWhenHot(make())
        // Work for a caller releases a held heap at once; it leaves a heap nobody held alone.
        holdIdleHeap()
        releaseForWork()
        console.log(JSON.stringify([held, released, await optimizedWhenHot(make())]))
      `
        const output = execFileSync(
          process.execPath,
          ["--allow-natives-syntax", ...flags, "--import", "tsx", "--input-type=module", "--eval", program],
          { encoding: "utf8" }
        )
        return JSON.parse(output) as ReadonlyArray<boolean>
      }
      expect(optimized([])).toEqual([false, true, true])
      // A process told never to optimize stays so once released.
      expect(optimized(["--no-turbofan"])).toEqual([false, false, false])
    },
    30_000
  )

  it("counts a process idle again by its average load over the window, with no busy second in it", () => {
    const idleAfter = (shares: ReadonlyArray<number>, seconds = 5) => {
      const window = new LoadWindow(seconds)
      return shares.map((share) => window.idleAfter(share))
    }
    // Idle once the window is whole, and again only after a whole new window.
    expect(idleAfter([0.02, 0.03, 0.02, 0.02, 0.03, 0.02, 0.02, 0.02, 0.02, 0.02])).toEqual([
      false,
      false,
      false,
      false,
      true,
      false,
      false,
      false,
      false,
      true
    ])
    // A second of housekeeping over a tenth of a core does not start the count again.
    expect(idleAfter([0.02, 0.12, 0.03, 0.02, 0.02]).at(-1)).toBe(true)
    // A busy second does, until it has left the window; so does an average of a tenth or more.
    expect(idleAfter([0.3, 0.02, 0.02, 0.02, 0.02, 0.02])).toEqual([false, false, false, false, false, true])
    expect(idleAfter([0.2, 0.2, 0.05, 0.05, 0.05]).at(-1)).toBe(false)
  })

  it("is held for `node start` only", () => {
    expect(startsNode(["node", "edge-net.js", "node", "start", "--port", "8080"])).toBe(true)
    expect(startsNode(["node", "edge-net.js", "--log-level", "info", "node", "start"])).toBe(true)
    expect(startsNode(["node", "edge-net.js", "node", "info"])).toBe(false)
    expect(startsNode(["node", "edge-net.js", "ledger", "balance", "node"])).toBe(false)
  })
})
