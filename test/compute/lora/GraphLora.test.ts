/**
 * Graph LoRA on the reference LM and encoder in ONNX Runtime: the injected branch fed an adapter gives
 * the merged model's output and, fed zeros, the base model's; one module matches x · (W + ΔW) computed
 * in TypeScript; adapters swap on one session; the injected model runs in onnxruntime-web; Constant and
 * shared weights merge correctly; quantized bases take a branch but refuse a merge, and mismatches are
 * refused with one line.
 */
import { Effect } from "effect"
import * as fs from "node:fs"
import * as ortWeb from "onnxruntime-web"
import { describe, expect, it } from "vitest"
import type { LoraWeights } from "../../../src/compute/lora/Adapter.js"
import { deltaWeight, scaleOf } from "../../../src/compute/lora/Adapter.js"
import type { LoraTarget } from "../../../src/compute/lora/GraphLora.js"
import {
  adapterLayout,
  feedsFor,
  injectAdapterInputs,
  loraTargets,
  mergeAdapter
} from "../../../src/compute/lora/GraphLora.js"
import { importPeft } from "../../../src/compute/lora/Peft.js"
import { initializerMap } from "../../../src/compute/onnx/Graph.js"
import type { OnnxModel } from "../../../src/compute/onnx/OnnxModel.js"
import { AttributeType, DataType, readModel, writeModel } from "../../../src/compute/onnx/OnnxModel.js"
import { float32Tensor, tensorToFloat32 } from "../../../src/compute/onnx/Tensors.js"
import { textFeeds } from "../../../src/compute/optimize/Feeds.js"
import type { Feeds } from "../../../src/compute/optimize/Runner.js"
import { captureActivations, createSession, run } from "../../../src/compute/optimize/Runner.js"
import { rewriteWeights } from "../../../src/compute/quantize/Rewrite.js"
import { tokenizerFromFile } from "../../../src/compute/tokenizer/TokenizerFile.js"

ortWeb.env.wasm.numThreads = 1

const text = "The whale swam across the quiet sea while the captain watched from the deck, and nobody spoke."

const reference = async (name: string, output: string) => {
  const directory = `models/reference/${name}`
  const model = readModel(new Uint8Array(fs.readFileSync(`${directory}/model.onnx`)))
  const tokenizer = await Effect.runPromise(tokenizerFromFile(`${directory}/tokenizer.json`))
  return { name, output, model, feeds: textFeeds(model, tokenizer, text, 24), targets: loraTargets(model) }
}
const lm = await reference("tiny-lm", "logits")
const encoder = await reference("tiny-encoder", "last_hidden_state")

const seeded = (seed: number) => {
  let state = seed >>> 0 || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return ((state >>> 0) / 2 ** 32) * 2 - 1
  }
}

/** Random factors in [-size, size) for the given targets: big enough to move every output visibly. */
const randomAdapter = (targets: ReadonlyArray<LoraTarget>, rank: number, seed: number, size = 0.1): LoraWeights => {
  const next = seeded(seed)
  const factors = (count: number) => Float32Array.from({ length: count }, () => next() * size)
  return {
    rank,
    alpha: 2 * rank,
    modules: Object.fromEntries(
      targets.map((
        { module, inFeatures, outFeatures }
      ) => [module, { inFeatures, outFeatures, A: factors(rank * inFeatures), B: factors(outFeatures * rank) }])
    )
  }
}

/** Largest absolute difference, relative to the reference's largest magnitude (at least 1). */
const relativeDifference = (actual: Float32Array, expected: Float32Array) => {
  expect(actual.length).toBe(expected.length)
  let difference = 0
  let magnitude = 1
  for (let i = 0; i < expected.length; i++) {
    difference = Math.max(difference, Math.abs(actual[i]! - expected[i]!))
    magnitude = Math.max(magnitude, Math.abs(expected[i]!))
  }
  return difference / magnitude
}

const outputOf = async (model: OnnxModel, feeds: Feeds, output: string) => {
  const session = await createSession(writeModel(model))
  const result = (await run(session, feeds, [output]))[output]!.data
  await session.release()
  return result
}

const modulesOf = (targets: ReadonlyArray<LoraTarget>) => targets.map((target) => target.module)

