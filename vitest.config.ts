import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/slow/**", "node_modules/**"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Test files share their worker's loaded modules (Effect, onnxruntime, SQLite, the sources): reloaded
    // for every file, they cost over a second each, 130 s of a run. A file that mocks a module resets
    // them first (test/node/AtomicFile.test.ts).
    isolate: false,
    setupFiles: ["./test/support/EffectVitestMethods.ts"],
    // Two forks on two cores: many files wait on child processes, sockets and voting windows, so a
    // second fork fills the time one spends waiting (vitest's default is one fork per core less one).
    maxWorkers: 2,
    minWorkers: 1,
    // Effect's packages prebundled by vite's optimizer (one file each instead of hundreds of modules):
    // every test file's fork loads them afresh, and collecting a file took most of a second less.
    // All of them together, so that one copy of effect is loaded; msgpackr loads a native addon.
    deps: {
      optimizer: {
        ssr: {
          enabled: true,
          include: [
            "effect",
            "@effect/cli",
            "@effect/cluster",
            "@effect/experimental",
            "@effect/opentelemetry",
            "@effect/platform",
            "@effect/platform-node",
            "@effect/printer",
            "@effect/printer-ansi",
            "@effect/rpc",
            "@effect/sql",
            "@effect/typeclass",
            "@effect/vitest",
            "@effect/workflow"
          ],
          exclude: ["msgpackr", "msgpackr-extract"]
        }
      }
    },
    reporters: ["default", "./test/support/SummaryLine.ts"]
  }
})
