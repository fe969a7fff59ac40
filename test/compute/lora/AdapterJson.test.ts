/**
 * One-file adapters (`adapters export --output adapter.json` / `adapters import adapter.json`): a
 * signed F16 adapter comes back byte for byte; a changed weight or a forged signature is refused and
 * leaves nothing stored.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { AdapterDescription } from "../../../src/compute/lora/AdapterFile.js"
import { adapterMetadataFile, adapterWeightsFile, saveAdapter } from "../../../src/compute/lora/AdapterFile.js"
import { exportAdapterJson, importAdapterJson } from "../../../src/compute/lora/AdapterJson.js"
import { keyPairFromSeed } from "../../../src/content/NodeKey.js"
import { tempDir } from "../../support/TempDir.js"

const module = (inFeatures: number, outFeatures: number, rank: number, seed: number) => {
  let state = seed
  const next = () => ((state = (state * 1103515245 + 12345) >>> 0) / 2 ** 32) - 0.5
  return {
    inFeatures,
    outFeatures,
    A: Float32Array.from({ length: rank * inFeatures }, next),
    B: Float32Array.from({ length: outFeatures * rank }, next)
  }
}

const description: AdapterDescription = {
  id: "legal-encoder",
  name: "Legal vocabulary",
  description: "tiny-encoder adapted to contract language",
  version: "1.0.0",
  createdAt: "2026-11-22T10:00:00Z",
  baseModel: "tiny-encoder",
  baseModelDigest: "ab".repeat(32),
  training: { steps: 100, finalLoss: 1.25, samples: 400, duration: 12.5 },
  quality: { taskAccuracy: 0.91 },
  sharing: { public: true, domain: "legal", license: "MIT" }
}

const publisher = keyPairFromSeed(new Uint8Array(32).fill(7))
const signer = { keyId: "alice", publicKey: publisher.publicKey, sign: (message: string) => publisher.sign(message) }

const edited = (
  file: string,
  edit: (json: { weights: Record<string, { lora_A: Array<number> }>; description: string }) => void
) => {
  const json = JSON.parse(fs.readFileSync(file, "utf8")) as {
    weights: Record<string, { lora_A: Array<number> }>
    description: string
  }
  edit(json)
  const target = `${file}.edited.json`
  fs.writeFileSync(target, JSON.stringify(json))
  return target
}

describe("AdapterJson", () => {
  it.effect("exports a signed F16 adapter to one JSON file and imports it back byte for byte", () =>
    Effect.gen(function*() {
      const work = tempDir("adapter-json-")
      const source = path.join(work, "source")
      const weights = {
        rank: 4,
        alpha: 8,
        modules: { "layers.1.intermediate": module(192, 512, 4, 1), "layers.0.query": module(192, 192, 4, 2) }
      }
      yield* saveAdapter(source, description, weights, { signer, dtype: "F16" })
      const file = path.join(work, "adapter.json")
      yield* exportAdapterJson(source, file)
      const target = path.join(work, "target")
      const imported = yield* importAdapterJson(file, () => target)
      expect(imported.signature?.keyId).toBe("alice")
      expect(
        fs.readFileSync(path.join(target, adapterWeightsFile)).equals(
          fs.readFileSync(path.join(source, adapterWeightsFile))
        )
      ).toBe(true)
      const metadata = (directory: string): unknown =>
        JSON.parse(fs.readFileSync(path.join(directory, adapterMetadataFile), "utf8"))
      expect(metadata(target)).toEqual(metadata(source))

      const changedWeight = edited(file, (json) => {
        const first = Object.values(json.weights)[0]!
        first.lora_A[0] = first.lora_A[0]! + 0.5
      })
      const refused = yield* Effect.flip(importAdapterJson(changedWeight, () => path.join(work, "changed")))
      expect(refused.message).toMatch(/its weights have sha256 [0-9a-f]{64}, but checksum says [0-9a-f]{64}$/)
      expect(fs.existsSync(path.join(work, "changed"))).toBe(false)

      const forged = edited(file, (json) => {
        json.description = "something else"
      })
      const unsigned = yield* Effect.flip(importAdapterJson(forged, () => path.join(work, "forged")))
      expect(unsigned.message).toMatch(/the signature by key alice does not verify/)
      expect(fs.existsSync(path.join(work, "forged"))).toBe(false)
      expect(yield* Effect.flip(importAdapterJson(file, () => target))).toMatchObject({
        message: expect.stringMatching(/is already stored here$/)
      })
    }))
})