describe("GraphLora", () => {
  it("finds each model's linear layers as targets, not attention products or the tied LM head", () => {
    const lmLayers = ["attn.c_attn", "attn.c_proj", "c_fc", "mlp_proj"]
    expect(modulesOf(lm.targets)).toEqual(
      [0, 1, 2, 3].flatMap((block) => lmLayers.map((layer) => `model.blocks.${block}.${layer}`))
    )
    const encoderLayers = ["query", "key", "value", "attention_output", "intermediate", "output"]
    expect(modulesOf(encoder.targets)).toEqual(
      [0, 1, 2, 3].flatMap((layer) => encoderLayers.map((name) => `layers.${layer}.${name}`))
    )
    expect(lm.targets.find((target) => target.module === "model.blocks.2.c_fc")).toMatchObject({
      inFeatures: 192,
      outFeatures: 768,
      storage: "float32"
    })
  })

  for (const subject of [lm, encoder]) {
    it(`${subject.name}: the branch fed an adapter gives the merged model's output; fed zeros, the base model's`, async () => {
      const adapter = randomAdapter(subject.targets, 4, 11)
      const injected = injectAdapterInputs(subject.model, modulesOf(subject.targets), 4)
      const layout = adapterLayout(injected)
      const base = await outputOf(subject.model, subject.feeds, subject.output)
      const merged = await outputOf(mergeAdapter(subject.model, adapter), subject.feeds, subject.output)
      const session = await createSession(writeModel(injected))
      const zero = (await run(session, { ...subject.feeds, ...feedsFor(layout) }))[subject.output]!.data
      const adapted = (await run(session, { ...subject.feeds, ...feedsFor(layout, adapter) }))[subject.output]!.data
      await session.release()
      expect(relativeDifference(zero, base)).toBeLessThan(1e-6)
      expect(relativeDifference(adapted, merged)).toBeLessThan(1e-4)
      expect(relativeDifference(adapted, base)).toBeGreaterThan(0.02)
    })

    it(`${subject.name}: one adapted module computes x · (W + scale·AᵀBᵀ) as TypeScript does`, async () => {
      const target = subject.targets[6]!
      const adapter = randomAdapter(subject.targets, 4, 12)
      const injected = injectAdapterInputs(subject.model, modulesOf(subject.targets), 4)
      const feeds = { ...subject.feeds, ...feedsFor(adapterLayout(injected), adapter) }
      const captured = await captureActivations(injected, [target.input, target.output], [feeds])
      const x = captured.get(target.input)!
      const y = captured.get(target.output)!
      expect([x.width, y.width]).toEqual([target.inFeatures, target.outFeatures])
      const weight = tensorToFloat32(initializerMap(subject.model.graph).get(target.weight)!)
      const delta = deltaWeight(adapter.modules[target.module]!, adapter.rank, scaleOf(adapter))
      const expected = new Float32Array(y.data.length)
      for (let row = 0; row < x.samples; row++) {
        for (let o = 0; o < target.outFeatures; o++) {
          let sum = 0
          for (let i = 0; i < target.inFeatures; i++) {
            sum += x.data[row * target.inFeatures + i]! *
              (weight[i * target.outFeatures + o]! + delta[i * target.outFeatures + o]!)
          }
          expected[row * target.outFeatures + o] = sum
        }
      }
      expect(relativeDifference(y.data, expected)).toBeLessThan(1e-4)
    })
  }

  it("swaps adapters of different ranks on one session, each run giving that adapter's merged output", async () => {
    // One adapter saved by PEFT itself (rank 4, three modules), one random of rank 2 on every module.
    const peft =
      (await Effect.runPromise(importPeft("test/fixtures/peft/tiny-lm", { targets: modulesOf(lm.targets) }))).weights
    const small = randomAdapter(lm.targets, 2, 13)
    const injected = injectAdapterInputs(lm.model, modulesOf(lm.targets), 4)
    const layout = adapterLayout(injected)
    const session = await createSession(writeModel(injected))
    const runWith = async (adapter?: LoraWeights) =>
      (await run(session, { ...lm.feeds, ...feedsFor(layout, adapter) }))[lm.output]!.data
    const outputs = [await runWith(peft), await runWith(small), await runWith(), await runWith(peft)]
    await session.release()
    const expected = [
      await outputOf(mergeAdapter(lm.model, peft), lm.feeds, lm.output),
      await outputOf(mergeAdapter(lm.model, small), lm.feeds, lm.output),
      await outputOf(lm.model, lm.feeds, lm.output)
    ]
    expect(relativeDifference(outputs[0]!, expected[0]!)).toBeLessThan(1e-4)
    expect(relativeDifference(outputs[1]!, expected[1]!)).toBeLessThan(1e-4)
    expect(relativeDifference(outputs[2]!, expected[2]!)).toBeLessThan(1e-6)
    expect(relativeDifference(outputs[3]!, expected[0]!)).toBeLessThan(1e-4)
    expect(relativeDifference(expected[0]!, expected[1]!)).toBeGreaterThan(0.02)
  })

  it("the injected model loads in onnxruntime-web and gives onnxruntime-node's output", async () => {
    const adapter = randomAdapter(encoder.targets, 4, 14)
    const injected = injectAdapterInputs(encoder.model, modulesOf(encoder.targets), 4)
    const feeds = { ...encoder.feeds, ...feedsFor(adapterLayout(injected), adapter) }
    const node = await outputOf(injected, feeds, encoder.output)
    const session = await ortWeb.InferenceSession.create(writeModel(injected))
    const inputs = Object.fromEntries(
      Object.entries(feeds).map((
        [name, tensor]
      ) => [name, new ortWeb.Tensor(tensor.type, tensor.data as Float32Array, [...tensor.dims])])
    )
    const web = (await session.run(inputs))[encoder.output]!.data as Float32Array
    await session.release()
    expect(relativeDifference(web, node)).toBeLessThan(1e-4)
  })

  it("merges into a weight held by a Constant node, copying it for one MatMul when another shares it", async () => {
    const next = seeded(15)
    const weight = Float32Array.from({ length: 12 }, next)
    const floatValue = (name: string, dims: Array<number>) => ({
      name,
      type: { tensorType: { elemType: DataType.FLOAT, shape: dims.map((value) => ({ value })) } }
    })
    const model: OnnxModel = {
      irVersion: 8,
      opsetImports: [{ version: 17 }],
      graph: {
        nodes: [
          {
            opType: "Constant",
            name: "/w/Constant",
            inputs: [],
            outputs: ["W"],
            attributes: [{ name: "value", type: AttributeType.TENSOR, t: float32Tensor("W", [4, 3], weight) }]
          },
          { opType: "MatMul", name: "/a/MatMul", inputs: ["x", "W"], outputs: ["ya"], attributes: [] },
          { opType: "MatMul", name: "/b/MatMul", inputs: ["x", "W"], outputs: ["yb"], attributes: [] }
        ],
        initializers: [],
        inputs: [floatValue("x", [2, 4])],
        outputs: [floatValue("ya", [2, 3]), floatValue("yb", [2, 3])],
        valueInfo: []
      }
    }
    expect(modulesOf(loraTargets(model))).toEqual(["a", "b"])
    const adapter: LoraWeights = {
      rank: 2,
      alpha: 3,
      modules: {
        a: {
          inFeatures: 4,
          outFeatures: 3,
          A: Float32Array.from({ length: 8 }, next),
          B: Float32Array.from({ length: 6 }, next)
        }
      }
    }
    const merged = mergeAdapter(model, adapter)
    expect(merged.graph.nodes.map((node) => node.opType)).toEqual(["MatMul", "MatMul"])
    const x = Float32Array.from({ length: 8 }, next)
    const session = await createSession(writeModel(merged))
    const outputs = await run(session, { x: { type: "float32", data: x, dims: [2, 4] } })
    await session.release()
    const delta = deltaWeight(adapter.modules.a!, 2, 1.5)
    const product = (matrix: (i: number, o: number) => number) =>
      Float32Array.from(
        { length: 6 },
        (_, k) => [0, 1, 2, 3].reduce((sum, i) => sum + x[Math.floor(k / 3) * 4 + i]! * matrix(i, k % 3), 0)
      )
    expect(relativeDifference(outputs.ya!.data, product((i, o) => weight[i * 3 + o]! + delta[i * 3 + o]!)))
      .toBeLessThan(1e-6)
    expect(relativeDifference(outputs.yb!.data, product((i, o) => weight[i * 3 + o]!))).toBeLessThan(1e-6)
  })

  it("a 4-bit base takes a branch and refuses a merge; so does a weight-only INT8 base", async () => {
    const adapter = randomAdapter(encoder.targets, 2, 16)
    const int4 = rewriteWeights(encoder.model, { defaultFormat: "INT4" }).model
    expect(modulesOf(loraTargets(int4))).toEqual(modulesOf(encoder.targets))
    expect(() => mergeAdapter(int4, adapter)).toThrow(
      "layers.0.query: its weight is stored in 4 bits (MatMulNBits); merge into the FP32 model, then quantize, or run the adapter as a branch (adapter slots)"
    )
    expect(adapterLayout(injectAdapterInputs(int4, ["layers.0.query"], 2)).modules).toEqual({
      "layers.0.query": { inFeatures: 192, outFeatures: 192 }
    })

    const int8 = rewriteWeights(encoder.model, { defaultFormat: "INT8" }).model
    const targets = loraTargets(int8)
    expect(modulesOf(targets)).toEqual(modulesOf(encoder.targets))
    expect(new Set(targets.map((target) => target.storage))).toEqual(new Set(["dequantized"]))
    expect(() => mergeAdapter(int8, adapter)).toThrow(
      "layers.0.query: its weight is stored quantized (INT8 / FP16); merge into the FP32 model, then quantize"
    )
    const injected = injectAdapterInputs(int8, modulesOf(targets), 2)
    const session = await createSession(writeModel(injected))
    const zero = (await run(session, { ...encoder.feeds, ...feedsFor(adapterLayout(injected)) }))[encoder.output]!.data
    const adapted =
      (await run(session, { ...encoder.feeds, ...feedsFor(adapterLayout(injected), adapter) }))[encoder.output]!.data
    await session.release()
    const base = await outputOf(int8, encoder.feeds, encoder.output)
    expect(relativeDifference(zero, base)).toBeLessThan(1e-6)
    expect(relativeDifference(adapted, base)).toBeGreaterThan(0.02)
  })

  it("refuses unknown modules, repeated injection, excess rank and mismatched shapes with one line", () => {
    expect(() => injectAdapterInputs(lm.model, ["model.blocks.9.c_fc"], 4)).toThrow(
      "model.blocks.9.c_fc is not a LoRA target of this model (16 targets, such as model.blocks.0.attn.c_attn, model.blocks.0.attn.c_proj, model.blocks.0.c_fc)"
    )
    const injected = injectAdapterInputs(encoder.model, ["layers.0.query", "layers.0.value"], 2)
    expect(() => injectAdapterInputs(injected, ["layers.0.query"], 2)).toThrow(
      "layers.0.query already has an adapter branch"
    )
    const layout = adapterLayout(injected)
    expect(layout).toEqual({
      rank: 2,
      modules: {
        "layers.0.query": { inFeatures: 192, outFeatures: 192 },
        "layers.0.value": { inFeatures: 192, outFeatures: 192 }
      }
    })
    expect(() => feedsFor(layout, randomAdapter(encoder.targets.slice(0, 1), 4, 17))).toThrow(
      "the adapter has rank 4, more than the graph's 2"
    )
    expect(() => feedsFor(layout, randomAdapter(encoder.targets.slice(1, 2), 2, 17))).toThrow(
      "the graph has no adapter branch for layers.0.key"
    )
    const wide = randomAdapter([{ ...encoder.targets[0]!, outFeatures: 64 }], 2, 18)
    expect(() => feedsFor(layout, wide)).toThrow(
      "layers.0.query: the adapter is [192 -> 64], the graph's branch [192 -> 192]"
    )
    expect(() => mergeAdapter(encoder.model, wide)).toThrow(
      "layers.0.query: the adapter is [192 -> 64], the model's weight [192 -> 192]"
    )
    expect(() => adapterLayout(encoder.model)).toThrow("the model has no adapter inputs (see injectAdapterInputs)")
    expect(() => injectAdapterInputs(encoder.model, ["layers.0.query"], 0)).toThrow(
      "rank must be a whole number, 1 or more (not 0)"
    )
  })
})
