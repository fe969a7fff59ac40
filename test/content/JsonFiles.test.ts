/** State files read back from disk are decoded with Schema: bad content is one line naming the file. */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { loadCheckpoint } from "../../src/compute/lora/train/CheckpointFile.js"
import { readManifest } from "../../src/content/LocalModels.js"
import { loadOrCreateKeyFile } from "../../src/content/NodeKey.js"
import { openPartial } from "../../src/content/PartialFile.js"
import { tempDir } from "../support/TempDir.js"

describe("JSON files on disk", () => {
  it("a node key of the wrong shape is refused with the file named, not half-read", async () => {
    const file = path.join(tempDir("json-"), "node.key")
    fs.writeFileSync(file, JSON.stringify({ type: "ed25519", seed: "zz" }))
    const loaded = await Effect.runPromise(Effect.either(loadOrCreateKeyFile(file)))
    expect(Either.isLeft(loaded) && loaded.left.message).toBe(
      `node key ${file}: not an edge-net ed25519 key file (seed: expected 64 lowercase hex digits)`
    )
    fs.writeFileSync(file, "{not json")
    const garbled = await Effect.runPromise(Effect.either(loadOrCreateKeyFile(file)))
    expect(Either.isLeft(garbled) && garbled.left.message).toMatch(
      new RegExp(`^node key ${file}: not an edge-net ed25519 key file \\(.*JSON`)
    )
  })

  it("a checkpoint state with a missing field throws one line naming checkpoint.json", () => {
    const dir = tempDir("json-")
    fs.writeFileSync(path.join(dir, "checkpoint.json"), JSON.stringify({ fingerprint: "f", step: 3, rank: 4 }))
    expect(() => loadCheckpoint(dir, "f")).toThrow(new RegExp(`^${path.join(dir, "checkpoint.json")}: .*alpha`))
  })

  it("a cached manifest that is not JSON is a one-line error naming it", async () => {
    const root = tempDir("json-")
    fs.mkdirSync(path.join(root, "manifests", "tiny"), { recursive: true })
    const file = path.join(root, "manifests", "tiny", "1.0.0.json")
    fs.writeFileSync(file, "{")
    const read = await Effect.runPromise(Effect.either(readManifest(root, "tiny")))
    expect(Either.isLeft(read) && read.left.message.split("\n")).toHaveLength(1)
    expect(Either.isLeft(read) && read.left.message.startsWith(`${file}: `)).toBe(true)
  })

  it("a download state of another shape is ignored: the download starts over", async () => {
    const dir = tempDir("json-")
    const partFile = path.join(dir, "x.part")
    const stateFile = path.join(dir, "x.state.json")
    const target = { sha256: "a".repeat(64), size: 100 }
    fs.writeFileSync(partFile, Buffer.alloc(100))
    fs.writeFileSync(stateFile, JSON.stringify({ format: 1, sha256: target.sha256, size: 100, done: [[0, "50"]] }))
    const { coverage, handle } = await openPartial(target, partFile, stateFile)
    await handle.close()
    expect(coverage.bytes).toBe(0)
    fs.writeFileSync(stateFile, JSON.stringify({ format: 1, sha256: target.sha256, size: 100, done: [[0, 50]] }))
    const resumed = await openPartial(target, partFile, stateFile)
    await resumed.handle.close()
    expect(resumed.coverage.bytes).toBe(50)
  })
})
