import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/slow/**", "node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Two forks on two cores: many files wait on child processes, sockets and voting windows, so a
    // second fork fills the time one spends waiting (vitest's default is one fork per core less one).
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ["default", "./test/support/SummaryLine.ts"]
  }
})
