/**
 * LoRA training in TypeScript: each operator's gradient against finite differences, the executor's
 * forward pass against ONNX Runtime on both reference models, adapter gradients through the whole
 * encoder against finite differences, AdamW and the schedules, and the training loop's promises
 * (loss falls, accumulation equals a big batch, a resumed run equals an uninterrupted one, seeds
 * reproduce, bad options are refused in one line) — also through the worker thread.
 */
import { describe, expect, it } from "@effect/vitest"
import * as esbuild from "esbuild"
import * as vm from "node:vm"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import { mergeAdapter } from "../../../src/compute/lora/GraphLora.js"
import { AdamW, clipGradNorm, learningRateAt } from "../../../src/compute/lora/train/AdamW.js"
import { ortFeeds } from "../../../src/compute/lora/train/Evaluate.js"
import { compile, forward } from "../../../src/compute/lora/train/Executor.js"
import { LoraTrainer } from "../../../src/compute/lora/train/LoraTrainer.js"
import type { ClassificationSample } from "../../../src/compute/lora/train/Objectives.js"
import { tokenFeeds } from "../../../src/compute/lora/train/Objectives.js"
import { operatorFor } from "../../../src/compute/lora/train/Operators.js"
import type { Tensor } from "../../../src/compute/lora/train/Tensor.js"
import { boolTensor, floatTensor, intTensor } from "../../../src/compute/lora/train/Tensor.js"
import type { MicroLoRAConfig } from "../../../src/compute/lora/train/TrainingConfig.js"
import { trainAdapter } from "../../../src/compute/lora/train/TrainingLoop.js"
import type { TrainingMessage } from "../../../src/compute/lora/train/TrainingProtocol.js"
import { trainInWorker } from "../../../src/compute/lora/train/TrainInWorker.js"
import type { OnnxNode } from "../../../src/compute/onnx/OnnxModel.js"
import { writeModel } from "../../../src/compute/onnx/OnnxModel.js"
import { createSession, run } from "../../../src/compute/optimize/Runner.js"
import { referenceModel } from "../../support/LoraTasks.js"

const random = (seed: number, length: number, size = 1) => {
  const draws = new SeededRandom(seed)
  return Float32Array.from({ length }, () => (draws.uniform() * 2 - 1) * size)
}

const node = (opType: string, inputs: number, attributes: OnnxNode["attributes"] = [], outputs = 1): OnnxNode => ({
  opType,
  name: opType,
  inputs: Array.from({ length: inputs }, (_, index) => `in${index}`),
  outputs: Array.from({ length: outputs }, (_, index) => `out${index}`),
  attributes
})

const ints = (name: string, values: ReadonlyArray<number>) => ({ name, type: 7, ints: values.map(BigInt) })
const int = (name: string, value: number) => ({ name, type: 2, i: BigInt(value) })

/**
 * The operator's vector-Jacobian product for L = Σ_k w_k · output_k against central differences of L
 * for every element of every float input, in float32 (h = 1e-2).
 */
