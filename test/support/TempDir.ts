import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const created: Array<string> = []
process.once("exit", () => {
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true })
})

/** A fresh directory under the OS temp dir, removed when the test process exits. */
export const tempDir = (prefix = "edge-net-"): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  created.push(dir)
  return dir
}
