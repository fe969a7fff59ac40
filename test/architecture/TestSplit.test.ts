import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { tempDir } from "../support/TempDir.js"
import { processTests } from "../support/TestSplit.js"

const write = (root: string, file: string, text: string) => {
  fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true })
  fs.writeFileSync(path.join(root, file), text)
}

describe("the unit / process split of the suite", () => {
  it("puts a file that starts processes, itself or through a helper it imports, on the process side", () => {
    const root = tempDir()
    write(root, "test/support/Spawner.ts", `import { spawn } from "node:child_process"\nexport const go = spawn\n`)
    write(root, "test/support/Middle.ts", `import { go } from "./Spawner.js"\nimport "./Cycle.js"\nexport { go }\n`)
    write(root, "test/support/Cycle.ts", `import "./Loop.js"\n`)
    write(root, "test/support/Loop.ts", `import "./Cycle.js"\n`)
    write(root, "test/a/Direct.test.ts", `import { execFile } from "node:child_process"\n`)
    write(root, "test/a/b/Indirect.test.ts", `import { go } from "../../support/Middle.js"\n`)
    write(
      root,
      "test/a/Pure.test.ts",
      `import { helper } from "../support/Cycle.js"\nimport { x } from "../../src/Spawns.js"\n`
    )
    write(root, "test/a/Browser.test.ts", `import { chromium } from "playwright-core"\n`)
    write(root, "test/slow/Soak.test.ts", `import { spawn } from "node:child_process"\n`)
    write(root, "src/Spawns.ts", `import { spawn } from "node:child_process"\n`)
    expect(processTests(root)).toEqual(["test/a/Browser.test.ts", "test/a/Direct.test.ts", "test/a/b/Indirect.test.ts"])
  })

  it("sorts this repository's node and CLI tests as process-level and its in-process ones as unit tests", () => {
    const split = processTests(path.resolve(import.meta.dirname, "..", ".."))
    expect(split).toEqual(expect.arrayContaining([
      "test/node/NodeProcess.test.ts",
      "test/actors/adapters/AdapterPoolRpc.test.ts",
      "test/browser/Sdk.test.ts"
    ]))
    expect(split).not.toContain("test/events/Envelope.test.ts")
    expect(split).not.toContain("test/architecture/TestSplit.test.ts")
  })
})