const checkGradients = (
  opType: string,
  inputs: Array<Tensor | undefined>,
  attributes: OnnxNode["attributes"] = [],
  outputs = 1
) => {
  const operator = operatorFor(opType)!
  const onnxNode = node(opType, inputs.length, attributes, outputs)
  const context = { node: onnxNode, training: false, random: () => 0.5 }
  const results = operator.forward(inputs, context)
  const weights = results.map((result, index) => random(900 + index, result.data.length))
  const loss = (tensors: Array<Tensor | undefined>) =>
    operator.forward(tensors, context).reduce((total, result, index) => {
      let sum = 0
      for (let i = 0; i < result.data.length; i++) sum += Number(result.data[i]) * weights[index]![i]!
      return total + sum
    }, 0)
  // LayerNormalization's scale and bias are base weights: training never asks for their gradients.
  const wants = inputs.map((input, position) =>
    input?.kind === "float" && !(opType === "LayerNormalization" && position > 0)
  )
  const grads = operator.backward!(inputs, results, weights, wants, context)
  let worst = 0
  inputs.forEach((input, position) => {
    if (input?.kind !== "float" || !wants[position]) return
    for (let i = 0; i < input.data.length; i++) {
      const h = 1e-2
      // Fresh tensors: the executor never expects a tensor's data to change after it is made.
      const shifted = (delta: number) =>
        inputs.map((tensor, index) => {
          if (index !== position) return tensor
          const data = input.data.slice()
          data[i]! += delta
          return floatTensor(input.dims, data)
        })
      const up = loss(shifted(h))
      const down = loss(shifted(-h))
      const numeric = (up - down) / (2 * h)
      const analytic = grads[position]![i]!
      worst = Math.max(worst, Math.abs(numeric - analytic) / Math.max(1, Math.abs(numeric)))
    }
  })
  return worst
}

describe("training executor operators", () => {
  it("every differentiable operator's gradient matches central differences", () => {
    const f = (seed: number, dims: Array<number>, size = 1) =>
      floatTensor(dims, random(seed, dims.reduce((a, b) => a * b, 1), size))
    const cases: Array<[string, Array<Tensor | undefined>, OnnxNode["attributes"]?, number?]> = [
      ["Add", [f(1, [2, 3, 4]), f(2, [4])]],
      ["Sub", [f(3, [2, 1, 4]), f(4, [3, 1])]],
      ["Mul", [f(5, [2, 3, 4]), f(6, [1, 3, 1])]],
      ["Div", [f(7, [2, 3]), floatTensor([3], Float32Array.from([1.5, -2, 3]))]],
      ["MatMul", [f(8, [2, 3, 4]), f(9, [4, 5])]],
      ["MatMul", [f(10, [2, 2, 5, 3]), f(11, [2, 2, 3, 6])]],
      ["Softmax", [f(12, [3, 7], 2)], [int("axis", -1)]],
      ["LayerNormalization", [f(13, [4, 6]), f(14, [6]), f(15, [6])], [int("axis", -1), {
        name: "epsilon",
        type: 1,
        f: 1e-5
      }]],
      ["Erf", [f(16, [10], 2)]],
      ["Transpose", [f(17, [2, 3, 4, 5])], [ints("perm", [0, 2, 1, 3])]],
      ["Reshape", [f(18, [2, 6]), intTensor([3], Float64Array.from([0, 3, -1]))]],
      ["Concat", [f(19, [2, 3]), f(20, [2, 0]), f(21, [2, 2])], [int("axis", 1)]],
      ["Split", [f(22, [2, 9]), intTensor([3], Float64Array.from([3, 2, 4]))], [int("axis", 1)], 3],
      ["Where", [boolTensor([2, 3], Uint8Array.from([1, 0, 1, 0, 0, 1])), f(23, [2, 3]), f(24, [3])]],
      ["Gather", [f(25, [5, 4]), intTensor([3], Float64Array.from([4, 0, 4]))], [int("axis", 0)]],
      ["Unsqueeze", [f(26, [3, 2]), intTensor([1], Float64Array.from([1]))]],
      // The broadcasts with loops of their own: a bias on the left, a single value on either side.
      ["Add", [f(27, [4]), f(28, [2, 3, 4])]],
      ["Mul", [f(29, []), f(30, [2, 5])]],
      ["Div", [f(31, [3, 4]), floatTensor([], Float32Array.of(1.7))]],
      ["Sub", [f(32, [5]), f(33, [3, 5])]],
      ["Gelu", [f(36, [3, 7], 3)]],
      // Inner sizes past 16: the weight gradient through transposes rather than outer products.
      ["MatMul", [f(34, [1, 20, 18]), f(35, [18, 17])]]
    ]
    for (const [opType, inputs, attributes, outputs] of cases) {
      expect(checkGradients(opType, inputs, attributes, outputs), opType).toBeLessThan(2e-3)
    }
  })

  it("refuses a model with operators it cannot differentiate, naming them", () => {
    const { model } = referenceModel("tiny-encoder")
    const nodes = [...model.graph.nodes, { opType: "Loop", name: "loop", inputs: [], outputs: ["x"], attributes: [] }, {
      opType: "Foo",
      domain: "com.example",
      inputs: [],
      outputs: ["y"],
      attributes: []
    }]
    expect(() => compile({ ...model, graph: { ...model.graph, nodes } }, [])).toThrow(
      "training does not support the operators Loop, com.example.Foo of this model"
    )
  })
})

