/**
 * A small Jinja subset for chat templates: text, {{ }}, {% if/elif/else %}, {% for %} with loop, {% set %},
 * comments, whitespace control with HF's trim_blocks + lstrip_blocks, Python-like expressions and filters.
 */

export class TemplateError extends Error {}

// ---------------------------------------------------------------------------------------------------
// Lexing the template into text and tags, applying whitespace control.

type Part = { kind: "text"; text: string } | { kind: "output" | "statement"; source: string }

const lex = (template: string): Array<Part> => {
  const parts: Array<Part> = []
  const open = /\{([{%#])(-?)/g
  let position = 0
  let trimNext = false
  let newlineAfterBlock = false
  while (position <= template.length) {
    open.lastIndex = position
    const found = open.exec(template)
    let text = template.slice(position, found?.index ?? template.length)
    if (trimNext) text = text.replace(/^\s+/, "")
    else if (newlineAfterBlock) text = text.replace(/^\r?\n/, "")
    if (found === undefined || found === null) {
      parts.push({ kind: "text", text })
      break
    }
    const kind = found[1]!
    if (found[2] === "-") text = text.replace(/\s+$/, "")
    else if (kind !== "{") text = text.replace(/(^|\n)[ \t]+$/, "$1")
    parts.push({ kind: "text", text })
    const closer = kind === "{" ? "}}" : kind === "%" ? "%}" : "#}"
    const close = template.indexOf(closer, found.index + 2)
    if (close < 0) throw new TemplateError(`unclosed {${kind}`)
    let inner = template.slice(found.index + 2 + found[2]!.length, close)
    trimNext = inner.endsWith("-")
    if (trimNext) inner = inner.slice(0, -1)
    newlineAfterBlock = kind !== "{"
    if (kind !== "#") parts.push({ kind: kind === "{" ? "output" : "statement", source: inner.trim() })
    position = close + 2
  }
  return parts
}

// ---------------------------------------------------------------------------------------------------
// Expressions.

type Expr =
  | { t: "lit"; value: unknown }
  | { t: "var"; name: string }
  | { t: "attr"; object: Expr; name: string }
  | { t: "index"; object: Expr; index: Expr }
  | { t: "slice"; object: Expr; start: Expr | undefined; end: Expr | undefined }
  | { t: "call"; callee: Expr; args: Array<Expr> }
  | { t: "filter"; value: Expr; name: string; args: Array<Expr> }
  | { t: "test"; value: Expr; name: string; negate: boolean }
  | { t: "unary"; op: string; value: Expr }
  | { t: "binary"; op: string; left: Expr; right: Expr }
  | { t: "ternary"; condition: Expr; then: Expr; otherwise: Expr | undefined }
  | { t: "list"; items: Array<Expr> }

const TOKEN = /\s*(?:(\d+(?:\.\d+)?)|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|[-+*/%~<>()[\].,|:]))/y

const tokenizeExpression = (source: string): Array<string> => {
  const tokens: Array<string> = []
  TOKEN.lastIndex = 0
  while (TOKEN.lastIndex < source.length) {
    if (/^\s*$/.test(source.slice(TOKEN.lastIndex))) break
    const match = TOKEN.exec(source)
    if (match === null) throw new TemplateError(`cannot read expression ${source}`)
    tokens.push(match[1] ?? match[2] ?? match[3] ?? match[4]!)
  }
  return tokens
}

const unquote = (literal: string) =>
  literal.slice(1, -1).replace(/\\(.)/g, (_, char: string) => ({ n: "\n", t: "\t", r: "\r" })[char] ?? char)

class ExpressionParser {
  private position = 0
  constructor(private readonly tokens: Array<string>) {}

  get done() {
    return this.position >= this.tokens.length
  }
  peek(offset = 0) {
    return this.tokens[this.position + offset]
  }
  take(expected?: string) {
    const token = this.tokens[this.position++]
    if (token === undefined || (expected !== undefined && token !== expected)) throw new TemplateError(`expected ${expected ?? "more"}, got ${token}`)
    return token
  }
  accept(token: string) {
    if (this.peek() !== token) return false
    this.position++
    return true
  }

  expression(): Expr {
    const value = this.or()
    if (this.peek() === "if") {
      this.take()
      const condition = this.or()
      const otherwise = this.accept("else") ? this.expression() : undefined
      return { t: "ternary", condition, then: value, otherwise }
    }
    return value
  }
  private or(): Expr {
    let left = this.and()
    while (this.accept("or")) left = { t: "binary", op: "or", left, right: this.and() }
    return left
  }
  private and(): Expr {
    let left = this.not()
    while (this.accept("and")) left = { t: "binary", op: "and", left, right: this.not() }
    return left
  }
  private not(): Expr {
    return this.accept("not") ? { t: "unary", op: "not", value: this.not() } : this.comparison()
  }
  private comparison(): Expr {
    let left = this.concat()
    while (true) {
      const token = this.peek()
      if (token === "==" || token === "!=" || token === "<" || token === ">" || token === "<=" || token === ">=" || token === "in") {
        this.take()
        left = { t: "binary", op: token, left, right: this.concat() }
      } else if (token === "not" && this.peek(1) === "in") {
        this.take()
        this.take()
        left = { t: "unary", op: "not", value: { t: "binary", op: "in", left, right: this.concat() } }
      } else if (token === "is") {
        this.take()
        const negate = this.accept("not")
        left = { t: "test", value: left, name: this.take(), negate }
      } else return left
    }
  }
  private concat(): Expr {
    let left = this.product()
    while (this.peek() === "+" || this.peek() === "-" || this.peek() === "~") left = { t: "binary", op: this.take(), left, right: this.product() }
    return left
  }
  private product(): Expr {
    let left = this.unary()
    while (this.peek() === "*" || this.peek() === "/" || this.peek() === "%") left = { t: "binary", op: this.take(), left, right: this.unary() }
    return left
  }
  private unary(): Expr {
    if (this.accept("-")) return { t: "unary", op: "-", value: this.unary() }
    let value = this.postfix()
    while (this.accept("|")) {
      const name = this.take()
      value = { t: "filter", value, name, args: this.peek() === "(" ? this.arguments() : [] }
    }
    return value
  }
  private arguments(): Array<Expr> {
    this.take("(")
    const args: Array<Expr> = []
    while (!this.accept(")")) {
      args.push(this.expression())
      this.accept(",")
    }
    return args
  }
  private postfix(): Expr {
    let value = this.primary()
    while (true) {
      if (this.accept(".")) value = { t: "attr", object: value, name: this.take() }
      else if (this.peek() === "(") value = { t: "call", callee: value, args: this.arguments() }
      else if (this.accept("[")) {
        const start = this.peek() === ":" ? undefined : this.expression()
        if (this.accept(":")) {
          const end = this.peek() === "]" ? undefined : this.expression()
          value = { t: "slice", object: value, start, end }
        } else value = { t: "index", object: value, index: start! }
        this.take("]")
      } else return value
    }
  }
  private primary(): Expr {
    const token = this.take()
    if (token === "(") {
      const inner = this.expression()
      this.take(")")
      return inner
    }
    if (token === "[") {
      const items: Array<Expr> = []
      while (!this.accept("]")) {
        items.push(this.expression())
        this.accept(",")
      }
      return { t: "list", items }
    }
    if (/^\d/.test(token)) return { t: "lit", value: Number(token) }
    if (token.startsWith("\"") || token.startsWith("'")) {
      let value = unquote(token)
      // Adjacent string literals concatenate, as in Python.
      while (this.peek()?.startsWith("\"") === true || this.peek()?.startsWith("'") === true) value += unquote(this.take())
      return { t: "lit", value }
    }
    if (token === "true" || token === "True") return { t: "lit", value: true }
    if (token === "false" || token === "False") return { t: "lit", value: false }
    if (token === "none" || token === "None") return { t: "lit", value: null }
    if (/^[A-Za-z_]/.test(token)) return { t: "var", name: token }
    throw new TemplateError(`unexpected ${token}`)
  }
}

const parseExpression = (source: string) => {
  const parser = new ExpressionParser(tokenizeExpression(source))
  const expression = parser.expression()
  if (!parser.done) throw new TemplateError(`unexpected ${parser.peek()} in ${source}`)
  return expression
}

// ---------------------------------------------------------------------------------------------------
// Statements.

type Node =
  | { n: "text"; text: string }
  | { n: "output"; value: Expr }
  | { n: "if"; branches: Array<{ condition: Expr; body: Array<Node> }>; otherwise: Array<Node> }
  | { n: "for"; names: Array<string>; iterable: Expr; body: Array<Node>; otherwise: Array<Node> }
  | { n: "set"; name: string; value: Expr }

const parseNodes = (parts: Array<Part>): Array<Node> => {
  let position = 0
  const block = (terminators: ReadonlyArray<string>): [Array<Node>, string] => {
    const nodes: Array<Node> = []
    while (position < parts.length) {
      const part = parts[position++]!
      if (part.kind === "text") {
        if (part.text.length > 0) nodes.push({ n: "text", text: part.text })
        continue
      }
      if (part.kind === "output") {
        nodes.push({ n: "output", value: parseExpression(part.source) })
        continue
      }
      const keyword = part.source.split(/\s+/, 1)[0]!
      const rest = part.source.slice(keyword.length).trim()
      if (terminators.includes(keyword)) return [nodes, part.source]
      if (keyword === "if") {
        const branches = [{ condition: parseExpression(rest), body: [] as Array<Node> }]
        let otherwise: Array<Node> = []
        let [body, end] = block(["elif", "else", "endif"])
        branches[0]!.body = body
        while (end.startsWith("elif")) {
          const branch = { condition: parseExpression(end.slice(4).trim()), body: [] as Array<Node> }
          ;[body, end] = block(["elif", "else", "endif"])
          branch.body = body
          branches.push(branch)
        }
        if (end === "else") [otherwise] = block(["endif"])
        nodes.push({ n: "if", branches, otherwise })
      } else if (keyword === "for") {
        const match = /^([\w\s,]+?)\s+in\s+(.+)$/.exec(rest)
        if (match === null) throw new TemplateError(`cannot read for ${rest}`)
        const names = match[1]!.split(",").map((name) => name.trim())
        const [body, end] = block(["else", "endfor"])
        const otherwise = end === "else" ? block(["endfor"])[0] : []
        nodes.push({ n: "for", names, iterable: parseExpression(match[2]!), body, otherwise })
      } else if (keyword === "set") {
        const match = /^([A-Za-z_]\w*)\s*=\s*(.+)$/s.exec(rest)
        if (match === null) throw new TemplateError(`cannot read set ${rest}`)
        nodes.push({ n: "set", name: match[1]!, value: parseExpression(match[2]!) })
      } else throw new TemplateError(`unsupported statement ${keyword}`)
    }
    if (terminators.length > 0) throw new TemplateError(`missing ${terminators.join(" or ")}`)
    return [nodes, ""]
  }
  return block([])[0]
}

// ---------------------------------------------------------------------------------------------------
// Evaluation.

type Scope = Map<string, unknown>

const truthy = (value: unknown) =>
  Array.isArray(value) ? value.length > 0 : typeof value === "object" && value !== null ? Object.keys(value).length > 0 : Boolean(value)

const show = (value: unknown): string =>
  value === undefined ? "" : value === null ? "None" : value === true ? "True" : value === false ? "False" : typeof value === "object" ? JSON.stringify(value) : String(value)

const lookup = (scopes: ReadonlyArray<Scope>, name: string) => {
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i]!.has(name)) return scopes[i]!.get(name)
  return undefined
}

const member = (object: unknown, key: unknown): unknown => {
  if (object === null || object === undefined) return undefined
  if (typeof object === "string") {
    const methods: Record<string, (...args: Array<unknown>) => unknown> = {
      strip: () => object.trim(), lstrip: () => object.trimStart(), rstrip: () => object.trimEnd(), upper: () => object.toUpperCase(),
      lower: () => object.toLowerCase(), startswith: (prefix) => object.startsWith(String(prefix)), endswith: (suffix) => object.endsWith(String(suffix)),
      split: (separator) => (separator === undefined ? object.trim().split(/\s+/) : object.split(String(separator)))
    }
    if (typeof key === "string" && key in methods) return methods[key]
    if (typeof key === "number") return object.at(key)
    return undefined
  }
  if (Array.isArray(object) && typeof key === "number") return object.at(key)
  if (typeof object === "object") {
    const record = object as Record<string, unknown>
    if (key === "get" && !("get" in record)) return (name: unknown, fallback: unknown = null) => record[String(name)] ?? fallback
    if (key === "items" && !("items" in record)) return () => Object.entries(record)
    return record[String(key)]
  }
  return undefined
}

const FILTERS: Record<string, (value: unknown, ...args: Array<unknown>) => unknown> = {
  trim: (value) => show(value).trim(),
  upper: (value) => show(value).toUpperCase(),
  lower: (value) => show(value).toLowerCase(),
  capitalize: (value) => { const text = show(value); return text.charAt(0).toUpperCase() + text.slice(1).toLowerCase() },
  length: (value) => (typeof value === "string" || Array.isArray(value) ? value.length : 0),
  count: (value) => (typeof value === "string" || Array.isArray(value) ? value.length : 0),
  first: (value) => (Array.isArray(value) ? value[0] : typeof value === "string" ? value[0] : undefined),
  last: (value) => (Array.isArray(value) ? value.at(-1) : typeof value === "string" ? value.at(-1) : undefined),
  string: (value) => show(value),
  tojson: (value) => JSON.stringify(value),
  default: (value, fallback = "") => (value === undefined ? fallback : value)
}

const evaluate = (expr: Expr, scopes: ReadonlyArray<Scope>): unknown => {
  switch (expr.t) {
    case "lit": return expr.value
    case "var": return lookup(scopes, expr.name)
    case "list": return expr.items.map((item) => evaluate(item, scopes))
    case "attr": return member(evaluate(expr.object, scopes), expr.name)
    case "index": return member(evaluate(expr.object, scopes), evaluate(expr.index, scopes))
    case "slice": {
      const object = evaluate(expr.object, scopes)
      if (!Array.isArray(object) && typeof object !== "string") return undefined
      const start = expr.start === undefined ? undefined : Number(evaluate(expr.start, scopes))
      const end = expr.end === undefined ? undefined : Number(evaluate(expr.end, scopes))
      return object.slice(start, end)
    }
    case "call": {
      const callee = evaluate(expr.callee, scopes)
      if (typeof callee !== "function") throw new TemplateError("call of something that is not a function")
      return callee(...expr.args.map((arg) => evaluate(arg, scopes)))
    }
    case "filter": {
      const filter = FILTERS[expr.name]
      if (filter === undefined) throw new TemplateError(`unsupported filter ${expr.name}`)
      return filter(evaluate(expr.value, scopes), ...expr.args.map((arg) => evaluate(arg, scopes)))
    }
    case "test": {
      const value = evaluate(expr.value, scopes)
      const tests: Record<string, boolean> = {
        defined: value !== undefined, undefined: value === undefined, none: value === null, string: typeof value === "string",
        number: typeof value === "number", true: value === true, false: value === false,
        iterable: Array.isArray(value) || typeof value === "string", mapping: typeof value === "object" && value !== null && !Array.isArray(value)
      }
      if (!(expr.name in tests)) throw new TemplateError(`unsupported test ${expr.name}`)
      return tests[expr.name] !== expr.negate
    }
    case "unary": {
      const value = evaluate(expr.value, scopes)
      return expr.op === "not" ? !truthy(value) : -Number(value)
    }
    case "ternary":
      return truthy(evaluate(expr.condition, scopes)) ? evaluate(expr.then, scopes) : expr.otherwise === undefined ? undefined : evaluate(expr.otherwise, scopes)
    case "binary": {
      if (expr.op === "and") { const left = evaluate(expr.left, scopes); return truthy(left) ? evaluate(expr.right, scopes) : left }
      if (expr.op === "or") { const left = evaluate(expr.left, scopes); return truthy(left) ? left : evaluate(expr.right, scopes) }
      const left = evaluate(expr.left, scopes)
      const right = evaluate(expr.right, scopes)
      switch (expr.op) {
        case "==": return left === right || (left == null && right == null)
        case "!=": return !(left === right || (left == null && right == null))
        case "<": return (left as number) < (right as number)
        case ">": return (left as number) > (right as number)
        case "<=": return (left as number) <= (right as number)
        case ">=": return (left as number) >= (right as number)
        case "in":
          if (typeof right === "string") return right.includes(show(left))
          if (Array.isArray(right)) return right.includes(left)
          return typeof right === "object" && right !== null && String(left) in right
        case "~": return show(left) + show(right)
        case "+": return typeof left === "number" && typeof right === "number" ? left + right : Array.isArray(left) && Array.isArray(right) ? [...left, ...right] : show(left) + show(right)
        case "-": return Number(left) - Number(right)
        case "*": return typeof left === "string" ? left.repeat(Number(right)) : Number(left) * Number(right)
        case "/": return Number(left) / Number(right)
        case "%": return Number(left) % Number(right)
      }
      throw new TemplateError(`unsupported operator ${expr.op}`)
    }
  }
}

const render = (nodes: ReadonlyArray<Node>, scopes: Array<Scope>): string => {
  let out = ""
  for (const node of nodes) {
    switch (node.n) {
      case "text": out += node.text; break
      case "output": out += show(evaluate(node.value, scopes)); break
      case "set": scopes[scopes.length - 1]!.set(node.name, evaluate(node.value, scopes)); break
      case "if": {
        const branch = node.branches.find((candidate) => truthy(evaluate(candidate.condition, scopes)))
        out += render(branch?.body ?? node.otherwise, scopes)
        break
      }
      case "for": {
        const iterable = evaluate(node.iterable, scopes)
        const items: Array<unknown> = Array.isArray(iterable) ? iterable : typeof iterable === "string" ? Array.from(iterable) : []
        if (items.length === 0) out += render(node.otherwise, scopes)
        items.forEach((item, index) => {
          const scope: Scope = new Map()
          if (node.names.length === 1) scope.set(node.names[0]!, item)
          else node.names.forEach((name, i) => scope.set(name, (item as Array<unknown>)[i]))
          scope.set("loop", {
            index: index + 1, index0: index, first: index === 0, last: index === items.length - 1, length: items.length,
            revindex: items.length - index, revindex0: items.length - index - 1
          })
          out += render(node.body, [...scopes, scope])
        })
        break
      }
    }
  }
  return out
}

export type Template = ReadonlyArray<Node>

/** Parses a template; throws TemplateError on syntax this subset does not implement. */
export const parseTemplate = (template: string): Template => parseNodes(lex(template))

/** Renders with the given globals; throws TemplateError on unsupported features met at run time. */
export const renderTemplate = (template: Template, globals: Readonly<Record<string, unknown>>): string =>
  render(template, [new Map(Object.entries(globals))])
