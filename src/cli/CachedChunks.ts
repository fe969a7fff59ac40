/**
 * The build step behind CodeCache.ts: each large chunk of the CLI bundle becomes a script (its body,
 * wrapped in a function of the bindings it imports, returning its exports) beside a small module that
 * keeps the chunk's name, imports and exports, so that V8 can cache the script's compiled code.
 *
 * The module's exports are the values the body returned, read once: a chunk qualifies only if none of
 * them can change later. Its sources (and those of the chunks it imports from) export no `let` or
 * `var` assigned after they ran, which our code and the Effect packages never do; it has no lazily
 * initialized module (esbuild's `__esm`) and no top-level `await`, and it is not in an import cycle,
 * where a binding could be read before the chunk that declares it has run. The body's `import.meta`
 * and `import()` become the facade's, passed in with the imported bindings.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import * as vm from "node:vm"
import ts from "typescript"

/** Smaller chunks compile in less time than reading a cache costs. */
const MIN_BYTES = 16 * 1024

/** The banner every chunk starts with (Bundle.ts): bundled CommonJS packages require Node's modules. */
export const REQUIRE_BANNER =
  "import { createRequire as __edgeNetRequire } from \"node:module\";\nconst require = __edgeNetRequire(import.meta.url);\n"

/** The part of esbuild's metafile read here: each output file's sources and the chunks it imports. */
export interface Metafile {
  readonly outputs: Record<string, {
    readonly inputs: Record<string, unknown>
    readonly imports: ReadonlyArray<{ readonly path: string; readonly kind: string }>
  }>
}

/**
 * A static import statement, on lines of its own: esbuild hoists a chunk's imports of other chunks to
 * its head, and leaves those of Node's modules and external packages where their importer begins.
 */
const IMPORT = /^import\s+(?:([\w$]+)\s*,?\s*)?(?:\{([^}]*)\}\s*|\*\s+as\s+([\w$]+)\s+)?(?:from\s+)?"([^"]+)";\n/gm
/** The chunk's one export statement, at its end (before the licenses esbuild gathers there). */
const EXPORT = /\nexport\s*\{([^}]*)\};\n?(\/\*![\s\S]*\*\/\n?)?$/

interface Chunk {
  /** The banner and every import statement. */
  readonly head: string
  readonly importedLocals: ReadonlyArray<string>
  /** The modules the import statements name. */
  readonly importedPaths: ReadonlySet<string>
  readonly body: string
  /** [local, exported] */
  readonly exports: ReadonlyArray<readonly [string, string]>
}

/** `a, b as c` as [[a, a], [b, c]]; comments and TypeScript's `type` specifiers are left out. */
const specifiers = (list: string): Array<readonly [string, string]> =>
  list.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "").split(",").flatMap((item) => {
    const specifier = /^([\w$]+)(?:\s+as\s+([\w$]+))?$/.exec(item.trim())
    return specifier === null ? [] : [[specifier[1]!, specifier[2] ?? specifier[1]!] as const]
  })

/** A chunk's imports, body and exports, or undefined if it is not laid out as esbuild lays chunks out. */
const parseChunk = (text: string): Chunk | undefined => {
  if (!text.startsWith(REQUIRE_BANNER)) return undefined
  const exported = EXPORT.exec(text)
  if (exported === null) return undefined
  const statements = [...text.slice(REQUIRE_BANNER.length, exported.index + 1).matchAll(IMPORT)]
  const importedLocals = ["require"]
  for (const [, defaultName, named, namespace] of statements) {
    if (defaultName !== undefined) importedLocals.push(defaultName)
    for (const [, local] of specifiers(named ?? "")) importedLocals.push(local)
    if (namespace !== undefined) importedLocals.push(namespace)
  }
  return {
    head: REQUIRE_BANNER + statements.map(([statement]) => statement).join(""),
    importedLocals,
    importedPaths: new Set(["node:module", ...statements.map((statement) => statement[4]!)]),
    body: text.slice(REQUIRE_BANNER.length, exported.index + 1).replace(IMPORT, ""),
    exports: specifiers(exported[1]!)
  }
}

/**
 * Whether a source file exports a `let` or `var` that something may assign after the module has run:
 * an assignment inside a function or a class. Assignments at the top level run while the module runs,
 * as in TypeScript's compiled namespaces (`export var UnixFS; (function (UnixFS) {...})(UnixFS || ...)`
 * assigns inside a function, but one called at once, which is why the namespace's own IIFE is allowed).
 */
const exportsMutable = (file: string, source: string): boolean => {
  const names = new Set([...source.matchAll(/^\s*export\s+(?:let|var)\s+([\w$]+)/gm)].map((match) => match[1]!))
  for (const list of source.matchAll(/^\s*export\s*\{([^}]*)\}/gm)) {
    for (const [local] of specifiers(list[1]!)) {
      if (new RegExp(`^\\s*(?:let|var)\\s+${local.replace(/\$/g, "\\$")}\\b`, "m").test(source)) names.add(local)
    }
  }
  if (names.size === 0) return false
  const tree = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true)
  const assigns = (node: ts.Node): boolean => {
    if (ts.isBinaryExpression(node)) {
      const operator = node.operatorToken.kind
      return operator >= ts.SyntaxKind.FirstAssignment && operator <= ts.SyntaxKind.LastAssignment &&
        ts.isIdentifier(node.left) && names.has(node.left.text)
    }
    if (ts.isPrefixUnaryExpression(node) || ts.isPostfixUnaryExpression(node)) {
      return (node.operator === ts.SyntaxKind.PlusPlusToken || node.operator === ts.SyntaxKind.MinusMinusToken) &&
        ts.isIdentifier(node.operand) && names.has(node.operand.text)
    }
    return false
  }
  /** A function called where it is written, as a namespace's: its body runs with the module. */
  const calledAtOnce = (node: ts.Node) =>
    (ts.isFunctionExpression(node) || ts.isArrowFunction(node)) &&
    ts.isParenthesizedExpression(node.parent) && ts.isCallExpression(node.parent.parent) &&
    node.parent.parent.expression === node.parent
  const later = (node: ts.Node, deferred: boolean): boolean =>
    (deferred && assigns(node)) ||
    (ts.forEachChild(node, (child) =>
      later(child, deferred || ((ts.isFunctionLike(node) && !calledAtOnce(node)) || ts.isClassLike(node))) ||
      undefined) ?? false)
  return later(tree, false)
}