describe("training executor on the reference models", () => {
  it.each(["tiny-lm", "tiny-encoder"] as const)("runs %s as ONNX Runtime does", async (name) => {
    const { bytes, model, tokenizer } = referenceModel(name)
    const rows = [
      "The whale was seen off the coast of Nantucket in the year 1820.",
      "Congress shall make no law respecting an establishment"
    ].map((text) => Array.from(tokenizer.encode(text, { truncation: 14 }).ids, Number))
    const feeds = tokenFeeds(model, rows)
    const output = model.graph.outputs[0]!.name
    const ours = forward(compile(model, []), feeds).values.get(output)!.data as Float32Array
    const reference = (await run(await createSession(bytes), ortFeeds(feeds), [output]))[output]!.data
    let worst = 0
    for (let i = 0; i < reference.length; i++) worst = Math.max(worst, Math.abs(reference[i]! - ours[i]!))
    expect(ours.length).toBe(reference.length)
    expect(worst).toBeLessThan(1e-4)
  })
})

const encoderTask = () => {
  const { bytes, model, tokenizer } = referenceModel("tiny-encoder")
  const texts = [
    ["Win a free cruise now, click here to claim your prize", 1],
    ["The meeting about the kernel patch moved to Thursday", 0],
    ["Lowest mortgage rates guaranteed, act today", 1],
    ["Can you review my change to the build scripts?", 0],
    ["Cheap meds online without prescription", 1],
    ["Minutes of yesterday's call are on the wiki", 0],
    ["You have been selected for a cash reward", 1],
    ["The release branch is frozen until Monday", 0]
  ] as const
  const samples: Array<ClassificationSample> = texts.map(([text, label]) => ({
    ids: Array.from(tokenizer.encode(text, { truncation: 12 }).ids, Number),
    label
  }))
  return { bytes, model, samples }
}

describe("adapter gradients through a whole model", () => {
  it("match central differences for A, B and the head on the encoder", () => {
    const { model, samples } = encoderTask()
    const trainer = new LoraTrainer(model, {
      rank: 2,
      alpha: 4,
      targetModules: ["layers.0.query", "layers.1.value", "layers.3.output"]
    }, { kind: "classification", classes: 2 })
    for (const [name, values] of trainer.parameters()) {
      values.set(random(name.length * 31 + values.length, values.length, 0.3))
    }
    const batch = samples.slice(0, 4)
    const lossOf = () => trainer.lossAndGrads(batch, 1, () => 0.5).total
    const { grads } = trainer.lossAndGrads(batch, 1, () => 0.5)
    let worst = 0
    for (
      const name of [
        "layers.0.query.A",
        "layers.1.value.B",
        "layers.3.output.A",
        "layers.3.output.B",
        "head.weight",
        "head.bias"
      ]
    ) {
      const values = trainer.parameters().get(name)!
      for (const index of new Set([0, Math.floor(values.length / 2)])) {
        const original = values[index]!
        values[index] = original + 1e-2
        const up = lossOf()
        values[index] = original - 1e-2
        const down = lossOf()
        values[index] = original
        const numeric = (up - down) / 2e-2
        worst = Math.max(worst, Math.abs(numeric - grads.get(name)![index]!) / Math.max(1e-2, Math.abs(numeric)))
      }
    }
    expect(worst).toBeLessThan(2e-2)
  })
})

