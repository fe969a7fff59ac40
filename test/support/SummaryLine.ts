/**
 * A vitest reporter that ends the run with one plain line, `N passed, N failed` (`, N skipped`,
 * `, N unhandled errors`), which CI systems that do not know vitest's own summary can read.
 */
import type { Reporter, TestModule } from "vitest/node"

/** What vitest hands the reporter for an error raised outside any test. */
type UnhandledErrors = Parameters<NonNullable<Reporter["onTestRunEnd"]>>[1]

/** The counts of the line, from a run's test files and the errors raised outside any test. */
export const summaryLine = (
  testModules: ReadonlyArray<TestModule>,
  unhandledErrors: UnhandledErrors
): string => {
  let passed = 0
  let failed = 0
  let skipped = 0
  for (const module of testModules) {
    // A file whose hook or loading failed: its tests never ran (vitest marks them skipped), and none
    // of them passed, so they count as failed; a file that failed before it had tests counts as one.
    const fileFailed = module.state() === "failed"
    let tests = 0
    for (const test of module.children.allTests()) {
      tests++
      const state = test.result().state
      if (state === "passed") passed++
      else if (state === "failed" || fileFailed) failed++
      else skipped++
    }
    if (fileFailed && tests === 0) failed++
  }
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}${
    unhandledErrors.length > 0 ? `, ${unhandledErrors.length} unhandled errors` : ""
  }`
}

export default class SummaryLine implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: UnhandledErrors) {
    const line = summaryLine(testModules, unhandledErrors)
    // After vitest's own summary, so it is the run's last line (stdout is synchronous for files and pipes).
    process.once("exit", () => process.stdout.write(`\n${line}\n`))
  }
}