const hasCycle = (start: string, edges: ReadonlyMap<string, ReadonlyArray<string>>): boolean => {
  const seen = new Set<string>()
  const stack = [...(edges.get(start) ?? [])]
  while (stack.length > 0) {
    const next = stack.pop()!
    if (next === start) return true
    if (seen.has(next)) continue
    seen.add(next)
    for (const after of edges.get(next) ?? []) stack.push(after)
  }
  return false
}

/**
 * Rewrites the qualifying chunks of the bundle described by `metafile` (paths relative to the working
 * directory, as esbuild gives them); answers the names of the chunks rewritten.
 */
export const cacheChunks = (metafile: Metafile): ReadonlyArray<string> => {
  const chunks = Object.keys(metafile.outputs).filter((file) => /\/chunk-[^/]+\.js$/.test(file))
  const staticImports = new Map(
    chunks.map((file) => [
      file,
      metafile.outputs[file]!.imports.filter((edge) => edge.kind === "import-statement" && chunks.includes(edge.path))
        .map((edge) => edge.path)
    ])
  )
  const immutable = new Map(chunks.map((file) => [
    file,
    Object.keys(metafile.outputs[file]!.inputs).every((input) =>
      !fs.existsSync(input) || !exportsMutable(input, fs.readFileSync(input, "utf8"))
    )
  ]))
  const rewritten: Array<string> = []
  for (const file of chunks) {
    const text = fs.readFileSync(file, "utf8")
    // CodeCache.ts reads a body as Latin-1, which is its text only if it is ASCII (Bundle.ts makes it so).
    if (text.length < MIN_BYTES || !immutable.get(file) || /[^\x00-\x7f]/.test(text)) continue
    if (!staticImports.get(file)!.every((imported) => immutable.get(imported)) || hasCycle(file, staticImports)) {
      continue
    }
    const chunk = parseChunk(text)
    // Every import statement esbuild wrote, and only those (not text in a template that looks like one).
    const imports = new Set(
      metafile.outputs[file]!.imports.filter((edge) => edge.kind === "import-statement").map((edge) =>
        chunks.includes(edge.path) ? `./${path.basename(edge.path)}` : edge.path
      )
    )
    imports.add("node:module") // the banner's
    if (chunk !== undefined && [...imports].sort().join("\n") !== [...chunk.importedPaths].sort().join("\n")) continue
    // import.meta and import() are the facade's, passed in; one inside a string would be rewritten too.
    if (chunk === undefined || /__esm\(|["'`][^"'`\n]*\bimport(?:\(|\.meta)/.test(chunk.body)) continue
    if (chunk.exports.some(([, exported]) => exported === "default")) continue
    const name = path.basename(file, ".js")
    const reexported = chunk.exports.filter(([local]) => chunk.importedLocals.includes(local))
    const returned = chunk.exports.filter(([local]) => !chunk.importedLocals.includes(local))
    const body = chunk.body.replace(/\bimport\.meta\b/g, "__edgeNetImportMeta").replace(
      /\bimport\(/g,
      "__edgeNetImport("
    )
    const parameters = [...chunk.importedLocals, "__edgeNetImportMeta", "__edgeNetImport"]
    const script = `(function (${parameters.join(", ")}) {\n"use strict";\n${body}\nreturn { ${
      returned.map(([local, exported]) => (local === exported ? local : `${exported}: ${local}`)).join(", ")
    } };\n})`
    try {
      new vm.Script(script) // a top-level await, say, is not valid in a function
    } catch {
      continue
    }
    fs.writeFileSync(path.join(path.dirname(file), `${name}.body.js`), script)
    // The facade's own names for the exports: an export's name may be one of the imported locals.
    const exported = [
      ...returned.map(([, as], index) => [`__edgeNetExport${index}`, as] as const),
      ...reexported
    ]
    fs.writeFileSync(
      file,
      `${chunk.head}import { runCached as __edgeNetRunCached } from "./CodeCache.js";\n` +
        `const __edgeNetChunk = __edgeNetRunCached(import.meta.url, ${JSON.stringify(name)}, [${
          [...chunk.importedLocals, "import.meta", "(specifier) => import(specifier)"].join(", ")
        }]);\n` +
        `const { ${
          returned.map(([, as], index) => `${as}: __edgeNetExport${index}`).join(", ")
        } } = __edgeNetChunk;\n` +
        `export { ${exported.map(([local, as]) => (local === as ? local : `${local} as ${as}`)).join(", ")} };\n`
    )
    rewritten.push(name)
  }
  return rewritten
}
