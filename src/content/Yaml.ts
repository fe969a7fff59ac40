/**
 * The YAML parser behind a module of our own, which ModelsConfig loads on demand: a dynamic import of
 * the package itself would give a bundled CommonJS module's default export only.
 */
export { parse, parseDocument } from "yaml"
