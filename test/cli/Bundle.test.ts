/**
 * What the bundle's thread entries load. The journal's writer thread runs in every node for its whole
 * life: without the Effect runtime it holds about 30 MB less (an idle node: 200 -> 169 MB of RSS).
 * What an idle node keeps of the chunks' source text, and what it loads only on first use.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { inCodeUnitOrder } from "../../src/cli/Bundle.js"
import { compileCli } from "../support/CompiledCli.js"

/** Every file `entry` loads statically (itself included), following the bundle's relative imports. */
const staticImports = (directory: string, entry: string): Set<string> => {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    const text = fs.readFileSync(path.join(directory, file), "utf8")
    for (const match of text.matchAll(/(?:from|import)\s+"\.\/([^"]+\.js)"/g)) visit(match[1]!)
  }
  visit(entry)
  return seen
}

describe("the CLI bundle", () => {
  it("starts the journal's writer thread without the Effect runtime", () => {
    const directory = path.join(compileCli(), "src", "cli")
    const files = [...staticImports(directory, "SqliteWriterThread.js")]
    const texts = files.map((file) => fs.readFileSync(path.join(directory, file), "utf8"))
    expect(texts.filter((text) => text.includes("node_modules/effect/"))).toEqual([])
    const bytes = texts.reduce((sum, text) => sum + text.length, 0)
    expect(bytes).toBeLessThan(100_000)
  })

  it("loads Swagger UI only by dynamic import (GET /docs), never with the chunks a node starts with", () => {
    const directory = path.join(compileCli(), "src", "cli")
    const files = fs.readdirSync(directory).filter((file) => file.endsWith(".js"))
    const swagger = files.filter((file) =>
      fs.readFileSync(path.join(directory, file), "utf8").includes("swagger-ui-bundle.js")
    )
    expect(swagger).toHaveLength(1)
    const loadedStatically = files.filter((file) => staticImports(directory, file).has(swagger[0]!))
    expect(loadedStatically).toEqual(swagger)
  })

  it("leaves out @effect/cli's file parsers, which no command of ours uses", () => {
    // Bundle.ts gives @effect/cli stand-ins for yaml, toml and ini whose parse fails: a command that
    // parsed a file through @effect/cli would get that error.
    // (Bundle.ts names them, to say why.)
    const sources = fs.readdirSync("src/cli").filter((file) => file.endsWith(".ts") && file !== "Bundle.ts")
    const users = sources.filter((file) =>
      /\b(fileParse|fileSchema|ConfigFile)\b/.test(fs.readFileSync(path.join("src/cli", file), "utf8"))
    )
    expect(users).toEqual([])
  })

  it("writes every chunk in ASCII, which V8 keeps at one byte a character", () => {
    const directory = path.join(compileCli(), "src", "cli")
    const nonAscii = fs.readdirSync(directory)
      .filter((file) => file.endsWith(".js"))
      .filter((file) => /[^\x00-\x7f]/.test(fs.readFileSync(path.join(directory, file), "utf8")))
    expect(nonAscii).toEqual([])
  })

  it("sorts libp2p's peer store in code-unit order, so no node loads ICU's collator at start", () => {
    // The bundle: no localeCompare left in the peer store's modules.
    const directory = path.join(compileCli(), "src", "cli")
    const peerStore = fs.readdirSync(directory).filter((file) => file.endsWith(".js")).flatMap((file) =>
      fs.readFileSync(path.join(directory, file), "utf8").split(/^(?=\/\/ node_modules\/)/m)
        .filter((module) => module.startsWith("// node_modules/@libp2p/peer-store/dist/src/utils/"))
    )
    expect(peerStore.filter((module) => /__codeUnitOrder\d*\(/.test(module))).toHaveLength(2)
    expect(peerStore.filter((module) => module.includes("localeCompare"))).toEqual([])
    // The rewrite: the order of strings that locale order and code-unit order would sort apart.
    const module = inCodeUnitOrder(
      "export const sorted = (xs) => xs.sort((a, b) => a.key.toString().localeCompare(b.key.toString()))",
      "test.js"
    )
    const { sorted } = new Function(`${module.replace("export const", "const")}; return { sorted }`)() as {
      sorted: (xs: Array<{ key: string }>) => Array<{ key: string }>
    }
    expect(sorted(["b", "a", "B", "\u00e9", "e"].map((key) => ({ key }))).map(({ key }) => key))
      .toEqual(["B", "a", "b", "e", "\u00e9"])
    // A call of another shape fails the build.
    expect(() => inCodeUnitOrder("xs.sort((a, b) => a.localeCompare(b, 'de'))", "other.js")).toThrow(
      "other.js: its localeCompare calls are not the ones Bundle.ts rewrites"
    )
  })
})
