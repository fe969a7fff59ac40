// `npm run test:unit` and `npm run test:watch`: the suite without the files that start processes
// (test/support/TestSplit.ts), for feedback in seconds while editing.
import { fileURLToPath } from "node:url"
import { defineConfig, mergeConfig } from "vitest/config"
import { processTests } from "./test/support/TestSplit.js"
import base from "./vitest.config.js"

export default mergeConfig(
  base,
  defineConfig({ test: { exclude: processTests(fileURLToPath(new URL(".", import.meta.url))) } })
)
