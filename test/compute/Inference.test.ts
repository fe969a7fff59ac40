import { describe, expect, it, layer } from "@effect/vitest"
import { env, pipeline } from "@huggingface/transformers"
import { Chunk, Context, Effect, Exit, Layer, Metric, MetricState, Random, Stream } from "effect"
import * as fc from "fast-check"
import * as fs from "node:fs"
import * as path from "node:path"
import {
  type ChatMessage,
  type ChatTemplateContext,
  ChatTemplateError,
  chatTemplateOf,
  compileChatTemplate,
  defaultChatPrompt,
  renderChatPrompt
} from "../../src/compute/inference/ChatTemplate.js"
import { StopFilter } from "../../src/compute/inference/Generation.js"
import { Inference, type ModelHandle } from "../../src/compute/inference/Inference.js"
import { cosineSimilarity, l2Normalize, lengthBuckets, meanPoolRow } from "../../src/compute/inference/Pooling.js"
import {
  applyRepetitionPenalty,
  argmax,
  drawIndex,
  samplingDistribution,
  selectToken,
  topKCandidates,
  topPCount
} from "../../src/compute/inference/Sampling.js"
import { tempDir } from "../support/TempDir.js"

const REFERENCE = path.resolve("models/reference")
const LM = path.join(REFERENCE, "tiny-lm")
const ENCODER = path.join(REFERENCE, "tiny-encoder")
const haveModels = [LM, ENCODER].every((dir) =>
  fs.existsSync(path.join(dir, "tokenizer.json")) && fs.existsSync(path.join(dir, "onnx", "model.onnx"))
)

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number) => {
  expect(actual.length).toBe(expected.length)
  let worst = 0
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!))
  expect(worst).toBeLessThan(tolerance)
}

/** A counter's count in the process's metrics (what /metrics renders), 0 before its first update. */
const counted = (name: string, tags: Readonly<Record<string, string>>) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs
      .filter((pair) =>
        pair.metricKey.name === name &&
        Object.entries(tags).every(([key, value]) =>
          pair.metricKey.tags.some((tag) => tag.key === key && tag.value === value)
        )
      )
      .reduce(
        (sum, pair) => sum + (MetricState.isCounterState(pair.metricState) ? Number(pair.metricState.count) : 0),
        0
      ))

const norm = (vector: ArrayLike<number>) => Math.sqrt(Array.from(vector).reduce((sum, x) => sum + x * x, 0))

