/**
 * The bundle's code-cached chunks (src/cli/CachedChunks.ts, CodeCache.ts) on a bundle of three entries
 * built here: a chunk whose exports cannot change becomes a facade and a script (cached if large), and
 * behaves as before (exports, import.meta, import(), one instance of each module); a chunk exporting a
 * binding assigned later stays a module.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { bundleOptions } from "../../src/cli/Bundle.js"
import type { Metafile } from "../../src/cli/CachedChunks.js"
import { cacheChunks } from "../../src/cli/CachedChunks.js"
import { tempDir } from "../support/TempDir.js"

interface Esbuild {
  readonly buildSync: (options: Record<string, unknown>) => { readonly metafile: Metafile }
}

/** Enough source that the chunk is worth a cache (CachedChunks.ts leaves small ones alone). */
const padding = (name: string) =>
  `export const ${name} = [\n${
    Array.from({ length: 800 }, (_, i) => `  (x: number) => x * ${i} + ${i % 7}`).join(",\n")
  }\n]`

const write = (directory: string, files: Record<string, string>) => {
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(directory, name), text)
}

const build = () => {
  const sources = tempDir("cached-chunks-src-")
  const outdir = tempDir("cached-chunks-out-")
  write(sources, {
    "shared.ts": `export const registry = new Map<string, number>()`,
    "fixed.ts": `${padding("fixed")}
import { registry } from "./shared.js"
export const sharedRegistry = () => registry
export const greeting = "hello"
export const here = () => import.meta.url
export const later = () => import("./later.js").then((module) => module.value)`,
    "later.ts": `export const value = 42`,
    "counter.ts": `${padding("counter")}
export let count = 0
export const bump = () => { count++ }`,
    "a.ts": `import { fixed, greeting, here, later, sharedRegistry } from "./fixed.js"
import { registry } from "./shared.js"
console.log(JSON.stringify({
  greeting, fixed3: fixed[3]!(2), here: here(), later: await later(), oneRegistry: registry === sharedRegistry()
}))`,
    "b.ts": `import { fixed, greeting } from "./fixed.js"
import { count, counter } from "./counter.js"
console.log(greeting, count, fixed.length + counter.length)`,
    "c.ts": `import { bump, count, counter } from "./counter.js"
import { registry } from "./shared.js"
bump()
registry.clear()
console.log(JSON.stringify({ count, functions: counter.length }))`
  })
  const esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
  const { metafile } = esbuild.buildSync(
    bundleOptions([...["a", "b", "c"].map((name) => path.join(sources, `${name}.ts`)), "src/cli/CodeCache.ts"], outdir)
  )
  fs.writeFileSync(path.join(outdir, "package.json"), JSON.stringify({ type: "module" }))
  return { outdir, rewritten: cacheChunks(metafile, ["CodeCache.js"]) }
}

const run = (outdir: string, entry: string, env: Record<string, string> = {}, args: ReadonlyArray<string> = []) =>
  execFileSync(process.execPath, [path.join(outdir, `${entry}.js`), ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env }
  })

const caches = (outdir: string) => fs.readdirSync(outdir).filter((file) => file.endsWith(".v8cache"))

describe("code-cached chunks", () => {
  it("run from V8's cache once a first process wrote it, with the same exports, import.meta and import()", () => {
    const { outdir, rewritten } = build()
    const chunk = rewritten.find((name) =>
      fs.readFileSync(path.join(outdir, `${name}.body.js`), "utf8").includes("var greeting = \"hello\"")
    )
    expect(chunk).toBeDefined()
    const facade = fs.readFileSync(path.join(outdir, `${chunk}.js`), "utf8")
    expect(facade).toContain("__edgeNetRunChunk")
    // The body's import of the shared module's body (a chunk of its own) is CodeCache.ts's to run.
    expect(rewritten.filter((name) => name !== chunk && facade.includes(name))).toEqual([])

    const expected = {
      greeting: "hello",
      fixed3: 9,
      here: `file://${path.join(outdir, `${chunk}.js`)}`,
      later: 42,
      oneRegistry: true
    }
    expect(caches(outdir)).toEqual([])
    expect(JSON.parse(run(outdir, "a"))).toEqual(expected)
    // Only the large body is worth a cache.
    expect(caches(outdir)).toEqual([`${chunk}.v8cache`])
    const written = fs.statSync(path.join(outdir, `${chunk}.v8cache`)).mtimeMs
    expect(JSON.parse(run(outdir, "a"))).toEqual(expected)
    // A usable cache is read, not written again.
    expect(fs.statSync(path.join(outdir, `${chunk}.v8cache`)).mtimeMs).toBe(written)
  })

  it("keep a node's caches apart from the CLI commands', which a node's would slow", () => {
    const { outdir, rewritten } = build()
    const chunk = rewritten.find((name) =>
      fs.readFileSync(path.join(outdir, `${name}.body.js`), "utf8").includes("var greeting = \"hello\"")
    )
    // A node runs first: its cache is its own, and the command after it writes the one commands read.
    expect(JSON.parse(run(outdir, "a", {}, ["node", "start"])).greeting).toBe("hello")
    expect(caches(outdir)).toEqual([`${chunk}.node.v8cache`])
    expect(JSON.parse(run(outdir, "a")).greeting).toBe("hello")
    expect(caches(outdir).sort()).toEqual([`${chunk}.node.v8cache`, `${chunk}.v8cache`])
  })

  it("leave a chunk whose export is assigned after it ran as a module, so its importers see the change", () => {
    const { outdir, rewritten } = build()
    const chunks = fs.readdirSync(outdir).filter((file) => /^chunk-.*\.js$/.test(file) && !file.endsWith(".body.js"))
    const counter = chunks.find((file) => fs.readFileSync(path.join(outdir, file), "utf8").includes("count++"))
    expect(counter).toBeDefined()
    expect(rewritten).not.toContain(path.basename(counter!, ".js"))
    expect(JSON.parse(run(outdir, "c"))).toEqual({ count: 1, functions: 800 })
    expect(run(outdir, "b")).toBe("hello 0 1600\n")
  })

  it("compile afresh over a cache V8 refuses, and replace it; EDGE_NET_CODE_CACHE=off writes none", () => {
    const { outdir } = build()
    const [chunk] = fs.readdirSync(outdir).filter((file) =>
      file.endsWith(".body.js") && fs.readFileSync(path.join(outdir, file), "utf8").includes("var greeting")
    )
    const cacheFile = path.join(outdir, chunk!.replace(/\.body\.js$/, ".v8cache"))
    expect(JSON.parse(run(outdir, "a", { EDGE_NET_CODE_CACHE: "off" })).greeting).toBe("hello")
    expect(caches(outdir)).toEqual([])
    fs.writeFileSync(cacheFile, "not a code cache")
    expect(JSON.parse(run(outdir, "a")).greeting).toBe("hello")
    expect(fs.readFileSync(cacheFile).length).toBeGreaterThan(1000)
  })
})
