/**
 * The layers of src/ as the architecture picture draws them, checked on every import: arrows point
 * down only, no two folders import each other, and no two files do either.
 *
 * Ranks, lowest first, and why:
 *   domain   (0) branded ids, money, signed commands, canonical JSON: imports nothing of ours.
 *   node     (1) platform helpers that wrap the runtime (module workers, verifier threads): anything
 *                above may run work on a thread, so they sit just above domain and know nothing else.
 *   content  (2) blobs, digests, manifests, signatures, the node key: plain data on disk and the wire.
 *   compute  (3) numeric kernels and the files they read (ONNX, adapters): use content, never events.
 *   events   (3) journal, envelope, actor runner, policies, audit: use content (the node key), never
 *                compute. Same rank as compute, so neither may import the other.
 *   actors   (4) the subsystems: deciders and services on events, compute and content.
 *   net    (4.5) the node as a libp2p peer: head gossip, feeds followed into verified copies, peers;
 *                on events and content, under the layers that start it with the node.
 *   sdk    (4.8) the library's model loader and sessions: on compute and content, with the registry
 *                actor as one catalog of models; under the node's layers so a node can use it.
 *   layers   (5) composition and the node's own services (config, status, audit across actors).
 *   rpc      (6) the RPC contracts and handlers over the services.
 *   serve  (6.5) inference served over HTTP (OpenAI-compatible): on the sdk, under the http server.
 *   http     (7) the server: HTTP API and the RPC groups mounted at /rpc.
 *   cli      (8) the commands, in process on a data dir or through a running node's RPC.
 *   browser (9.5) the browser SDK (/ui/sdk.js): model loader, sessions and training for a web page, on
 *                the pure parts of compute, content and domain; nothing it loads, however indirectly,
 *                imports a Node built-in or a native package. Bundled for the page, never imported by the node.
 *   ui      (10) the dashboard's browser sources: bundled for the page, served by http as files, never
 *                imported by the node; they import each other and the browser SDK, and no Node built-in.
 *
 * Inside actors/ the subsystems are ranked too: network (charter) and economy (ledger, stake, parameters)
 * lie under the subsystems that pay or are governed through them; market, governance, registry, adapters,
 * optimizer and learning are peers and never import one another. And a subsystem uses another only through its
 * service and contracts: a module that defines another subsystem's decider (an `EventSourced`) is its
 * internals, and importing it is refused.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../src")

const FOLDER_RANK: Readonly<Record<string, number>> = {
  domain: 0,
  node: 1,
  content: 2,
  compute: 3,
  events: 3,
  actors: 4,
  net: 4.5,
  sdk: 4.8,
  layers: 5,
  rpc: 6,
  serve: 6.5,
  http: 7,
  cli: 8,
  // src/index.ts: the package's root entry, above everything it re-exports.
  "(root)": 9,
  browser: 9.5,
  ui: 10
}

const SUBSYSTEM_RANK: Readonly<Record<string, number>> = {
  network: 0,
  economy: 1,
  market: 2,
  governance: 2,
  registry: 2,
  adapters: 2,
  optimizer: 2,
  learning: 2
}

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    return entry.isDirectory() ? sourceFiles(full) : entry.name.endsWith(".ts") ? [full] : []
  })

const relative = (file: string) => path.relative(SRC, file).split(path.sep).join("/")

/** Every relative import of every file (static, type-only, re-export and dynamic), resolved to a file of src/. */
/** Whether every import of `specifier` in the file names types only (erased at run time). */
const typeOnlySpecifiers = (file: string, text: string): ReadonlySet<string> => {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false)
  const valueImports = new Set<string>()
  const typeImports = new Set<string>()
  for (const statement of source.statements) {
    if (!(ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement))) continue
    const specifier = statement.moduleSpecifier
    if (specifier === undefined || !ts.isStringLiteral(specifier)) continue
    const typeOnly = ts.isImportDeclaration(statement)
      ? statement.importClause?.isTypeOnly === true ||
        (statement.importClause?.name === undefined &&
          statement.importClause?.namedBindings !== undefined &&
          ts.isNamedImports(statement.importClause.namedBindings) &&
          statement.importClause.namedBindings.elements.length > 0 &&
          statement.importClause.namedBindings.elements.every((element) => element.isTypeOnly))
      : statement.isTypeOnly
    ;(typeOnly ? typeImports : valueImports).add(specifier.text)
  }
  return new Set([...typeImports].filter((specifier) => !valueImports.has(specifier)))
}

