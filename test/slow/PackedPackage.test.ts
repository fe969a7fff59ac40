/**
 * The package as a user gets it: built, packed with `npm pack`, unpacked into a fresh project as npm
 * would install it (its dependencies linked from this checkout's node_modules, since installing them
 * again from the registry would only rebuild the same native modules), then used from outside.
 *
 * A TypeScript program composes its own runtime from the public layers (blob store, trust store,
 * onnxruntime-node inference, the ModelLoader) and embeds with an InferenceSession; it is type-checked
 * against the packed .d.ts files with the strictest settings. A plain JavaScript script does the same
 * through `edge-net/promise`. Their embeddings agree, and a deep import of an internal module is refused.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { tempDir } from "../support/TempDir.js"

const ROOT = path.resolve(import.meta.dirname, "../..")
const REFERENCE = path.join(ROOT, "models", "reference", "tiny-encoder")

/** A command's stdout; a failure throws with what the command printed. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string) => {
  try {
    return execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 240_000 })
  } catch (error) {
    const { stderr, stdout } = error as { stdout?: string; stderr?: string }
    throw new Error(`${command} ${args.join(" ")} failed:\n${stdout ?? ""}${stderr ?? ""}`)
  }
}

/** Builds and packs this checkout; returns the tarball's path. */
const pack = (destination: string) => {
  run("npm", ["run", "build"], ROOT)
  const output = run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", destination], ROOT)
  const [packed] = JSON.parse(output.slice(output.indexOf("["))) as Array<{ filename: string }>
  return path.join(destination, packed!.filename)
}

/** A project with the tarball unpacked as node_modules/edge-net and every dependency beside it. */
const projectWith = (tarball: string) => {
  const project = tempDir("packed-consumer-")
  const modules = path.join(project, "node_modules")
  fs.mkdirSync(path.join(modules, "edge-net"), { recursive: true })
  run("tar", ["-xzf", tarball, "-C", path.join(modules, "edge-net"), "--strip-components=1"], project)
  for (const entry of fs.readdirSync(path.join(ROOT, "node_modules"))) {
    if (entry === "edge-net" || entry.startsWith(".")) continue
    fs.symlinkSync(path.join(ROOT, "node_modules", entry), path.join(modules, entry))
  }
  fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "consumer", type: "module" }))
  return project
}

const consumerTs = `
import { Effect, Layer } from "effect"
import * as path from "node:path"
import { Inference, InferenceSession, ModelLoader } from "edge-net"
import { BlobStore, buildManifest, keyPairFromSeed, saveManifest, TrustStore } from "edge-net/models"

const [root, reference] = process.argv.slice(2) as [string, string]
const pair = keyPairFromSeed(new Uint8Array(32).fill(7))
const signer = { keyId: "consumer", publicKey: pair.publicKey, sign: (message: string) => pair.sign(message) }

// Our own runtime: only the content store, the trust store, inference and the loader.
const runtime = ModelLoader.layer({ maxModels: 1 }).pipe(
  Layer.provideMerge(
    Layer.mergeAll(BlobStore.layer({ root }), TrustStore.Default(path.join(root, "keys")), Inference.node)
  )
)

const program = Effect.gen(function*() {
  const store = yield* BlobStore
  const manifest = yield* buildManifest({
    files: ["onnx/model.onnx", "tokenizer.json", "tokenizer_config.json", "config.json"].map((file) =>
      path.join(reference, file)
    ),
    id: "tiny-encoder",
    name: "tiny-encoder",
    version: "1.0.0",
    type: "embedding",
    license: "MIT",
    expiresInDays: 30,
    signer
  })
  yield* saveManifest(store.root, manifest)
  const loader = yield* ModelLoader
  const cached = yield* loader.getCachedModels()
  const session = yield* InferenceSession.create("tiny-encoder")
  const vector: Float32Array = yield* session.embed("edge networks serve models")
  return { cached: cached.map((model) => model.id), vector: Array.from(vector) }
})

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(runtime))).then(
  (result) => console.log(JSON.stringify(result)),
  (error: unknown) => {
    console.error(String(error))
    process.exit(1)
  }
)
`

const consumerJs = `
import * as path from "node:path"
import { ModelLoader } from "edge-net/promise"

const [root] = process.argv.slice(2)
const loader = new ModelLoader({ cacheDir: root, configFile: path.join(root, "absent.yaml"), registry: false })
try {
  const session = await loader.load("tiny-encoder")
  const vector = await session.embed("edge networks serve models")
  console.log(JSON.stringify({ vector: Array.from(vector) }))
} finally {
  await loader.close()
}
`

const tsconfig = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    types: ["node"],
    outDir: "out"
  },
  include: ["consumer.ts"]
}

describe("the packed package", () => {
  it(
    "installs into a fresh project and runs from TypeScript (own runtime) and plain JavaScript (Promise facade)",
    () => {
      const tarball = pack(tempDir("packed-tarball-"))
      const listing = run("tar", ["-tzf", tarball], ROOT).split("\n")
      // What ships: the compiled entry points with their declarations, and nothing of the sources or tests.
      for (
        const entry of [
          "index",
          "events/index",
          "compute/index",
          "content/index",
          "layers/EconomyEntry",
          "rpc/index",
          "sdk/Promise"
        ]
      ) {
        expect(listing).toContain(`package/dist/${entry}.js`)
        expect(listing).toContain(`package/dist/${entry}.d.ts`)
      }
      expect(listing.filter((file) => file.startsWith("package/src/") || file.startsWith("package/test/"))).toEqual([])

      const project = projectWith(tarball)
      const cache = tempDir("packed-cache-")
      fs.writeFileSync(path.join(project, "consumer.ts"), consumerTs)
      fs.writeFileSync(path.join(project, "tsconfig.json"), JSON.stringify(tsconfig))
      run(process.execPath, [path.join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "."], project)
      const typed = JSON.parse(run(process.execPath, ["out/consumer.js", cache, REFERENCE], project)) as {
        cached: Array<string>
        vector: Array<number>
      }
      expect(typed.cached).toEqual(["tiny-encoder"])
      expect(typed.vector.length).toBeGreaterThan(16)

      fs.writeFileSync(path.join(project, "consumer.mjs"), consumerJs)
      const plain = JSON.parse(run(process.execPath, ["consumer.mjs", cache], project)) as { vector: Array<number> }
      expect(plain.vector).toHaveLength(typed.vector.length)
      plain.vector.forEach((value, i) => expect(value).toBeCloseTo(typed.vector[i]!, 6))

      // Only the exported entry points are reachable.
      fs.writeFileSync(path.join(project, "deep.mjs"), `await import("edge-net/dist/cli/Main.js")`)
      expect(() => run(process.execPath, ["deep.mjs"], project)).toThrow(/ERR_PACKAGE_PATH_NOT_EXPORTED/)
    },
    300_000
  )
})
