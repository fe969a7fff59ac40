/**
 * Adapters in the inference service: a model loaded with adapter slots runs any adapter of its base
 * model per call, without reloading; each call equals the adapter merged into the weights, no adapter
 * equals the base model, and an adapter of another base model is refused in one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { Inference } from "../../../src/compute/inference/Inference.js"
import { readModelFolder } from "../../../src/compute/inference/ModelFolder.js"
import { mergeAdapter } from "../../../src/compute/lora/GraphLora.js"
import { readModel, writeModel } from "../../../src/compute/onnx/OnnxModel.js"
import { randomLoraWeights } from "../../support/SdkModels.js"

const randomAdapter = (modelBytes: Uint8Array, seed: number, rank: number, every: number) => {
  const weights = randomLoraWeights(modelBytes, seed, rank, every)
  const baseModelDigest = crypto.createHash("sha256").update(modelBytes).digest("hex")
  return { metadata: { id: `random-${seed}`, baseModelDigest }, weights }
}

describe("adapters in the inference service", () => {
  it.scoped(
    "swap per call on one session: each equals its merged model, none equals the base; another base model's is refused",
    () =>
      Effect.gen(function*() {
        const inference = yield* Inference
        const source = yield* readModelFolder("models/reference/tiny-lm")
        const base = yield* inference.loadModel(source)
        const slotted = yield* inference.loadModel({ ...source, adapterSlots: { rank: 4 } })
        const first = randomAdapter(source.model, 1, 4, 1)
        const second = randomAdapter(source.model, 2, 2, 3)
        const merged = (adapter: typeof first) =>
          inference.loadModel({ ...source, model: writeModel(mergeAdapter(readModel(source.model), adapter.weights)) })
        const prompt = "The whale rose from the sea and"
        const options = { maxNewTokens: 12, temperature: 0 }
        const text = (handle: typeof base, adapter?: typeof first) =>
          Effect.map(inference.generate(handle, prompt, { ...options, adapter }), (result) => result.text)

        const baseText = yield* text(base)
        expect(yield* text(slotted)).toBe(baseText)
        const firstText = yield* text(slotted, first)
        expect(firstText).toBe(yield* text(yield* merged(first)))
        expect(firstText).not.toBe(baseText)
        const secondText = yield* text(slotted, second)
        expect(secondText).toBe(yield* text(yield* merged(second)))
        expect(yield* text(slotted)).toBe(baseText)

        const encoder = yield* readModelFolder("models/reference/tiny-encoder")
        const foreign = randomAdapter(encoder.model, 3, 2, 2)
        const refused = yield* Effect.flip(inference.generate(slotted, prompt, { ...options, adapter: foreign }))
        expect(refused.message).toMatch(
          /^adapter random-3 was made for base model [0-9a-f]{64}, not .*model\.onnx \([0-9a-f]{64}\)$/
        )
        const unslotted = yield* Effect.flip(inference.generate(base, prompt, { ...options, adapter: first }))
        expect(unslotted.message).toMatch(
          /was loaded without adapter slots: load it with adapterSlots to run adapter random-1$/
        )

        // Embeddings too: the encoder with slots and an adapter equals the merged encoder.
        const slottedEncoder = yield* inference.loadModel({ ...encoder, adapterSlots: { rank: 2 } })
        const mergedEncoder = yield* inference.loadModel({
          ...encoder,
          model: writeModel(mergeAdapter(readModel(encoder.model), foreign.weights))
        })
        const texts = ["a young dog", "the price of tea"]
        const viaSlots = yield* inference.embedBatch(slottedEncoder, texts, { adapter: foreign })
        const viaMerge = yield* inference.embedBatch(mergedEncoder, texts)
        viaSlots.forEach((vector, row) =>
          vector.forEach((value, index) => expect(Math.abs(value - viaMerge[row]![index]!)).toBeLessThan(1e-5))
        )
      }).pipe(Effect.provide(Inference.node)),
    60_000
  )
})
