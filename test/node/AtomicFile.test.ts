/**
 * The one atomic-write helper: a reader (or a crash) sees the old content or the new, never part of
 * either; a failed write leaves the target as it was and no temporary file; the node key goes through it.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it, vi } from "vitest"
import { loadOrCreateKeyFile } from "../../src/content/NodeKey.js"
import * as AtomicFile from "../../src/node/AtomicFile.js"
import { tempDir } from "../support/TempDir.js"

// Test files share a worker's loaded modules (isolate: false in vitest.config.ts): this file starts from
// fresh ones, so that NodeKey.js, loaded before in this worker or not, imports the spied helper below.
vi.hoisted(() => vi.resetModules())

// Every caller's write goes through the real helper; the spy only records that it did.
vi.mock("../../src/node/AtomicFile.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("../../src/node/AtomicFile.js")>()
  return { ...original, writeFileAtomicallySync: vi.fn(original.writeFileAtomicallySync) }
})

const OLD = "a".repeat(1024 * 1024)
const NEW = "b".repeat(3 * 1024 * 1024)

describe("AtomicFile", () => {
  it("leaves the old content and no temporary file when the write fails halfway", async () => {
    const dir = tempDir("atomic-")
    const file = path.join(dir, "state.json")
    AtomicFile.writeFileAtomicallySync(file, OLD)
    const failing = AtomicFile.writeFileAtomically(file, async (handle) => {
      await handle.write(NEW.slice(0, NEW.length / 2))
      throw new Error("disk full")
    })
    await expect(failing).rejects.toThrow("disk full")
    expect(fs.readFileSync(file, "utf8")).toBe(OLD)
    expect(fs.readdirSync(dir)).toEqual(["state.json"])

    // The rename itself failing (the target became a directory) leaves no temporary file either.
    const blocked = path.join(dir, "blocked")
    fs.mkdirSync(path.join(blocked, "inside"), { recursive: true })
    expect(() => AtomicFile.writeFileAtomicallySync(blocked, NEW)).toThrow()
    await expect(AtomicFile.writeFileAtomically(blocked, NEW)).rejects.toThrow()
    expect(fs.readdirSync(dir).sort()).toEqual(["blocked", "state.json"])
  })

  it("a reader, and a writer killed at any moment, see the whole old or the whole new content", async () => {
    const dir = tempDir("atomic-")
    const file = path.join(dir, "state.txt")
    AtomicFile.writeFileAtomicallySync(file, OLD)
    // A child rewrites the file in a loop, alternating two contents of different sizes, until killed.
    const child = spawn(process.execPath, [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `import { writeFileAtomicallySync } from ${JSON.stringify(path.resolve("src/node/AtomicFile.ts"))}
       const [file, a, b] = [process.argv[1], "a".repeat(${OLD.length}), "b".repeat(${NEW.length})]
       for (let i = 0; ; i++) writeFileAtomicallySync(file, i % 2 === 0 ? b : a)`,
      file
    ], { stdio: "ignore" })
    const exited = new Promise((resolve) => child.once("exit", resolve))
    const seen = new Set<string>()
    const deadline = Date.now() + 1500
    while (Date.now() < deadline || seen.size < 2) {
      const text = fs.readFileSync(file, "utf8")
      expect(text === OLD || text === NEW).toBe(true)
      seen.add(text[0]!)
      if (Date.now() > deadline + 20_000) break
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    expect(seen).toEqual(new Set(["a", "b"]))
    child.kill("SIGKILL")
    await exited
    const last = fs.readFileSync(file, "utf8")
    expect(last === OLD || last === NEW).toBe(true)
  }, 60_000)

  it("writes the node key through the helper, mode 0600, leaving only the key file", async () => {
    const dir = tempDir("node-key-")
    const file = path.join(dir, "node.key")
    const spy = vi.mocked(AtomicFile.writeFileAtomicallySync)
    spy.mockClear()
    const pair = await Effect.runPromise(loadOrCreateKeyFile(file))
    expect(spy).toHaveBeenCalledWith(file, expect.stringContaining(pair.publicKey), { mode: 0o600 })
    expect(fs.statSync(file).mode & 0o777).toBe(0o600)
    expect(fs.readdirSync(dir)).toEqual(["node.key"])
    // Read back, the same key.
    expect((await Effect.runPromise(loadOrCreateKeyFile(file))).publicKey).toBe(pair.publicKey)
  })
})
