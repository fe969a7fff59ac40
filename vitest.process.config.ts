// `npm run test:process`: only the files that start processes (test/support/TestSplit.ts).
import { fileURLToPath } from "node:url"
import { defineConfig, mergeConfig } from "vitest/config"
import { processTests } from "./test/support/TestSplit.js"
import base from "./vitest.config.js"

const process = defineConfig({ test: { include: processTests(fileURLToPath(new URL(".", import.meta.url))) } })
// The include list replaces the base one (mergeConfig would append to it).
export default mergeConfig({ ...base, test: { ...base.test, include: [] } }, process)
