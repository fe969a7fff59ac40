import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/slow/**/*.test.ts"],
    testTimeout: 600_000,
    hookTimeout: 60_000,
    pool: "forks",
    reporters: ["default", "./test/support/SummaryLine.ts"]
  }
})
