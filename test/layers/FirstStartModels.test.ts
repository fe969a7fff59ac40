/**
 * The first-start publication as the node runs it, with its child process (FirstStartProcess.ts) and
 * the node's own services on a data dir: what the child prepared is signed and published by this
 * process, a model the child cannot quantize ends the run with the pipeline's own line and its
 * optimizer job recorded as failed, and what was published before it stays.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { Optimizer } from "../../src/actors/optimizer/Optimizer.js"
import { Registry } from "../../src/actors/registry/RegistryService.js"
import { NodeKey } from "../../src/content/NodeKey.js"
import type { CatalogEntry } from "../../src/layers/FirstStartModels.js"
import { FIRST_START_VERSION, firstStartCatalog, publishFirstStartModels } from "../../src/layers/FirstStartModels.js"
import { nodeServices } from "../../src/layers/Node.js"
import { tempDir } from "../support/TempDir.js"

describe("the first-start publication", () => {
  it(
    "publishes what its child prepared, and stops at a model it cannot quantize, the job recorded as failed",
    async () => {
      const dataDir = tempDir("first-start-layer-")
      const encoder = firstStartCatalog().find((entry) => entry.id === "tiny-encoder")!
      const broken = path.join(dataDir, "broken.onnx")
      fs.writeFileSync(broken, new Uint8Array([8, 1, 2, 3]))
      const catalog: ReadonlyArray<CatalogEntry> = [
        encoder,
        { ...encoder, id: "broken-int8", precision: "INT8", model: broken, companions: [], family: "broken" }
      ]
      const outcome = await Effect.runPromise(
        Effect.gen(function*() {
          const failure = yield* Effect.flip(publishFirstStartModels(catalog))
          const registry = yield* Registry
          const key = yield* NodeKey
          const published = yield* registry.get("tiny-encoder", FIRST_START_VERSION)
          const missing = yield* Effect.either(registry.get("broken-int8", FIRST_START_VERSION))
          const job = yield* Effect.flatMap(Optimizer, (optimizer) => optimizer.job("first-start-broken-int8"))
          // Run again: the published model is left as it is, the broken one fails the same way.
          const again = yield* Effect.flip(publishFirstStartModels(catalog))
          return { failure, published, missing, job, again, key }
        }).pipe(
          Effect.scoped,
          Effect.provide(nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" }))
        )
      )
      expect(outcome.failure.message).toBe("not an ONNX model: invalid protobuf tag at byte 2")
      expect(outcome.job.status).toBe("failed")
      expect(outcome.job.spec?.model.size).toBe(4)
      expect(outcome.missing._tag).toBe("Left")
      expect(outcome.again.message).toBe(outcome.failure.message)
      // Signed here with the node's key over what the child described (the registry checks the signature).
      expect(outcome.published.keyId).toBe(outcome.key.nodeId)
      expect(fs.existsSync(path.join(dataDir, "first-start"))).toBe(false)
    },
    60_000
  )
})
