/**
 * The YAML library's two entry points the models config uses, in a module of their own that
 * ModelsConfig.ts loads by dynamic import on the first file it reads or writes. (Imported statically
 * here, the CommonJS package keeps its named exports in the CLI's bundle; a dynamic import of the
 * package itself would give only its default export there.)
 */
export { parse, parseDocument } from "yaml"
