/**
 * One side of `bench -- embed` in a process of its own, so that the peak RSS it prints is that side's
 * alone: ours (the Inference service on onnxruntime-node) or transformers.js, each side loading only its
 * own library, embedding the bench's texts or generating its tokens twice. Prints one line of JSON:
 * { peakRssMb }.
 *
 *   node --import tsx bench/support/EmbedProcess.ts ours|transformers.js embed|generate
 */
import { EMBED_TEXTS, NEW_TOKENS, PROMPT } from "./EmbedWork.js"

const [side, work] = process.argv.slice(2)
if ((side !== "ours" && side !== "transformers.js") || (work !== "embed" && work !== "generate")) {
  console.error("usage: EmbedProcess.ts ours|transformers.js embed|generate")
  process.exit(2)
}

const ours = async () => {
  const { Effect } = await import("effect")
  const { Inference } = await import("../../src/compute/inference/Inference.js")
  await Effect.runPromise(
    Effect.gen(function*() {
      const inference = yield* Inference
      if (work === "embed") {
        const encoder = yield* inference.loadModel("models/reference/tiny-encoder")
        for (let round = 0; round < 2; round++) yield* inference.embedBatch(encoder, EMBED_TEXTS, { batchSize: 32 })
      } else {
        const lm = yield* inference.loadModel("models/reference/tiny-lm")
        for (let round = 0; round < 2; round++) {
          yield* inference.generate(lm, PROMPT, { maxNewTokens: NEW_TOKENS, temperature: 0, ignoreEos: true })
        }
      }
    }).pipe(Effect.scoped, Effect.provide(Inference.node))
  )
}

const theirs = async () => {
  const { env, pipeline } = await import("@huggingface/transformers")
  env.allowRemoteModels = false
  env.localModelPath = "models/reference"
  if (work === "embed") {
    const extractor = await pipeline("feature-extraction", "tiny-encoder", { dtype: "fp32" })
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < EMBED_TEXTS.length; i += 32) {
        await extractor(EMBED_TEXTS.slice(i, i + 32), { pooling: "mean", normalize: true })
      }
    }
    await extractor.dispose()
  } else {
    const generator = await pipeline("text-generation", "tiny-lm", { dtype: "fp32" })
    for (let round = 0; round < 2; round++) {
      await generator(PROMPT, {
        max_new_tokens: NEW_TOKENS,
        min_new_tokens: NEW_TOKENS,
        do_sample: false,
        return_full_text: false
      })
    }
    await generator.dispose()
  }
}

await (side === "ours" ? ours() : theirs())
console.log(JSON.stringify({ peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }))
