/**
 * The build step behind CodeCache.ts: each chunk of the CLI bundle that qualifies becomes a script (its
 * body, wrapped in a function that takes its imports from a linker and returns its exports) beside a
 * small module, its facade, that keeps the chunk's name and exports: V8 can cache a script's compiled
 * code, and CodeCache.ts runs a body's imports of other bodies itself, read and compiled at once, where
 * Node's module loader took a few asynchronous reads, a compilation and a link for each of the forty
 * modules a quick command loaded.
 *
 * The module's exports are the values the body returned, read once: a chunk qualifies only if none of
 * them can change later. Its sources (and those of the chunks it imports from) export no `let` or
 * `var` assigned after they ran, which our code and the Effect packages never do; it has no lazily
 * initialized module (esbuild's `__esm`) and no top-level `await`, and it is not in an import cycle,
 * where a binding could be read before the chunk that declares it has run. The body's `import.meta.url`
 * and `import()` are the chunk's, passed in with the linker.
 */
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import * as vm from "node:vm"
import ts from "typescript"

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

/** One import statement: the module it names and the bindings it declares. */
interface Import {
  readonly from: string
  readonly defaultName: string | undefined
  /** [imported, local] */
  readonly named: ReadonlyArray<readonly [string, string]>
  readonly namespace: string | undefined
}

interface Chunk {
  /** Every import statement but the banner's. */
  readonly imports: ReadonlyArray<Import>
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
  // A chunk with no export statement (a module run for its effect, such as a polyfill's) exports nothing.
  const exported = EXPORT.exec(text)
  if (exported === null && /^export\b/m.test(text)) return undefined
  const code = text.slice(REQUIRE_BANNER.length, exported === null ? text.length : exported.index + 1)
  return {
    imports: [...code.matchAll(IMPORT)].map(([, defaultName, named, namespace, from]) => ({
      from: from!,
      defaultName,
      named: specifiers(named ?? ""),
      namespace
    })),
    body: code.replace(IMPORT, ""),
    exports: exported === null ? [] : specifiers(exported[1]!)
  }
}

/**
 * An import statement as the body's declarations. A module of Node's is required: it is its own
 * default export, and all a chunk reads of its namespace. Anything else comes from `__edgeNetLink`,
 * as its module namespace (a chunk's, or a package's, which the facade imported).
 */