describe("AdamW and schedules", () => {
  it("follow torch.optim.AdamW and the transformers schedules", () => {
    const theta = Float32Array.from([1, -2, 0.5])
    const optimizer = new AdamW({ learningRate: 0.1, betas: [0.9, 0.999], epsilon: 1e-8, weightDecay: 0.1 })
    optimizer.update(new Map([["p", theta]]), new Map([["p", Float32Array.from([0.3, -4, 0])]]), 0.1)
    // Step 1: m̂ / √v̂ = sign(g), so θ ← θ(1 − lr·wd) − lr·sign(g).
    expect(Array.from(theta)).toEqual([1 * 0.99 - 0.1, -2 * 0.99 + 0.1, 0.5 * 0.99].map((value) => Math.fround(value)))
    expect(learningRateAt("cosine", 1, 0, 10, 2)).toBe(0)
    expect(learningRateAt("cosine", 1, 1, 10, 2)).toBe(0.5)
    expect(learningRateAt("cosine", 1, 2, 10, 2)).toBe(1)
    expect(learningRateAt("cosine", 1, 6, 10, 2)).toBeCloseTo(0.5, 12)
    expect(learningRateAt("linear", 1, 6, 10, 2)).toBe(0.5)
    expect(learningRateAt("constant", 1, 9, 10, 2)).toBe(1)
    const grads = new Map([["a", Float32Array.from([3, 0])], ["b", Float32Array.from([4])]])
    expect(clipGradNorm(grads, 1)).toBe(5)
    expect(clipGradNorm(grads, 0)).toBeCloseTo(1, 5)
  })
})

