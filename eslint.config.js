// Lint and format in one pass: typescript-eslint's recommended rules, the house rules STYLE.md asks
// for, and dprint (through @effect/eslint-plugin, as the Effect repository formats itself) as the formatter.
import effect from "@effect/eslint-plugin"
import tseslint from "typescript-eslint"

/** The formatter's settings: the house style (no semicolons, double quotes, two spaces). */
const dprint = {
  indentWidth: 2,
  lineWidth: 120,
  semiColons: "asi",
  quoteStyle: "alwaysDouble",
  trailingCommas: "never",
  operatorPosition: "maintain",
  "arrowFunction.useParentheses": "force"
}

/** Syntax STYLE.md bans, each with the reason printed next to the offending line. */
const banned = [
  {
    selector: "CallExpression[callee.property.name='push'] > SpreadElement",
    message: "push(...items) overflows the stack on long arrays: append in a loop (or concat) instead"
  },
  {
    selector: "TSAsExpression > TSAsExpression[typeAnnotation.type='TSUnknownKeyword']",
    message: "`as unknown as` hides a type error: decode with Schema, narrow with a guard, or fix the type"
  }
]

export default tseslint.config(
  // The *Wasm.ts kernels are written by tools/assemble_wasm.mjs, and a test checks them byte for byte.
  { ignores: ["dist/**", "node_modules/**", "src/**/*Wasm.ts", "**/*.js", "**/*.mjs", "**/*.cjs", "test/fixtures/**"] },
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts"],
    plugins: { "@effect": effect },
    rules: {
      "@effect/dprint": ["error", { config: dprint }],
      "no-restricted-syntax": ["error", ...banned],
      // tsc's noUnusedLocals/noUnusedParameters already report these, with the compiler's own rules.
      "@typescript-eslint/no-unused-vars": "off",
      // Non-null assertions after an index the code just checked are how noUncheckedIndexedAccess is lived with.
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-explicit-any": "error",
      // import("x").T stays allowed in annotations: it names a type of a module that is loaded lazily.
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "separate-type-imports", disallowTypeAnnotations: false }]
    }
  },
  {
    // Tests and benches may build deliberately broken values, and time or load code the product never does.
    files: ["test/**/*.ts", "bench/**/*.ts"],
    rules: { "no-restricted-syntax": ["error", banned[0]], "@typescript-eslint/no-explicit-any": "off" }
  }
)