const declarations = ({ defaultName, from, named, namespace }: Import): string => {
  const builtin = isBuiltin(from)
  const source = `${builtin ? "require" : "__edgeNetLink"}(${JSON.stringify(from)})`
  const defaults = [
    ...(defaultName === undefined ? [] : [defaultName]),
    ...named.filter(([imported]) => imported === "default").map(([, local]) => local)
  ]
  const fields = named.filter(([imported]) => imported !== "default" || !builtin)
    .map(([imported, local]) => (imported === local ? local : `${imported}: ${local}`))
  const lines = [
    ...defaults.map((local) => `const ${local} = ${source}${builtin ? "" : ".default"};`),
    ...(namespace === undefined ? [] : [`const ${namespace} = ${source};`]),
    ...(fields.length === 0 ? [] : [`const { ${fields.join(", ")} } = ${source};`])
  ]
  // An import for the module's effect alone still runs it, in its place.
  return lines.length === 0 ? `${source};` : lines.join("\n")
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

/** The chunks `file` imports statically, directly or not. */
const closure = (file: string, edges: ReadonlyMap<string, ReadonlyArray<string>>, metafile: Metafile) => {
  const seen = new Set<string>()
  const stack = metafile.outputs[file]!.imports.filter((edge) => edge.kind === "import-statement")
    .map((edge) => edge.path).filter((imported) => edges.has(imported))
  while (stack.length > 0) {
    const next = stack.pop()!
    if (seen.has(next)) continue
    seen.add(next)
    for (const after of edges.get(next) ?? []) stack.push(after)
  }
  return seen
}

/**
 * Whether a quote (or a slash) comes before an `import(` or `import.meta` on its line. Looked for from
 * each of those back to its line's start: a regular expression from each quote onward to the end of
 * its line took 35 s over the bundle's long lines.
 */
const quoteBeforeImport = (code: string): boolean => {
  for (const match of code.matchAll(/\bimport(?:\(|\.meta)/g)) {
    const lineStart = code.lastIndexOf("\n", match.index) + 1
    if (/["'`/]/.test(code.slice(lineStart, match.index))) return true
  }
  return false
}

/**
 * Whether `import(` or `import.meta` is text in a string, template or regular expression of `code`:
 * the body's import.meta.url and import() are passed in, and rewriting one there would change a value.
 * (A quote anywhere before one on its line is all it takes to parse the code to make sure.)
 */
const importInLiteral = (code: string): boolean => {
  if (!quoteBeforeImport(code)) return false
  const literal = (node: ts.Node): boolean =>
    (ts.isStringLiteralLike(node) || ts.isTemplateLiteralToken(node) || ts.isRegularExpressionLiteral(node)) &&
    /\bimport(?:\(|\.meta)/.test(node.text)
  const visit = (node: ts.Node): boolean =>
    literal(node) || (ts.forEachChild(node, (child) => visit(child) || undefined) ?? false)
  return visit(ts.createSourceFile("chunk.js", code, ts.ScriptTarget.Latest, false, ts.ScriptKind.JS))
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

/** What a chunk becomes: its body, as a script, and the facade that stays a module. */
const bodyScript = (chunk: Chunk): string =>
  `(function (__edgeNetLink, require, __edgeNetImportMeta, __edgeNetImport) {\n"use strict";\n${
    chunk.imports.map(declarations).join("\n")
  }\n${
    chunk.body.replace(/\bimport\.meta\b/g, "__edgeNetImportMeta").replace(/\bimport\(/g, "__edgeNetImport(")
  }\nreturn { ${
    chunk.exports.map(([local, exported]) => (local === exported ? local : `${exported}: ${local}`)).join(", ")
  } };\n})`

/**
 * The facade imports, as modules, what its body takes from modules: packages, and chunks that stay
 * modules. One whose body links itself imports only the kept modules (`kept`) that its body and the
 * bodies CodeCache.ts runs for it take: loaded already where the facade is, they cost it nothing.
 */
const facadeModule = (name: string, chunk: Chunk, kept: ReadonlyArray<string> | undefined): string => {
  const linked = kept ?? [...new Set(chunk.imports.map(({ from }) => from).filter((from) => !isBuiltin(from)))]
  const exported = chunk.exports.map(([, as], index) => [`__edgeNetExport${index}`, as] as const)
  return [
    `import { runChunk as __edgeNetRunChunk } from "./CodeCache.js";`,
    ...linked.map((from, index) => `import * as __edgeNetLinked${index} from ${JSON.stringify(from)};`),
    `const { ${exported.map(([local, as]) => `${as}: ${local}`).join(", ")} } = __edgeNetRunChunk(import.meta.url, ${
      JSON.stringify(name)
    }, { ${linked.map((from, index) => `${JSON.stringify(from)}: __edgeNetLinked${index}`).join(", ")} });`,
    `export { ${exported.map(([local, as]) => `${local} as ${as}`).join(", ")} };`,
    ""
  ].join("\n")
}

/**
 * Rewrites the qualifying chunks of the bundle described by `metafile` (paths relative to the working
 * directory, as esbuild gives them); answers the names of the chunks rewritten. The chunks that the
 * outputs named in `keptFor` import stay modules: CodeCache.js's (it runs the bodies), and those of
 * entries that should not load it.
 */
export const cacheChunks = (metafile: Metafile, keptFor: ReadonlyArray<string>): ReadonlyArray<string> => {
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
  const kept = new Set(
    Object.keys(metafile.outputs).filter((file) => keptFor.includes(path.basename(file)))
      .flatMap((file) => [...closure(file, staticImports, metafile)])
  )
  const qualifying = new Map<string, Chunk>()
  for (const file of chunks) {
    if (kept.has(file)) continue
    const text = fs.readFileSync(file, "utf8")
    // CodeCache.ts reads a body as Latin-1, which is its text only if it is ASCII (Bundle.ts makes it so).
    if (!immutable.get(file) || /[^\x00-\x7f]/.test(text)) continue
    if (!staticImports.get(file)!.every((imported) => immutable.get(imported)) || hasCycle(file, staticImports)) {
      continue
    }
    const chunk = parseChunk(text)
    if (chunk === undefined) continue
    // Every import statement esbuild wrote, and only those (not text in a template that looks like one).
    const imports = new Set(
      metafile.outputs[file]!.imports.filter((edge) => edge.kind === "import-statement").map((edge) =>
        chunks.includes(edge.path) ? `./${path.basename(edge.path)}` : edge.path
      )
    )
    // The banner's import is no statement of the chunk's for the metafile, nor for parseChunk.
    imports.add("node:module")
    const parsed = new Set(["node:module", ...chunk.imports.map(({ from }) => from)])
    if ([...imports].sort().join("\n") !== [...parsed].sort().join("\n")) continue
    if (/__esm\(|\bimport\.meta\b(?!\.url\b)/.test(chunk.body) || importInLiteral(chunk.body)) continue
    if (chunk.exports.some(([, exported]) => exported === "default")) continue
    try {
      new vm.Script(bodyScript(chunk)) // a top-level await, say, is not valid in a function
    } catch {
      continue
    }
    qualifying.set(file, chunk)
  }
  // A body links itself when all it imports are Node's modules, kept modules and bodies that link
  // themselves: then its facade imports no other chunk, and a command loads the few modules it names
  // instead of every chunk.
  const linksItself = new Set<string>()
  for (let grown = true; grown;) {
    grown = false
    for (const [file, chunk] of qualifying) {
      if (linksItself.has(file)) continue
      const linkable = chunk.imports.every(({ from }) => {
        const imported = path.join(path.dirname(file), from)
        return isBuiltin(from) || kept.has(imported) || linksItself.has(imported)
      })
      if (linkable) linksItself.add(file)
      grown ||= linkable
    }
  }
  /** The kept modules that a body which links itself, and the bodies it links, import. */
  const keptTaken = (file: string): Array<string> => {
    const taken = new Set<string>()
    const seen = new Set<string>()
    const stack = [file]
    while (stack.length > 0) {
      const next = stack.pop()!
      if (seen.has(next)) continue
      seen.add(next)
      for (const imported of staticImports.get(next) ?? []) {
        if (kept.has(imported)) taken.add(`./${path.basename(imported)}`)
        else stack.push(imported)
      }
    }
    return [...taken].sort()
  }
  for (const [file, chunk] of qualifying) {
    const name = path.basename(file, ".js")
    fs.writeFileSync(path.join(path.dirname(file), `${name}.body.js`), bodyScript(chunk))
    fs.writeFileSync(file, facadeModule(name, chunk, linksItself.has(file) ? keptTaken(file) : undefined))
  }
  return [...qualifying.keys()].map((file) => path.basename(file, ".js"))
}
