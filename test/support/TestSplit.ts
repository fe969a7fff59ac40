/**
 * The split of the suite for quick feedback (`npm run test:unit`, `npm run test:watch`): test files that
 * start processes (a node, a compiled CLI, a static server, Chromium, any child process), themselves
 * or through the test helpers they import, are the process-level tests (`npm run test:process`); the
 * rest run in-process and take seconds. Files are sorted by what they import, so a new test lands on
 * the right side without a list to keep.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** Imports of what starts a process: Node's child processes, Playwright's browsers (static or dynamic). */
const PROCESS_MARKERS = [
  /^(?:import|export|\})[^\n]*"(?:node:child_process|playwright-core)"/m,
  /import\("(?:node:child_process|playwright-core)"\)/
]

/** The test tree's own modules a file imports (an import statement's last line names the module). */
const RELATIVE_IMPORT = /^(?:import|export|\})[^\n]*"(\.\.?\/[^"]+)\.js"/gm

/**
 * Whether `file` (a .ts file of the test tree) starts processes, itself or through the test tree's
 * modules it imports (the sources under src/ are the product: a test that uses one that spawns is
 * caught by the marker of the helper it calls, or not at all, and then it is quick).
 */
export const startsProcesses = (file: string, testRoot: string, seen = new Map<string, boolean>()): boolean => {
  const known = seen.get(file)
  if (known !== undefined) return known
  seen.set(file, false) // an import cycle adds nothing
  const source = fs.readFileSync(file, "utf8")
  const imported = Array.from(
    source.matchAll(RELATIVE_IMPORT),
    (match) => path.resolve(path.dirname(file), `${match[1]}.ts`)
  )
  const starts = PROCESS_MARKERS.some((marker) => marker.test(source)) ||
    imported.some((module) =>
      module.startsWith(testRoot + path.sep) && fs.existsSync(module) && startsProcesses(module, testRoot, seen)
    )
  seen.set(file, starts)
  return starts
}

const testFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) return entry.name === "slow" || entry.name === "fixtures" ? [] : testFiles(file)
    return entry.name.endsWith(".test.ts") ? [file] : []
  })

/** The process-level test files under `root`/test (test/slow aside), relative to `root`. */
export const processTests = (root: string): Array<string> => {
  const testRoot = path.join(root, "test")
  const seen = new Map<string, boolean>()
  return testFiles(testRoot)
    .filter((file) => startsProcesses(file, testRoot, seen))
    .map((file) => path.relative(root, file).split(path.sep).join("/"))
    .sort()
}