describe("sampling", () => {
  const logits = Float32Array.of(1.5, 3.2, -0.4, 3.1, 0)

  it("is argmax at temperature 0, whatever the random number", () => {
    for (const uniform of [0, 0.5, 0.999]) {
      expect(selectToken(logits, [], { temperature: 0 }, uniform)).toBe(argmax(logits))
    }
    expect(argmax(logits)).toBe(1)
  })

  it("penalizes repeated tokens as HF does: positive logits divided, negative multiplied, once per token", () => {
    expect(Array.from(applyRepetitionPenalty(Float32Array.of(2, -2, 1), [0, 1, 0, 1], 2))).toEqual([1, -4, 1])
    // Greedy with the penalty moves off the repeated favourite.
    expect(selectToken(logits, [1], { temperature: 0, repetitionPenalty: 1.3 }, 0)).toBe(3)
  })

  it("keeps the smallest set of tokens whose probabilities reach top-p", () => {
    expect(topPCount([0.5, 0.3, 0.15, 0.05], 0.8)).toBe(2)
    expect(topPCount([0.5, 0.3, 0.15, 0.05], 0.81)).toBe(3)
    expect(topPCount([0.5, 0.3, 0.15, 0.05], 0.5)).toBe(1)
    expect(topPCount([0.5, 0.3, 0.15, 0.05], 0.2)).toBe(1)
    expect(topPCount([0.5, 0.3, 0.15, 0.05], 1)).toBe(4)
    const distribution = samplingDistribution(Float32Array.from([0.5, 0.3, 0.15, 0.05], Math.log), [], {
      temperature: 1,
      topP: 0.8
    })
    expect(distribution.map((entry) => entry.id)).toEqual([0, 1])
    close(distribution.map((entry) => entry.probability), [0.625, 0.375], 1e-6)
  })

  it("keeps the top k tokens and their ties, and sharpens with a low temperature", () => {
    expect(topKCandidates(Float32Array.of(1, 3, 2, 3), 1)).toEqual([1, 3])
    expect(topKCandidates(Float32Array.of(1, 3, 2, 0), 2)).toEqual([1, 2])
    const cold = samplingDistribution(logits, [], { temperature: 0.1 })
    const warm = samplingDistribution(logits, [], { temperature: 2 })
    expect(cold[0]!.probability).toBeGreaterThan(warm[0]!.probability)
    expect(samplingDistribution(logits, [], { temperature: 1, topK: 2 }).map((entry) => entry.id)).toEqual([1, 3])
    // The heap selection agrees with a full sort on a large vocabulary.
    const large = Float32Array.from({ length: 5000 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453 % 7)
    const sorted = Array.from(large.keys()).sort((a, b) => large[b]! - large[a]! || a - b)
    expect(topKCandidates(large, 40)).toEqual(sorted.slice(0, 40))
  })

  it("draws by cumulative weight", () => {
    expect(drawIndex([0.2, 0.5, 0.3], 0)).toBe(0)
    expect(drawIndex([0.2, 0.5, 0.3], 0.69)).toBe(1)
    expect(drawIndex([0.2, 0.5, 0.3], 0.71)).toBe(2)
    expect(drawIndex([2, 5, 3], 0.999)).toBe(2)
  })
})

describe("pooling", () => {
  it("averages the hidden states of a row's tokens, not its padding, then normalizes", () => {
    // batch 2, seq 3, dim 2; the second row has one padded position.
    const hidden = Float32Array.of(1, 2, 3, 4, 5, 6, 2, 0, 4, 0, 100, 100)
    const first = meanPoolRow(hidden, 0, 3, 2, 3)
    const second = meanPoolRow(hidden, 1, 3, 2, 2)
    expect(Array.from(first!)).toEqual([3, 4])
    expect(Array.from(second!)).toEqual([3, 0])
    expect(Array.from(l2Normalize(first!))).toEqual(Array.from(Float32Array.of(0.6, 0.8)))
    expect(cosineSimilarity([1, 0], [0, 2])).toBe(0)
    expect(cosineSimilarity([1, 1], [2, 2])).toBeCloseTo(1, 12)
  })

  it("buckets items of similar length and covers every item once", () => {
    // A run costs more than any padding here: the fewest runs of at most 2, in length order.
    expect(lengthBuckets([9, 2, 7, 2, 30, 8], 2, 1000)).toEqual([[1, 3], [2, 5], [0, 4]])
    expect(lengthBuckets([3, 1], 10, 1000)).toEqual([[1, 0]])
  })

  it("cuts a batch where its padding would cost more than another run", () => {
    // Four short and four long items: one run pads the short ones to 20 (8 x 20 = 160 tokens + 5),
    // two runs cost 4 x 2 + 4 x 20 + 2 x 5 = 98.
    const lengths = [2, 20, 2, 20, 2, 20, 2, 20]
    expect(lengthBuckets(lengths, 32, 5)).toEqual([[0, 2, 4, 6], [1, 3, 5, 7]])
    // With a run as dear as 100 tokens, one batch is cheaper (260 against 288).
    expect(lengthBuckets(lengths, 32, 100)).toEqual([[0, 2, 4, 6, 1, 3, 5, 7]])
    // Equal lengths fill batches of the batch size, even when a run costs nothing.
    expect(lengthBuckets([7, 7, 7, 7, 7], 4, 0)).toEqual([[0], [1, 2, 3, 4]])
  })

  it("finds the cheapest split of the sorted items (checked against every split)", () => {
    const cost = (lengths: ReadonlyArray<number>, buckets: ReadonlyArray<ReadonlyArray<number>>, overhead: number) =>
      buckets.reduce(
        (total, bucket) => total + overhead + bucket.length * Math.max(...bucket.map((i) => lengths[i]!)),
        0
      )
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }),
      fc.integer({ min: 1, max: 6 }),
      fc.integer({ min: 0, max: 30 }),
      (lengths, batchSize, overhead) => {
        const buckets = lengthBuckets(lengths, batchSize, overhead)
        expect(buckets.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i))
        expect(buckets.every((bucket) => bucket.length <= batchSize)).toBe(true)
        // Every cut of the length order into runs of at most batchSize costs at least as much.
        const sorted = [...lengths].sort((a, b) => a - b)
        let cheapest = Number.POSITIVE_INFINITY
        for (let cuts = 0; cuts < 1 << (sorted.length - 1); cuts++) {
          let total = 0
          let first = 0
          let fits = true
          for (let i = 1; i <= sorted.length; i++) {
            if (i < sorted.length && (cuts & (1 << (i - 1))) === 0) continue
            if (i - first > batchSize) fits = false
            total += overhead + (i - first) * sorted[i - 1]!
            first = i
          }
          if (fits) cheapest = Math.min(cheapest, total)
        }
        expect(cost(lengths, buckets, overhead)).toBe(cheapest)
      }
    ))
  })
})

