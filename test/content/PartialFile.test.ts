import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { lockDownload } from "../../src/content/PartialFile.js"
import { tempDir } from "../support/TempDir.js"

const SHA = "ab".repeat(32)

describe("download locks", () => {
  it("lets one download of a blob run at a time, in this process or another, and takes over from the dead", async () => {
    const dir = tempDir("partial-")
    const first = lockDownload(dir, SHA)
    expect(first.release).toBeDefined()
    expect(lockDownload(dir, SHA)).toEqual({ ownerPid: process.pid })
    first.release!()

    const other = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"])
    const exited = new Promise((resolve) => other.once("exit", resolve))
    fs.writeFileSync(path.join(dir, `${SHA}.lock`), String(other.pid))
    expect(lockDownload(dir, SHA)).toEqual({ ownerPid: other.pid })
    other.kill("SIGKILL")
    await exited
    const takenOver = lockDownload(dir, SHA)
    expect(takenOver.release).toBeDefined()
    expect(fs.readFileSync(path.join(dir, `${SHA}.lock`), "utf8")).toBe(String(process.pid))
    takenOver.release!()
    expect(fs.existsSync(path.join(dir, `${SHA}.lock`))).toBe(false)
  })
})