/**
 * The modules a file loads when it runs: its value imports and re-exports and its dynamic `import()`s,
 * not its type-only imports nor `typeof import("...")` in a type.
 */
const runtimeSpecifiers = (file: string, text: string): Array<string> => {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false)
  const typeOnly = typeOnlySpecifiers(file, text)
  const found: Array<string> = []
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      if (ts.isStringLiteral(node.moduleSpecifier) && !typeOnly.has(node.moduleSpecifier.text)) {
        found.push(node.moduleSpecifier.text)
      }
    } else if (
      ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined && ts.isStringLiteral(node.arguments[0])
    ) {
      found.push(node.arguments[0].text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

const importGraph = () => {
  const graph = new Map<
    string,
    Array<{ readonly target: string; readonly specifier: string; readonly typeOnly: boolean }>
  >()
  for (const file of sourceFiles(SRC)) {
    const text = fs.readFileSync(file, "utf8")
    const typeOnly = typeOnlySpecifiers(file, text)
    const imports = ts.preProcessFile(text, true, true).importedFiles
      .filter(({ fileName }) => fileName.startsWith("."))
      .map(({ fileName }) => ({
        specifier: fileName,
        target: relative(path.resolve(path.dirname(file), fileName.replace(/\.js$/, ".ts"))),
        typeOnly: typeOnly.has(fileName)
      }))
    graph.set(relative(file), imports)
  }
  return graph
}

const graph = importGraph()
const folderOf = (file: string) => (file.includes("/") ? file.slice(0, file.indexOf("/")) : "(root)")
const subsystemOf = (file: string) => (file.startsWith("actors/") ? file.split("/")[1] ?? "" : undefined)
const definesDecider = (file: string) => /:\s*EventSourced</.test(fs.readFileSync(path.join(SRC, file), "utf8"))

describe("import direction", () => {
  it("every top folder has a rank", () => {
    const folders = new Set([...graph.keys()].map(folderOf))
    expect([...folders].filter((folder) => FOLDER_RANK[folder] === undefined)).toEqual([])
    const subsystems = new Set([...graph.keys()].flatMap((file) => subsystemOf(file) ?? []))
    expect([...subsystems].filter((subsystem) => SUBSYSTEM_RANK[subsystem] === undefined)).toEqual([])
  })

  it("every import points down: to the same folder or one of lower rank", () => {
    const upward: Array<string> = []
    for (const [file, imports] of graph) {
      const from = folderOf(file)
      for (const { specifier, target } of imports) {
        const to = folderOf(target)
        if (to === from) continue
        if ((FOLDER_RANK[to] ?? Infinity) >= (FOLDER_RANK[from] ?? -Infinity)) {
          upward.push(`${file} imports "${specifier}" (${from} -> ${to})`)
        }
      }
    }
    expect(upward).toEqual([])
  })

  it("a subsystem imports only subsystems below it, and never another subsystem's decider", () => {
    const wrong: Array<string> = []
    for (const [file, imports] of graph) {
      const from = subsystemOf(file)
      if (from === undefined) continue
      for (const { specifier, target } of imports) {
        const to = subsystemOf(target)
        if (to === undefined || to === from) continue
        if ((SUBSYSTEM_RANK[to] ?? Infinity) >= (SUBSYSTEM_RANK[from] ?? -Infinity)) {
          wrong.push(`${file} imports "${specifier}" (${from} -> ${to})`)
        } else if (definesDecider(target)) {
          wrong.push(`${file} imports "${specifier}": ${to}'s decider, not its service`)
        }
      }
    }
    expect(wrong).toEqual([])
  })

  it("no two files import each other at run time, directly or round a longer loop", () => {
    // Tarjan's strongly connected components: each component of more than one file is a cycle.
    // Type-only imports are erased before anything runs, so a module split into helpers that name
    // their parent's types (ModelDecoder and OnnxModel, the Downloader's parts) is not a loop; the
    // direction checks above still count them.
    const index = new Map<string, number>()
    const lowLink = new Map<string, number>()
    const stack: Array<string> = []
    const onStack = new Set<string>()
    const cycles: Array<string> = []
    const visit = (file: string) => {
      index.set(file, index.size)
      lowLink.set(file, index.get(file) ?? 0)
      stack.push(file)
      onStack.add(file)
      for (const { target, typeOnly } of graph.get(file) ?? []) {
        if (typeOnly || !graph.has(target)) continue
        if (!index.has(target)) {
          visit(target)
          lowLink.set(file, Math.min(lowLink.get(file) ?? 0, lowLink.get(target) ?? 0))
        } else if (onStack.has(target)) {
          lowLink.set(file, Math.min(lowLink.get(file) ?? 0, index.get(target) ?? 0))
        }
      }
      if (lowLink.get(file) === index.get(file)) {
        const component: Array<string> = []
        let member: string | undefined
        do {
          member = stack.pop()
          if (member === undefined) break
          onStack.delete(member)
          component.push(member)
        } while (member !== file)
        if (component.length > 1) cycles.push(component.sort().join(" <-> "))
      }
    }
    for (const file of graph.keys()) if (!index.has(file)) visit(file)
    expect(cycles).toEqual([])
  })

  it("the dashboard's sources import only each other, the browser SDK and browser packages: no Node built-in", () => {
    const wrong: Array<string> = []
    const allowed = [path.join(SRC, "ui"), path.join(SRC, "browser")]
    for (const file of sourceFiles(path.join(SRC, "ui"))) {
      const text = fs.readFileSync(file, "utf8")
      for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
        const outside = fileName.startsWith(".") &&
          !allowed.some((folder) => path.resolve(path.dirname(file), fileName).startsWith(folder))
        const builtin = fileName.startsWith("node:") || isBuiltin(fileName)
        if (outside || builtin) wrong.push(`${relative(file)} imports "${fileName}"`)
      }
    }
    expect(wrong).toEqual([])
  })

  it("nothing the browser SDK loads, however indirectly, imports a Node built-in or a native package", () => {
    const reachable = new Set<string>()
    const pending = sourceFiles(path.join(SRC, "browser")).map(relative)
    while (pending.length > 0) {
      const file = pending.pop()!
      if (reachable.has(file) || !graph.has(file)) continue
      reachable.add(file)
      // Type-only imports are erased: they load nothing.
      for (const { target, typeOnly } of graph.get(file) ?? []) if (!typeOnly) pending.push(target)
    }
    const wrong: Array<string> = []
    for (const file of reachable) {
      for (const specifier of runtimeSpecifiers(file, fs.readFileSync(path.join(SRC, file), "utf8"))) {
        if (specifier.startsWith("node:") || isBuiltin(specifier) || specifier === "onnxruntime-node") {
          wrong.push(`${file} imports "${specifier}"`)
        }
      }
    }
    expect(reachable.size).toBeGreaterThan(10)
    expect(wrong).toEqual([])
  })

  it("every import names a file that exists", () => {
    const missing = [...graph].flatMap(([file, imports]) =>
      imports.filter(({ target }) => !graph.has(target)).map(({ specifier }) => `${file} imports "${specifier}"`)
    )
    // Only non-TypeScript assets (a .wat, a .json, the dashboard's .css) may be imported besides the sources.
    expect(missing.filter((line) => !/\.(wat|json|wasm|css)"$/.test(line))).toEqual([])
  })
})