describe("the training loop", () => {
  const config: MicroLoRAConfig = {
    rank: 2,
    alpha: 4,
    learningRate: 5e-3,
    batchSize: 4,
    epochs: 3,
    seed: 3,
    targetModules: ["layers.2.query", "layers.2.value", "layers.3.intermediate"]
  }

  it("lowers the loss, reports progress every step, and reproduces a run from its seed", () => {
    const { model, samples } = encoderTask()
    const steps: Array<number> = []
    const first = trainAdapter(new LoraTrainer(model, config, { kind: "classification", classes: 2 }), samples, {
      onProgress: (progress) => steps.push(progress.step)
    })
    expect(steps).toEqual([1, 2, 3, 4, 5, 6])
    expect(first.losses.at(-1)!).toBeLessThan(first.losses[0]!)
    const second = trainAdapter(new LoraTrainer(model, config, { kind: "classification", classes: 2 }), samples)
    expect(second.losses).toEqual(first.losses)
    expect(second.weights.modules["layers.2.query"]!.B).toEqual(first.weights.modules["layers.2.query"]!.B)
  })

  it("gives the same update for one batch of 8 as for 4 + 4 accumulated", () => {
    const { model, samples } = encoderTask()
    const run = (batchSize: number, gradientAccumulationSteps: number) =>
      trainAdapter(
        new LoraTrainer(model, { ...config, epochs: 2, batchSize, gradientAccumulationSteps }, {
          kind: "classification",
          classes: 2
        }),
        samples
      ).weights
    const whole = run(8, 1)
    const accumulated = run(4, 2)
    for (const [module, factors] of Object.entries(whole.modules)) {
      const other = accumulated.modules[module]!
      factors.B.forEach((value, index) => expect(Math.abs(value - other.B[index]!)).toBeLessThan(1e-6))
      factors.A.forEach((value, index) => expect(Math.abs(value - other.A[index]!)).toBeLessThan(1e-6))
    }
  })

  it("continues from a checkpoint exactly as the uninterrupted run, dropout included", () => {
    const { model, samples } = encoderTask()
    const withDropout = { ...config, dropout: 0.1, checkpointEvery: 2 }
    const checkpoints: Array<ReturnType<LoraTrainer["checkpoint"]>> = []
    const whole = trainAdapter(new LoraTrainer(model, withDropout, { kind: "classification", classes: 2 }), samples, {
      onCheckpoint: (checkpoint) => checkpoints.push(checkpoint)
    })
    expect(checkpoints.map((checkpoint) => checkpoint.step)).toEqual([2, 4])
    const saved = checkpoints[0]!
    const resumed = trainAdapter(
      new LoraTrainer(model, withDropout, { kind: "classification", classes: 2 }, {
        weights: saved.weights,
        head: saved.head!,
        optimizer: saved.optimizer
      }),
      samples
    )
    expect(resumed.losses).toEqual(whole.losses.slice(2))
    expect(resumed.weights.modules["layers.3.intermediate"]!.A).toEqual(
      whole.weights.modules["layers.3.intermediate"]!.A
    )
  })

  it("trains an adapter that ONNX Runtime runs merged into the model", async () => {
    const { bytes, model, samples } = encoderTask()
    const trainer = new LoraTrainer(model, config, { kind: "classification", classes: 2 })
    const result = trainAdapter(trainer, samples)
    const feeds = tokenFeeds(model, samples.slice(0, 2).map((sample) => sample.ids))
    const output = model.graph.outputs[0]!.name
    const merged =
      (await run(await createSession(writeModel(mergeAdapter(model, result.weights))), ortFeeds(feeds), [output]))[
        output
      ]!.data
    const base = (await run(await createSession(bytes), ortFeeds(feeds), [output]))[output]!.data
    const ours = trainer.features(samples.slice(0, 2))
    let moved = 0
    for (let i = 0; i < base.length; i++) moved = Math.max(moved, Math.abs(base[i]! - merged[i]!))
    expect(moved).toBeGreaterThan(1e-3)
    // The executor's pooled features with the branch equal ORT's on the merged weights.
    const width = 192
    const pooled = new Float32Array(width)
    const length = feeds.get("input_ids")!.dims[1]!
    const used = samples[0]!.ids.length
    for (let t = 0; t < used; t++) for (let h = 0; h < width; h++) pooled[h]! += merged[t * width + h]! / used
    pooled.forEach((value, h) => expect(Math.abs(value - ours[0]![h]!)).toBeLessThan(1e-4))
    expect(length).toBeGreaterThanOrEqual(used)
  })

  it("refuses bad options in one line", () => {
    const { model } = encoderTask()
    const objective = { kind: "classification", classes: 2 } as const
    expect(() => new LoraTrainer(model, { rank: 0 }, objective)).toThrow(
      "rank must be a whole number from 1 to 64 (not 0)"
    )
    expect(() => new LoraTrainer(model, { rank: 2, dropout: 1 }, objective)).toThrow(
      "dropout must be in [0, 1) (not 1)"
    )
    expect(() => new LoraTrainer(model, { rank: 2, schedule: "step" as "cosine" }, objective)).toThrow(
      "schedule must be cosine, linear or constant (not step)"
    )
    expect(() => new LoraTrainer(model, { rank: 2, targetModules: ["layers.9.query"] }, objective)).toThrow(
      "layers.9.query is not a LoRA target of this model (24 targets, such as layers.0.query, layers.0.key, layers.0.value)"
    )
    expect(() => new LoraTrainer(model, { rank: 2 }, { kind: "classification", classes: 1 })).toThrow(
      "a classifier needs 2 or more classes (not 1)"
    )
  })
})