describe("stop sequences", () => {
  it("hold back a possible start of a stop string and cut at the first one", () => {
    const filter = new StopFilter(["</end>", "STOP"])
    expect(filter.push("Hello </")).toEqual({ release: "Hello ", stopped: false })
    expect(filter.push("b> and ST")).toEqual({ release: "</b> and ", stopped: false })
    expect(filter.push("OP here")).toEqual({ release: "", stopped: true })
    const other = new StopFilter(["\n\n"])
    expect(other.push("a\n")).toEqual({ release: "a", stopped: false })
    expect(other.end()).toBe("\n")
  })
})

describe("chat templates", () => {
  const messages = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Hi there" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Bye" }
  ]
  // Templates as tokenizer_config.json files carry them (String.raw: `\n` inside a Jinja string literal is Jinja's escape).
  const chatml = String
    .raw`{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`
  const qwen = String.raw`{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant") %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
`
  const llama2 = String
    .raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`
  const llama3 = String
    .raw`{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}`
  // Block tags on lines of their own: trim_blocks drops the newline after each, an output tag keeps its own.
  const zephyr = String.raw`{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}`
  const render = (source: string, context: ChatTemplateContext, turns: ReadonlyArray<ChatMessage> = messages) =>
    renderChatPrompt(compileChatTemplate(source), turns, context)

  it("renders ChatML and Qwen's template, with and without the generation prompt", () => {
    const turns =
      "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    const chatmlPrompt = `<|im_start|>system\nYou are terse.<|im_end|>\n${turns}<|im_start|>assistant\n`
    expect(render(chatml, { add_generation_prompt: true })).toBe(chatmlPrompt)
    expect(render(chatml, { add_generation_prompt: false })).toBe(
      `<|im_start|>system\nYou are terse.<|im_end|>\n${turns}`
    )
    // add_generation_prompt is on unless the caller says otherwise.
    expect(render(chatml, {})).toBe(chatmlPrompt)
    expect(render(qwen, {})).toBe(chatmlPrompt)
    expect(render(qwen, { add_generation_prompt: false }, messages.slice(1))).toBe(
      `<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n${turns}`
    )
  })

  it("renders Llama 2's and Llama 3's templates with the model's bos and eos tokens", () => {
    expect(render(llama2, { bos_token: "<s>", eos_token: "</s>" })).toBe(
      "<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s><s>[INST] Bye [/INST]"
    )
    const header = (role: string) => `<|start_header_id|>${role}<|end_header_id|>\n\n`
    expect(
      render(llama3, { bos_token: "<|begin_of_text|>", eos_token: "<|eot_id|>" }, [{
        role: "user",
        content: "  Hi there\n"
      }])
    ).toBe(
      `<|begin_of_text|>${header("user")}Hi there<|eot_id|>${header("assistant")}`
    )
  })

  it("applies HF's trim_blocks and lstrip_blocks", () => {
    expect(render(zephyr, { eos_token: "</s>" })).toBe(
      "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\nHello.</s>\n<|user|>\nBye</s>\n<|assistant|>\n"
    )
  })

  it("says in one line what is wrong with a template that does not parse or raises", () => {
    for (
      const broken of [
        "{% if %}x{% endif %}",
        "{{ messages[0]['content'] ",
        "{% for message in messages %}{{ message.content }}"
      ]
    ) {
      const compiled = compileChatTemplate(broken)
      expect(() => compiled.render(messages, {}), broken).toThrow(ChatTemplateError)
      expect(() => compiled.render(messages, {}), broken).toThrow(/^chat_template does not parse: [^\n]+$/)
    }
    expect(() => render("{% if %}", {})).toThrow("chat_template does not parse: Unexpected token: CloseStatement")
    // Two user turns in a row: Llama 2's template refuses them with raise_exception.
    expect(() => render(llama2, {}, [messages[1]!, messages[3]!])).toThrow(
      new ChatTemplateError("chat_template: Conversation roles must alternate user/assistant/user/assistant/...")
    )
    expect(() => render("{{ messages | no_such_filter }}", {})).toThrow(/^chat_template: .*no_such_filter$/)
  })

  it("uses the default template when the model has none", () => {
    expect(renderChatPrompt(undefined, messages.slice(1, 2), {})).toBe("<|user|>\nHi there\n<|assistant|>\n")
    expect(defaultChatPrompt(messages.slice(0, 1), false)).toBe("<|system|>\nYou are terse.\n")
  })

  it("takes the default template of a tokenizer_config.json that names several", () => {
    expect(chatTemplateOf({ chat_template: chatml })).toBe(chatml)
    expect(chatTemplateOf({ chat_template: [{ name: "tool_use", template: "t" }, { name: "default", template: "d" }] }))
      .toBe("d")
    expect(chatTemplateOf({ chat_template: [{ name: "rag", template: "r" }] })).toBe("r")
    expect(chatTemplateOf({})).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------------------------------
// The service, on the reference models, with both backends.

class Models
  extends Context.Tag("test/Models")<Models, { readonly lm: ModelHandle; readonly encoder: ModelHandle }>()
{}

const modelsLayer = Layer.scoped(
  Models,
  Effect.gen(function*() {
    const inference = yield* Inference
    return { lm: yield* inference.loadModel(LM), encoder: yield* inference.loadModel(ENCODER) }
  })
)

const SIMILAR: ReadonlyArray<readonly [string, string, string]> = [
  ["a dog is a domestic animal", "a puppy is a young dog", "the tax rate of the federal treasury"],
  ["a domesticated carnivorous mammal", "a carnivorous mammal kept as a pet", "a musical instrument with strings"],
  ["a feeling of great happiness", "the feeling of being happy and glad", "a large vessel that carries cargo by sea"],
  ["a tree with needles and cones", "a conifer tree that bears cones", "the act of paying taxes to the government"],
  ["a musical instrument with strings", "a stringed instrument played with a bow", "a small carnivorous mammal"]
]

const TEXTS = [
  "a domesticated carnivorous mammal",
  "Dog",
  "Naïve café-owners' (re)opening, 2024!",
  "the weather in spring is mild and wet, with long bright evenings and short cool nights",
  "x",
  "an instrument for measuring the passage of time",
  "ＦＵＬＬＷＩＤＴＨ text and emoji 😀",
  "rivers flow to the sea"
]

const backends = [
  ["onnxruntime-node", Inference.layerNode({ intraOpNumThreads: 1 })],
  ["onnxruntime-web", Inference.web]
] as const

for (const [name, backend] of backends) {
  describe.runIf(haveModels)(`Inference on ${name}`, () => {
    layer(Layer.provideMerge(modelsLayer, backend), { timeout: 60_000 })((it) => {
      it.effect("embeds to unit vectors that rank similar sentences above unrelated ones", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { encoder } = yield* Models
          expect(inference.backend).toBe(name)
          for (const [anchor, similar, unrelated] of SIMILAR) {
            const vector = yield* inference.embed(encoder, anchor)
            expect(vector.length).toBe(192)
            expect(norm(vector)).toBeCloseTo(1, 5)
            expect(yield* inference.similarity(encoder, anchor, similar)).toBeGreaterThan(
              yield* inference.similarity(encoder, anchor, unrelated)
            )
          }
        }))

      it.effect("embeds a batch exactly as one text at a time, whatever the bucketing", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { encoder } = yield* Models
          const single = yield* Effect.forEach(TEXTS, (text) => inference.embed(encoder, text))
          for (const batchSize of [1, 3, 32]) {
            const batch = yield* inference.embedBatch(encoder, TEXTS, { batchSize })
            batch.forEach((vector, i) => close(vector, single[i]!, 1e-5))
          }
        }))

      it.effect("generates the same tokens greedily with and without the KV cache, as PyTorch does", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { lm } = yield* Models
          const vectors = JSON.parse(fs.readFileSync(path.join(LM, "test_vectors.json"), "utf8")) as {
            greedy: { prompt: string; new_ids: Array<number> }
          }
          const options = { maxNewTokens: vectors.greedy.new_ids.length, ignoreEos: true }
          const cached = yield* inference.generate(lm, vectors.greedy.prompt, options)
          const recomputed = yield* inference.generate(lm, vectors.greedy.prompt, { ...options, useCache: false })
          expect(cached.tokenIds).toEqual(recomputed.tokenIds)
          expect(cached.tokenIds).toEqual(vectors.greedy.new_ids)
          expect(cached.finishReason).toBe("length")
        }))

      it.effect("samples deterministically under a seed, and the stream adds up to the text", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { lm } = yield* Models
          const options = { maxNewTokens: 24, temperature: 0.9, topK: 40, topP: 0.95, repetitionPenalty: 1.1 }
          const run = (seed: number) =>
            inference.generate(lm, "Call me Ishmael. Some years ago", options).pipe(
              Effect.withRandom(Random.make(seed))
            )
          const first = yield* run(7)
          expect((yield* run(7)).tokenIds).toEqual(first.tokenIds)
          expect((yield* run(8)).tokenIds).not.toEqual(first.tokenIds)
          const pieces = yield* Stream.runCollect(
            inference.generateStream(lm, "Call me Ishmael. Some years ago", options)
          ).pipe(Effect.withRandom(Random.make(7)))
          expect(Chunk.join(pieces, "")).toBe(first.text)
          expect(Chunk.size(pieces)).toBeGreaterThan(1)
        }))

      it.effect("stops at a stop sequence and leaves it out, streamed or not", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { lm } = yield* Models
          const options = { maxNewTokens: 30, temperature: 1, ignoreEos: true }
          const prompt = "The President of the United States"
          const free = yield* inference.generate(lm, prompt, options).pipe(Effect.withRandom(Random.make(3)))
          const middle = Math.floor(free.text.length / 2)
          const stop = free.text.slice(middle, middle + 3)
          const expected = free.text.slice(0, free.text.indexOf(stop))
          const stopped = yield* inference.generate(lm, prompt, { ...options, stop: ["never appears \u0000", stop] })
            .pipe(Effect.withRandom(Random.make(3)))
          expect(stopped.finishReason).toBe("stop")
          expect(stopped.text).toBe(expected)
          const streamed = yield* Stream.runCollect(inference.generateStream(lm, prompt, { ...options, stop: [stop] }))
            .pipe(Effect.withRandom(Random.make(3)))
          expect(Chunk.join(streamed, "")).toBe(expected)
        }))

      it.effect("chats through the default template when the model has none", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { lm } = yield* Models
          const messages = [{ role: "user", content: "Who was the first president?" }]
          expect(yield* inference.chatPrompt(lm, messages)).toBe(
            "<|user|>\nWho was the first president?\n<|assistant|>\n"
          )
          const reply = yield* inference.chat(lm, messages, { maxNewTokens: 12 })
          expect(reply.promptTokens).toBeGreaterThan(5)
          expect(reply.text).not.toContain("<|")
          const streamed = yield* Stream.runCollect(inference.chatStream(lm, messages, { maxNewTokens: 12 }))
          expect(Chunk.join(streamed, "")).toBe(reply.text)
        }))

      it.effect("rejects what a model cannot do with one-line typed errors", () =>
        Effect.gen(function*() {
          const inference = yield* Inference
          const { lm, encoder } = yield* Models
          const failedBefore = yield* counted("edge_net_inference_runs_total", {
            operation: "embed",
            outcome: "failed"
          })
          const succeededBefore = yield* counted("edge_net_inference_runs_total", { operation: "embed", outcome: "ok" })
          yield* inference.embed(encoder, "a boat")
          expect((yield* Effect.flip(inference.embed(encoder, "  "))).message).toBe("text is empty")
          // Each run counted by its outcome, for a node's /metrics.
          expect(yield* counted("edge_net_inference_runs_total", { operation: "embed", outcome: "failed" })).toBe(
            failedBefore + 1
          )
          expect(yield* counted("edge_net_inference_runs_total", { operation: "embed", outcome: "ok" })).toBe(
            succeededBefore + 1
          )
          expect((yield* Effect.flip(inference.embed(lm, "hello"))).message).toContain("embeddings need an encoder")
          expect((yield* Effect.flip(inference.generate(encoder, "hello"))).message).toContain(
            "generation needs a decoder"
          )
          const notOnnx = yield* Effect.flip(
            Effect.scoped(
              inference.loadModel({ model: new TextEncoder().encode("<html>not a model</html>"), tokenizer: {} })
            )
          )
          expect(notOnnx.message).toMatch(/^model file is not ONNX: /)
          const noInputIds = yield* Effect.flip(
            Effect.scoped(
              inference.loadModel({
                model: identityModel("x"),
                tokenizer: JSON.parse(fs.readFileSync(path.join(LM, "tokenizer.json"), "utf8"))
              })
            )
          )
          expect(noInputIds.message).toBe("model has no input named input_ids")
          expect((yield* Effect.flip(Effect.scoped(inference.loadModel(path.join(REFERENCE, "missing"))))).message)
            .toContain("no model.onnx in")
        }))
    })
  })
}

describe.runIf(haveModels)("Inference models", () => {
  it.scoped("loads onnx/model.onnx folders and bytes, and releases the session with its scope", () =>
    Effect.gen(function*() {
      const inference = yield* Inference
      const folder = tempDir("inference-")
      fs.mkdirSync(path.join(folder, "onnx"))
      fs.symlinkSync(path.join(ENCODER, "onnx", "model.onnx"), path.join(folder, "onnx", "model.onnx"))
      for (const file of ["tokenizer.json", "tokenizer_config.json", "config.json"]) {
        fs.copyFileSync(path.join(ENCODER, file), path.join(folder, file))
      }
      const fromFolder = yield* inference.loadModel(folder)
      const fromBytes = yield* inference.loadModel({
        model: new Uint8Array(fs.readFileSync(path.join(ENCODER, "onnx", "model.onnx"))),
        tokenizer: JSON.parse(fs.readFileSync(path.join(ENCODER, "tokenizer.json"), "utf8")),
        config: JSON.parse(fs.readFileSync(path.join(ENCODER, "config.json"), "utf8"))
      })
      close(yield* inference.embed(fromFolder, "a boat"), yield* inference.embed(fromBytes, "a boat"), 1e-6)
      const released = yield* Effect.scoped(inference.loadModel(ENCODER))
      const afterRelease = yield* Effect.exit(inference.embed(released, "a boat"))
      expect(Exit.isFailure(afterRelease)).toBe(true)
    }).pipe(Effect.provide(Inference.layerNode({ intraOpNumThreads: 1 }))))

  it.scoped("renders the model's own chat_template and encodes it without adding special tokens twice", () =>
    Effect.gen(function*() {
      const inference = yield* Inference
      const read = (file: string) => JSON.parse(fs.readFileSync(path.join(LM, file), "utf8"))
      const lm = yield* inference.loadModel({
        model: new Uint8Array(fs.readFileSync(path.join(LM, "onnx", "model.onnx"))),
        tokenizer: read("tokenizer.json"),
        config: read("config.json"),
        tokenizerConfig: {
          ...read("tokenizer_config.json"),
          chat_template:
            "{% for message in messages %}{{ message.role | upper }}: {{ message.content }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
        }
      })
      const messages = [{ role: "user", content: "Call me Ishmael." }]
      expect(yield* inference.chatPrompt(lm, messages)).toBe("USER: Call me Ishmael.<|endoftext|>\nASSISTANT:")
      const reply = yield* inference.chat(lm, messages, { maxNewTokens: 4, ignoreEos: true })
      expect(reply.promptTokens).toBe(lm.tokenizer.encode("USER: Call me Ishmael.<|endoftext|>\nASSISTANT:").ids.length)
      expect(reply.tokenIds.length).toBe(4)
    }).pipe(Effect.provide(Inference.layerNode({ intraOpNumThreads: 1 }))))

  it("match transformers.js' feature-extraction pipeline, and how fast", async () => {
    env.allowRemoteModels = false
    env.localModelPath = REFERENCE
    const extractor = await pipeline("feature-extraction", "tiny-encoder", { dtype: "fp32" })
    const texts = Array.from(
      { length: 96 },
      (_, i) => `${TEXTS[i % TEXTS.length]} ${"and more words ".repeat(i % 5)}`.trim()
    )
    const expected = await extractor(texts, { pooling: "mean", normalize: true })
    const reference = expected.data as Float32Array
    for (const [name, backend] of backends) {
      const result = await Effect.runPromise(
        Effect.gen(function*() {
          const inference = yield* Inference
          const encoder = yield* inference.loadModel(ENCODER)
          const vectors = yield* inference.embedBatch(encoder, texts)
          const started = performance.now()
          yield* inference.embedBatch(encoder, texts, { batchSize: 32 })
          return { vectors, seconds: (performance.now() - started) / 1000 }
        }).pipe(Effect.scoped, Effect.provide(backend))
      )
      result.vectors.forEach((vector, i) => close(vector, reference.subarray(i * 192, (i + 1) * 192), 1e-4))
      if (name === "onnxruntime-node") {
        const started = performance.now()
        for (let i = 0; i < texts.length; i += 32) {
          await extractor(texts.slice(i, i + 32), { pooling: "mean", normalize: true })
        }
        const baseline = texts.length / ((performance.now() - started) / 1000)
        const ours = texts.length / result.seconds
        console.log(
          `embedding throughput: ours (${name}, 1 thread) ${
            ours.toFixed(0)
          } texts/s, transformers.js (onnxruntime-node, default threads) ${baseline.toFixed(0)} texts/s, ratio ${
            (ours / baseline).toFixed(2)
          }`
        )
      }
    }
    await extractor.dispose()
  })
})

/** A hand-encoded ONNX model, `y = Identity(<input>)` over float [1]: enough to lack input_ids. */
const identityModel = (input: string): Uint8Array => {
  const varint = (value: number) => {
    const bytes: Array<number> = []
    while (value > 0x7f) {
      bytes.push((value & 0x7f) | 0x80)
      value >>>= 7
    }
    bytes.push(value)
    return bytes
  }
  const field = (number: number, payload: Array<number> | string) => {
    const bytes = typeof payload === "string" ? Array.from(new TextEncoder().encode(payload)) : payload
    return [...varint((number << 3) | 2), ...varint(bytes.length), ...bytes]
  }
  const integer = (number: number, value: number) => [...varint(number << 3), ...varint(value)]
  // ValueInfoProto { name, type: TypeProto { tensor_type { elem_type FLOAT, shape { dim { dim_value 1 } } } } }
  const valueInfo = (
    name: string
  ) => [...field(1, name), ...field(2, field(1, [...integer(1, 1), ...field(2, field(1, integer(1, 1)))]))]
  const node = [...field(1, input), ...field(2, "y"), ...field(4, "Identity")]
  const graph = [...field(1, node), ...field(2, "g"), ...field(11, valueInfo(input)), ...field(12, valueInfo("y"))]
  return Uint8Array.from([...integer(1, 8), ...field(7, graph), ...field(8, integer(2, 17))])
}
