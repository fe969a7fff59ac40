import * as Command from "@effect/cli/Command"
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { asksVersionOnly } from "../../src/cli/Entry.js"
import { firstWordAt, type LazyTree, loadTree, nestedTree } from "../../src/cli/LazyCommands.js"
import { VERSION } from "../../src/layers/Version.js"

/** A tree whose loads are recorded, so a test sees which subcommands' modules would have loaded. */
const recordingTree = (name: string, words: ReadonlyArray<string>, loaded: Array<string>): LazyTree => ({
  name,
  description: name,
  subcommands: words.map((word) => ({
    name: word,
    load: async () => {
      loaded.push(word)
      return Command.make(word)
    }
  }))
})

describe("the CLIs' lazy command trees", () => {
  it("the version the CLIs print is package.json's", () => {
    const pkg = JSON.parse(fs.readFileSync("package.json", "utf8")) as { version: string }
    expect(VERSION).toBe(pkg.version)
    expect(asksVersionOnly(["node", "edge-net", "--version"])).toBe(true)
    expect(asksVersionOnly(["node", "edge-net", "pull", "m", "--version"])).toBe(false)
    expect(asksVersionOnly(["node", "edge-net"])).toBe(false)
  })

  it("the first word that is not an option, nor the value of a built-in option, names the subcommand", () => {
    expect(firstWordAt(["--log-level", "debug", "ledger", "balance"])).toBe(2)
    expect(firstWordAt(["--json", "ledger"])).toBe(1)
    expect(firstWordAt(["--help"])).toBe(-1)
  })

  it("loads only the subcommand named, nested trees by their own next word, and all of them when none is named", async () => {
    const loaded: Array<string> = []
    const models = recordingTree("models", ["list", "pull"], loaded)
    const top = recordingTree("edge-net", ["node", "ledger"], loaded)
    const tree: LazyTree = { ...top, subcommands: [...top.subcommands, nestedTree(models)] }
    await loadTree(tree, ["ledger", "balance", "alice"])
    expect(loaded).toEqual(["ledger"])
    loaded.length = 0
    await loadTree(tree, ["models", "pull", "tiny-lm"])
    expect(loaded).toEqual(["pull"])
    loaded.length = 0
    await loadTree(tree, ["--version"])
    expect(loaded).toEqual([])
    await loadTree(tree, ["--help"])
    expect(loaded.sort()).toEqual(["ledger", "list", "node", "pull"])
    loaded.length = 0
    await loadTree(tree, ["legder"])
    expect(loaded.sort()).toEqual(["ledger", "list", "node", "pull"])
  })
})