describe("training in a worker thread", () => {
  it("reports progress and returns the adapter; a bad request fails in one line", async () => {
    const { bytes, samples } = encoderTask()
    const progress: Array<number> = []
    const request = {
      modelBytes: bytes,
      config: { rank: 1, batchSize: 8, epochs: 2, targetModules: ["layers.0.value"] },
      objective: { kind: "classification", classes: 2 } as const,
      samples
    }
    const result = await trainInWorker(request, { onProgress: (step) => progress.push(step.step) })
    expect(progress).toEqual([1, 2])
    expect(Object.keys(result.weights.modules)).toEqual(["layers.0.value"])
    expect(result.weights.modules["layers.0.value"]!.B.some((value) => value !== 0)).toBe(true)
    await expect(trainInWorker({ ...request, config: { rank: 1, targetModules: ["nope"] } })).rejects.toThrow(
      "nope is not a LoRA target of this model"
    )
  })

  it("with a helper thread computing half of each micro-batch, trains exactly as one thread does, dropout included", async () => {
    const { bytes, model, samples } = encoderTask()
    const request = {
      modelBytes: bytes,
      config: { rank: 2, batchSize: 5, epochs: 2, dropout: 0.2, seed: 4, targetModules: ["layers.1.query"] },
      objective: { kind: "classification", classes: 2 } as const,
      samples
    }
    const [helped, alone] = await Promise.all([
      trainInWorker(request, {}, undefined, 2),
      trainInWorker(request, {}, undefined, 1)
    ])
    const inProcess = trainAdapter(new LoraTrainer(model, request.config, request.objective), samples)
    for (const result of [alone, inProcess]) {
      expect(result.losses).toEqual(helped.losses)
      expect(Array.from(result.weights.modules["layers.1.query"]!.A)).toEqual(
        Array.from(helped.weights.modules["layers.1.query"]!.A)
      )
      expect(Array.from(result.head!.weight)).toEqual(Array.from(helped.head!.weight))
    }
    expect(helped.weights.modules["layers.1.query"]!.B.some((value) => value !== 0)).toBe(true)
  })
})

describe("training in a browser worker", () => {
  it(
    "bundles with no Node module and trains in a worker-like realm without process, as the Node thread does",
    async () => {
      // A browser Web Worker's view: the module bundled for the browser, run in a fresh realm whose
      // globals are a worker's (postMessage, onmessage, WebAssembly, atob, performance) and no `process`.
      const bundle = await esbuild.build({
        entryPoints: ["src/compute/lora/train/TrainingWorker.ts"],
        bundle: true,
        platform: "browser",
        format: "iife",
        write: false,
        logLevel: "silent"
      })
      const messages: Array<TrainingMessage> = []
      const realm = vm.createContext({
        postMessage: (message: TrainingMessage) => messages.push(message),
        onmessage: null,
        atob,
        performance,
        TextDecoder,
        TextEncoder,
        console
      })
      vm.runInContext(bundle.outputFiles[0]!.text, realm)
      expect(vm.runInContext("typeof process", realm)).toBe("undefined")
      const { bytes, samples } = encoderTask()
      const request = {
        modelBytes: bytes,
        config: { rank: 2, batchSize: 8, epochs: 2, targetModules: ["layers.0.value", "layers.1.query"] },
        objective: { kind: "classification", classes: 2 } as const,
        samples
      }
      ;(realm["onmessage"] as (event: { data: unknown }) => void)({ data: request })
      const done = messages.find((message) => message.type === "done")
      expect(
        messages.filter((message) => message.type === "progress").map((message) =>
          message.type === "progress" && message.progress.step
        )
      ).toEqual([1, 2])
      expect(done?.type).toBe("done")
      const fromThread = await trainInWorker(request)
      const inBrowser = (done as Extract<TrainingMessage, { type: "done" }>).result
      for (const [module, factors] of Object.entries(fromThread.weights.modules)) {
        expect(Array.from(inBrowser.weights.modules[module]!.A)).toEqual(Array.from(factors.A))
        expect(Array.from(inBrowser.weights.modules[module]!.B)).toEqual(Array.from(factors.B))
      }
    },
    60_000
  )
})
