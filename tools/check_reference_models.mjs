// Checks models/reference/{tiny-lm,tiny-encoder} against the PyTorch outputs recorded in test_vectors.json:
// onnxruntime-node numerics, KV-cache generation vs full recompute, and loading through transformers.js.
// Usage: node tools/check_reference_models.mjs [dir, default models/reference]   (exit code 1 on any failure)

import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import * as ort from "onnxruntime-node"
import { AutoModelForCausalLM, AutoTokenizer, env, pipeline } from "@huggingface/transformers"

const referenceDir = process.argv[2]
  ? resolve(process.argv[2])
  : join(dirname(fileURLToPath(import.meta.url)), "..", "models", "reference")
const tolerance = 1e-4
let failures = 0

const report = (ok, name, detail) => {
  if (!ok) failures += 1
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? ` — ${detail}` : ""}`)
}

const readJson = (model, file) => JSON.parse(readFileSync(join(referenceDir, model, file), "utf8"))

const float32FromBase64 = (text) => new Float32Array(new Uint8Array(Buffer.from(text, "base64")).buffer)

const maxAbsDiff = (a, b) => {
  if (a.length !== b.length) return Infinity
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]))
  return worst
}

const sameIds = (a, b) => a.length === b.length && a.every((x, i) => Number(x) === Number(b[i]))

const int64 = (rows) => new ort.Tensor("int64", BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length])

const argmax = (data, offset, length) => {
  let best = 0
  for (let i = 1; i < length; i++) if (data[offset + i] > data[offset + best]) best = i
  return best
}

// ---- tiny-lm through onnxruntime-node -------------------------------------------------------------

const lmConfig = readJson("tiny-lm", "config.json")
const lmVectors = readJson("tiny-lm", "test_vectors.json")
const headDim = lmConfig.n_embd / lmConfig.n_head
const vocab = lmConfig.vocab_size
const lm = await ort.InferenceSession.create(join(referenceDir, "tiny-lm", "onnx", "model.onnx"))

const emptyPast = (batch) => {
  const feeds = {}
  for (let i = 0; i < lmConfig.n_layer; i++)
    for (const kind of ["key", "value"])
      feeds[`past_key_values.${i}.${kind}`] = new ort.Tensor("float32", new Float32Array(0), [batch, lmConfig.n_head, 0, headDim])
  return feeds
}

const pastFrom = (outputs) => {
  const feeds = {}
  for (const [name, tensor] of Object.entries(outputs))
    if (name.startsWith("present.")) feeds[name.replace("present.", "past_key_values.")] = tensor
  return feeds
}

// One row, positions past..past+ids.length-1, everything attended.
const lmStep = (ids, pastLength, past) =>
  lm.run({
    input_ids: int64([ids]),
    attention_mask: int64([Array(pastLength + ids.length).fill(1)]),
    position_ids: int64([ids.map((_, i) => pastLength + i)]),
    ...(past ?? emptyPast(1)),
  })

{
  const { input_ids, logits } = lmVectors.forward
  const outputs = await lmStep(input_ids, 0)
  const diff = maxAbsDiff(outputs.logits.data, float32FromBase64(logits))
  report(diff < tolerance, "tiny-lm ORT logits = PyTorch (no cache)", `max |diff| ${diff.toExponential(2)}`)

  const split = 4
  const first = await lmStep(input_ids.slice(0, split), 0)
  const second = await lmStep(input_ids.slice(split), split, pastFrom(first))
  const cached = new Float32Array([...first.logits.data, ...second.logits.data])
  const cacheDiff = maxAbsDiff(cached, float32FromBase64(logits))
  report(cacheDiff < tolerance, "tiny-lm ORT logits with KV cache (4 + rest) = PyTorch", `max |diff| ${cacheDiff.toExponential(2)}`)
  const presentDims = second["present.0.key"].dims.join("x")
  report(presentDims === `1x${lmConfig.n_head}x${input_ids.length}x${headDim}`, "tiny-lm present shape", presentDims)
}

{
  const { input_ids, attention_mask, position_ids, logits } = lmVectors.padded
  const outputs = await lm.run({
    input_ids: int64(input_ids),
    attention_mask: int64(attention_mask),
    position_ids: int64(position_ids),
    ...emptyPast(2),
  })
  const expected = float32FromBase64(logits)
  // Padded query rows are junk by construction; compare only real tokens.
  let worst = 0
  const seq = input_ids[0].length
  for (let row = 0; row < 2; row++)
    for (let t = 0; t < seq; t++) {
      if (attention_mask[row][t] === 0) continue
      const at = (row * seq + t) * vocab
      worst = Math.max(worst, maxAbsDiff(outputs.logits.data.subarray(at, at + vocab), expected.subarray(at, at + vocab)))
    }
  report(worst < tolerance, "tiny-lm ORT left-padded batch = PyTorch", `max |diff| ${worst.toExponential(2)}`)
}

const greedyWithCache = async (prompt, steps) => {
  const generated = []
  let outputs = await lmStep(prompt, 0)
  let length = prompt.length
  for (let i = 0; i < steps; i++) {
    const next = argmax(outputs.logits.data, (outputs.logits.dims[1] - 1) * vocab, vocab)
    generated.push(next)
    outputs = await lmStep([next], length, pastFrom(outputs))
    length += 1
  }
  return generated
}

const greedyRecompute = async (prompt, steps) => {
  const ids = [...prompt]
  for (let i = 0; i < steps; i++) {
    const outputs = await lmStep(ids, 0)
    ids.push(argmax(outputs.logits.data, (ids.length - 1) * vocab, vocab))
  }
  return ids.slice(prompt.length)
}

const { prompt, prompt_ids: promptIds, new_ids: torchGreedy, text: torchText } = lmVectors.greedy
{
  const cached = await greedyWithCache(promptIds, 20)
  const recomputed = await greedyRecompute(promptIds, 20)
  report(sameIds(cached, recomputed), "tiny-lm 20-token greedy: KV cache = full recompute", JSON.stringify(cached))
  report(sameIds(cached, torchGreedy), "tiny-lm 20-token greedy: ORT = PyTorch")
}

// ---- tiny-encoder through onnxruntime-node --------------------------------------------------------

const encoderVectors = readJson("tiny-encoder", "test_vectors.json")
const encoder = await ort.InferenceSession.create(join(referenceDir, "tiny-encoder", "onnx", "model.onnx"))
{
  const { input_ids, attention_mask, last_hidden_state, shape } = encoderVectors
  const outputs = await encoder.run({
    input_ids: int64(input_ids),
    attention_mask: int64(attention_mask),
    token_type_ids: int64(input_ids.map((row) => row.map(() => 0))),
  })
  const diff = maxAbsDiff(outputs.last_hidden_state.data, float32FromBase64(last_hidden_state))
  report(
    diff < tolerance && outputs.last_hidden_state.dims.join("x") === shape.join("x"),
    "tiny-encoder ORT last_hidden_state = PyTorch",
    `dims ${outputs.last_hidden_state.dims.join("x")}, max |diff| ${diff.toExponential(2)}`
  )
}

// ---- both through transformers.js -----------------------------------------------------------------

env.allowRemoteModels = false
env.allowLocalModels = true
env.localModelPath = referenceDir + "/"

{
  const tokenizer = await AutoTokenizer.from_pretrained("tiny-lm")
  for (const { text, ids } of lmVectors.tokenizer) {
    const got = tokenizer.encode(text)
    report(sameIds(got, ids), `tiny-lm tokenizer ids = Python for ${JSON.stringify(text)}`, sameIds(got, ids) ? "" : `${got} vs ${ids}`)
    const decoded = tokenizer.decode(ids)
    report(decoded === text, `tiny-lm tokenizer round-trip for ${JSON.stringify(text)}`, decoded === text ? "" : JSON.stringify(decoded))
  }

  const model = await AutoModelForCausalLM.from_pretrained("tiny-lm", { dtype: "fp32" })
  const inputs = tokenizer(prompt)
  const output = await model.generate({ ...inputs, max_new_tokens: 20, do_sample: false })
  const newIds = Array.from(output.data.slice(promptIds.length), Number)
  report(sameIds(newIds, torchGreedy), "transformers.js generate (greedy, KV cache) = PyTorch", JSON.stringify(newIds))

  const generator = await pipeline("text-generation", "tiny-lm", { dtype: "fp32" })
  const [result] = await generator(prompt, { max_new_tokens: 20, do_sample: false })
  report(result.generated_text === prompt + torchText, "transformers.js text-generation pipeline text = PyTorch", JSON.stringify(result.generated_text))
}

{
  const tokenizer = await AutoTokenizer.from_pretrained("tiny-encoder")
  for (const { text, ids } of encoderVectors.tokenizer) {
    const got = tokenizer.encode(text)
    report(sameIds(got, ids), `tiny-encoder tokenizer ids = Python for ${JSON.stringify(text)}`, sameIds(got, ids) ? "" : `${got} vs ${ids}`)
  }
  const extractor = await pipeline("feature-extraction", "tiny-encoder", { dtype: "fp32" })
  const embeddings = await extractor(encoderVectors.sentences, { pooling: "mean", normalize: true })
  const diff = maxAbsDiff(embeddings.data, float32FromBase64(encoderVectors.embeddings))
  report(diff < tolerance, "transformers.js feature-extraction (mean, normalize) = PyTorch", `dims ${embeddings.dims.join("x")}, max |diff| ${diff.toExponential(2)}`)
}

console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`)
process.exit(failures === 0 ? 0 : 1)
