/**
 * A vitest reporter that ends the run with one plain line, `N passed, N failed` (`, N skipped`),
 * which CI systems that do not know vitest's own summary can read.
 */
import type { Reporter, TestModule } from "vitest/node"

export default class SummaryLine implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>) {
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") failed++
        else skipped++
      }
    }
    const line = `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`
    // After vitest's own summary, so it is the run's last line (stdout is synchronous for files and pipes).
    process.once("exit", () => process.stdout.write(`\n${line}\n`))
  }
}
