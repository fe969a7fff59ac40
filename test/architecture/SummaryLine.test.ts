import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { tempDir } from "../support/TempDir.js"

const ROOT = path.resolve(import.meta.dirname, "..", "..")

describe("the suite's last line (test/support/SummaryLine.ts)", () => {
  it("counts the tests of a file whose hook failed as failed, not skipped", async () => {
    const fixture = tempDir()
    fs.writeFileSync(
      path.join(fixture, "a.test.ts"),
      `import { expect, it } from "vitest"\nit("passes", () => expect(1).toBe(1))\nit.skip("is skipped", () => {})\n`
    )
    fs.writeFileSync(
      path.join(fixture, "b.test.ts"),
      `import { beforeAll, it } from "vitest"\nbeforeAll(() => { throw new Error("the hook fails") })\n` +
        `it("one", () => {})\nit("two", () => {})\n`
    )
    const run = await promisify(execFile)(process.execPath, [
      path.join(ROOT, "node_modules", "vitest", "vitest.mjs"),
      "run",
      "--root",
      fixture,
      "--config",
      "/dev/null",
      "--reporter",
      path.join(ROOT, "test", "support", "SummaryLine.ts")
    ], { cwd: ROOT }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout })
    )
    expect(run.code).toBe(1)
    expect(run.stdout.trim().split("\n").at(-1)).toBe("1 passed, 2 failed, 1 skipped")
  }, 60_000)
})
