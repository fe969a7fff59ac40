/**
 * The training executor's speed-ups hold to what they replace: the SIMD transcendental kernels
 * (RowKernels.wat) against JavaScript's Math.exp and the erf the executor had, the operators and the
 * loss with SIMD on against the same with SIMD off, and a trainer whose runs reuse the arrays of
 * earlier ones (its buffer pool) against a fresh trainer.
 */
import { describe, expect, it } from "@effect/vitest"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import { compile } from "../../../src/compute/lora/train/Executor.js"
import { fuseGelu, fuseLowRankLinear } from "../../../src/compute/lora/train/GraphFusion.js"
import { LoraTrainer } from "../../../src/compute/lora/train/LoraTrainer.js"
import { nextTokenLoss } from "../../../src/compute/lora/train/Objectives.js"
import { operatorFor } from "../../../src/compute/lora/train/Operators.js"
import { simdErf, simdErfGrad, simdExp, simdSoftmaxRows } from "../../../src/compute/lora/train/RowKernels.js"
import { setSimdEnabled } from "../../../src/compute/lora/train/SimdModule.js"
import type { Tensor } from "../../../src/compute/lora/train/Tensor.js"
import { floatTensor } from "../../../src/compute/lora/train/Tensor.js"
import type { OnnxNode } from "../../../src/compute/onnx/OnnxModel.js"
import { float32Tensor } from "../../../src/compute/onnx/Tensors.js"
import { referenceModel } from "../../support/LoraTasks.js"

const uniform = (seed: number, length: number, size = 1) => {
  const draws = new SeededRandom(seed)
  return Float32Array.from({ length }, () => (draws.uniform() * 2 - 1) * size)
}

const withSimd = <T>(on: boolean, work: () => T): T => {
  setSimdEnabled(on)
  try {
    return work()
  } finally {
    setSimdEnabled(true)
  }
}

/** The erf the executor computed in JavaScript (Numerical Recipes' erfc fit, error below 1.2e-7). */
const erfReference = (x: number) => {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
                    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
  const r = t * Math.exp(poly)
  return x >= 0 ? 1 - r : r - 1
}

const worstAbsolute = (ours: ArrayLike<number>, theirs: ArrayLike<number>) => {
  let worst = 0
  for (let i = 0; i < theirs.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - theirs[i]!))
  return worst
}

const operatorNode = (opType: string, inputs: number): OnnxNode => ({
  opType,
  name: opType,
  inputs: Array.from({ length: inputs }, (_, index) => `in${index}`),
  outputs: ["out0"],
  attributes: []
})

describe("SIMD row kernels", () => {
  it("exp is Math.exp to 2e-7 relative, exactly 0 below float32's range (masked attention scores)", () => {
    // 1,001 values over [-80, 80]: an odd count, so the padded tail vector is exercised too.
    const x = Float32Array.from({ length: 1001 }, (_, i) => (i - 500) * 0.16)
    const out = new Float32Array(x.length)
    expect(simdExp(x, out)).toBe(true)
    x.forEach((value, i) => expect(Math.abs(out[i]! - Math.exp(value)) / Math.exp(value)).toBeLessThan(2e-7))
    const extremes = Float32Array.of(-3.4e38, -Infinity, -100, 0, 1)
    const exps = new Float32Array(5)
    simdExp(extremes, exps)
    expect([...exps.subarray(0, 4)]).toEqual([0, 0, 0, 1])
    expect(Math.abs(exps[4]! - Math.E)).toBeLessThan(1e-6)
  })

  it("erf and its derivative match the JavaScript functions to 5e-7", () => {
    const x = Float32Array.from({ length: 4003 }, (_, i) => (i - 2001) / 400)
    const g = uniform(4, x.length, 2)
    const erf = new Float32Array(x.length)
    const grad = new Float32Array(x.length)
    expect(simdErf(x, erf)).toBe(true)
    expect(simdErfGrad(x, g, grad)).toBe(true)
    expect(worstAbsolute(erf, Array.from(x, erfReference))).toBeLessThan(5e-7)
    expect(worstAbsolute(grad, Array.from(x, (v, i) => g[i]! * (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v))))
      .toBeLessThan(5e-7)
    expect(erf[2001]).toBe(0)
    expect(erf[0]).toBeCloseTo(-erf[4002]!, 7)
  })

  it("softmax rows equal the float64 softmax, log-sum-exps included, at an offset, masked entries 0", () => {
    const [rows, width] = [5, 36]
    const x = uniform(7, 3 + rows * width, 8)
    x[3 + width + 2] = -3.4e38
    const out = new Float32Array(x.length)
    const logSumExp = new Float64Array(rows)
    expect(simdSoftmaxRows(x, 3, rows, width, out, logSumExp)).toBe(true)
    expect(simdSoftmaxRows(x, 3, rows, width - 2, out)).toBe(false)
    expect([...out.subarray(0, 3)]).toEqual([0, 0, 0])
    for (let row = 0; row < rows; row++) {
      const values = Array.from(x.subarray(3 + row * width, 3 + (row + 1) * width))
      const max = Math.max(...values)
      const sum = values.reduce((total, value) => total + Math.exp(value - max), 0)
      const expected = values.map((value) => Math.exp(value - max) / sum)
      expect(worstAbsolute(out.subarray(3 + row * width, 3 + (row + 1) * width), expected)).toBeLessThan(1e-7)
      expect(Math.abs(logSumExp[row]! - (max + Math.log(sum)))).toBeLessThan(1e-5)
    }
    expect(out[3 + width + 2]).toBe(0)
  })
})

describe("the executor with SIMD on and off", () => {
  it("Erf, Gelu, Softmax, LayerNormalization and the next-token loss agree", () => {
    const x = floatTensor([6, 40], uniform(8, 240, 3))
    const g = uniform(9, 240)
    const run = (opType: string) => {
      const operator = operatorFor(opType)!
      const context = { node: operatorNode(opType, 1), training: false, random: () => 0.5 }
      const inputs: Array<Tensor> = [x]
      const [out] = operator.forward(inputs, context)
      const [dx] = operator.backward!(inputs, [out!], [g], [true], context)
      return { out: out!.data as Float32Array, dx: dx! }
    }
    for (const opType of ["Erf", "Gelu", "Softmax"]) {
      const simd = withSimd(true, () => run(opType))
      const scalar = withSimd(false, () => run(opType))
      expect(worstAbsolute(simd.out, scalar.out), opType).toBeLessThan(1e-6)
      expect(worstAbsolute(simd.dx, scalar.dx), opType).toBeLessThan(1e-6)
    }
    // LayerNormalization, with a bias and without: forward, and the gradient of its input.
    for (const withBias of [true, false]) {
      const inputs: Array<Tensor> = [x, floatTensor([40], uniform(12, 40, 2))]
      if (withBias) inputs.push(floatTensor([40], uniform(13, 40)))
      const layerNorm = () => {
        const operator = operatorFor("LayerNormalization")!
        const context = {
          node: {
            ...operatorNode("LayerNormalization", inputs.length),
            attributes: [{ name: "epsilon", type: 1, f: 1e-5 }]
          },
          training: false,
          random: () => 0.5
        }
        const [out] = operator.forward(inputs, context)
        const [dx] = operator.backward!(inputs, [out!], [g], [true, false, false], context)
        return { out: out!.data as Float32Array, dx: dx! }
      }
      const simd = withSimd(true, layerNorm)
      const scalar = withSimd(false, layerNorm)
      expect(worstAbsolute(simd.out, scalar.out)).toBeLessThan(2e-6)
      expect(worstAbsolute(simd.dx, scalar.dx)).toBeLessThan(2e-6)
    }
    const logits = floatTensor([2, 5, 12], uniform(10, 120, 4))
    const rows = [[1, 2, 3, 4, 5], [6, 7, 8]]
    const loss = (simd: boolean) => withSimd(simd, () => nextTokenLoss(logits, rows, 0.25, [1, 0.5]))
    const simd = loss(true)
    const scalar = loss(false)
    expect(Math.abs(simd.total - scalar.total)).toBeLessThan(1e-5)
    expect(simd.count).toBe(scalar.count)
    expect(worstAbsolute(simd.grad!, scalar.grad!)).toBeLessThan(1e-7)
    // Positions past a row's end have no target: their gradient stays 0.
    expect(simd.grad!.subarray(5 * 12 + 2 * 12).every((value) => value === 0)).toBe(true)
  })
})

describe("graph fusion", () => {
  it("makes one Gelu of each of GPT-2's erf chains, and the program computes what the unfused graph does", () => {
    const { model } = referenceModel("tiny-lm")
    const program = compile(model, [])
    const opTypes = program.steps.map((step) => step.node.opType)
    expect(opTypes.filter((opType) => opType === "Gelu")).toHaveLength(4)
    expect(opTypes).not.toContain("Erf")
    const x = floatTensor([5, 7], uniform(11, 35, 4))
    const chain = (input: Tensor) => {
      const constant = (value: number) => floatTensor([], Float32Array.of(value))
      const run = (opType: string, inputs: Array<Tensor>) =>
        operatorFor(opType)!.forward(inputs, {
          node: operatorNode(opType, inputs.length),
          training: false,
          random: () => 0.5
        })[0]!
      const erf = run("Erf", [run("Div", [input, constant(Math.SQRT2)])])
      return run("Mul", [run("Mul", [input, run("Add", [erf, constant(1)])]), constant(0.5)])
    }
    const fused = operatorFor("Gelu")!.forward([x], {
      node: operatorNode("Gelu", 1),
      training: false,
      random: () => 0.5
    })[0]!
    expect(worstAbsolute(fused.data as Float32Array, chain(x).data as Float32Array)).toBeLessThan(2e-6)
  })

  it("leaves a chain alone when a value in it is read elsewhere or the constants are not GELU's", () => {
    const scalar = (name: string, value: number) => float32Tensor(name, [], [value])
    const constants = new Map([["root2", scalar("root2", Math.SQRT2)], ["one", scalar("one", 1)], [
      "half",
      scalar("half", 0.5)
    ], ["third", scalar("third", 1 / 3)]])
    const chain = (last: string): Array<OnnxNode> => [
      { opType: "Div", inputs: ["x", "root2"], outputs: ["d"], attributes: [] },
      { opType: "Erf", inputs: ["d"], outputs: ["e"], attributes: [] },
      { opType: "Add", inputs: ["e", "one"], outputs: ["a"], attributes: [] },
      { opType: "Mul", inputs: ["x", "a"], outputs: ["p"], attributes: [] },
      { opType: "Mul", inputs: ["p", last], outputs: ["y"], attributes: [] }
    ]
    expect(fuseGelu(chain("half"), constants, new Set(["y"])).map((node) => node.opType)).toEqual(["Gelu"])
    expect(fuseGelu(chain("third"), constants, new Set(["y"]))).toHaveLength(5)
    expect(fuseGelu(chain("half"), constants, new Set(["y", "e"]))).toHaveLength(5)
    const readTwice = [...chain("half"), { opType: "Neg", inputs: ["a"], outputs: ["n"], attributes: [] }]
    expect(fuseGelu(readTwice, constants, new Set(["y"]))).toHaveLength(6)
  })
})

describe("a layer with its LoRA branch fused", () => {
  const run = (opType: string, inputs: Array<Tensor>, domain?: string) =>
    operatorFor(opType, domain)!.forward(inputs, {
      node: operatorNode(opType, inputs.length),
      training: false,
      random: () => 0.5
    })[0]!

  it("LowRankLinear is x W + down B + bias, with the MatMul gradients of x, down and B, SIMD or not", () => {
    const [rows, k, r, n] = [6, 20, 3, 22]
    const x = floatTensor([2, 3, k], uniform(20, rows * k))
    const w = floatTensor([k, n], uniform(21, k * n))
    const down = floatTensor([2, 3, r], uniform(22, rows * r))
    const b = floatTensor([r, n], uniform(23, r * n))
    const bias = floatTensor([n], uniform(24, n))
    const g = uniform(25, rows * n)
    const unfused = run("Add", [bias, run("Add", [run("MatMul", [x, w]), run("MatMul", [down, b])])])
    const matMulGrads = (a: Tensor, weight: Tensor) => {
      const operator = operatorFor("MatMul")!
      const context = { node: operatorNode("MatMul", 2), training: false, random: () => 0.5 }
      return operator.backward!([a, weight], [run("MatMul", [a, weight])], [g], [true, true], context)
    }
    const [dx] = matMulGrads(x, w)
    const [dDown, dB] = matMulGrads(down, b)
    for (const simd of [true, false]) {
      withSimd(simd, () => {
        const inputs = [x, w, down, b, bias]
        const context = { node: operatorNode("LowRankLinear", 5), training: false, random: () => 0.5 }
        const fused = operatorFor("LowRankLinear", "edge-net")!
        const [out] = fused.forward(inputs, context)
        expect(out!.dims).toEqual([2, 3, n])
        expect(worstAbsolute(out!.data as Float32Array, unfused.data as Float32Array)).toBeLessThan(2e-6)
        const grads = fused.backward!(inputs, [out!], [g], [true, false, true, true, false], context)
        expect(worstAbsolute(grads[0]!, dx!)).toBeLessThan(2e-6)
        expect(worstAbsolute(grads[2]!, dDown!)).toBeLessThan(2e-6)
        expect(worstAbsolute(grads[3]!, dB!)).toBeLessThan(2e-6)
        expect(() => fused.backward!(inputs, [out!], [g], [true, true, true, true, false], context)).toThrow(/frozen/)
      })
    }
  })

  it("GPT-2's sixteen LoRA targets each become one node; a sum read elsewhere keeps its Adds", () => {
    const { model } = referenceModel("tiny-lm")
    const config = { rank: 2, alpha: 4, batchSize: 2, seed: 5 }
    const program = new LoraTrainer(model, config, { kind: "causal-lm" }).program
    const fused = program.steps.filter((step) => step.node.opType === "LowRankLinear")
    expect(fused).toHaveLength(16)
    expect(program.steps.some((step) => /lora\..*\.add/.test(step.node.name ?? ""))).toBe(false)
    const scalar = (name: string, dims: Array<number>) =>
      float32Tensor(name, dims, new Array(dims.reduce((a, b) => a * b, 1)).fill(1))
    const constants = new Map([["W", scalar("W", [4, 3])], ["bias", scalar("bias", [3])]])
    const layer = (extra: Array<OnnxNode>): Array<OnnxNode> => [
      { opType: "MatMul", inputs: ["x", "W"], outputs: ["base"], attributes: [] },
      { opType: "MatMul", inputs: ["x", "A"], outputs: ["down"], attributes: [] },
      { opType: "MatMul", inputs: ["down", "B"], outputs: ["up"], attributes: [] },
      { opType: "Add", inputs: ["base", "up"], outputs: ["sum"], attributes: [] },
      { opType: "Add", inputs: ["bias", "sum"], outputs: ["y"], attributes: [] },
      ...extra
    ]
    const opTypes = (nodes: Array<OnnxNode>) => nodes.map((node) => node.opType)
    expect(opTypes(fuseLowRankLinear(layer([]), constants, new Set(["y"])))).toEqual(["MatMul", "LowRankLinear"])
    // The sum read by another node: the branch still fuses, the bias Add stays.
    const shared = fuseLowRankLinear(
      layer([{ opType: "Neg", inputs: ["sum"], outputs: ["n"], attributes: [] }]),
      constants,
      new Set(["y"])
    )
    expect(opTypes(shared)).toEqual(["MatMul", "LowRankLinear", "Add", "Neg"])
    expect(shared[1]!.inputs).toEqual(["x", "W", "down", "B"])
    // The base product read elsewhere: nothing fuses.
    expect(
      fuseLowRankLinear(
        layer([{ opType: "Neg", inputs: ["base"], outputs: ["n"], attributes: [] }]),
        constants,
        new Set(["y"])
      )
    )
      .toHaveLength(6)
  })
})

describe("the trainer's buffer pool", () => {
  it("a trainer reusing the arrays of its earlier runs computes what a fresh trainer does", () => {
    const { model } = referenceModel("tiny-lm")
    const config = { rank: 2, alpha: 4, batchSize: 2, seed: 5, targetModules: ["model.blocks.1.attn.c_attn"] }
    const windows = [0, 1, 2, 3].map((offset) => ({
      ids: Array.from({ length: 24 }, (_, t) => (offset * 311 + t * 17) % 3000)
    }))
    const reused = new LoraTrainer(model, config, { kind: "causal-lm" })
    reused.lossAndGrads(windows.slice(0, 2), 0.05, () => 0.5)
    const heldOutBefore = reused.languageModelLoss(windows.slice(0, 2))
    const second = reused.lossAndGrads(windows.slice(2), 0.05, () => 0.5)
    const fresh = new LoraTrainer(model, config, { kind: "causal-lm" }).lossAndGrads(windows.slice(2), 0.05, () => 0.5)
    expect(second.total).toBe(fresh.total)
    for (const [name, grad] of fresh.grads) expect(second.grads.get(name), name).toEqual(grad)
    // The weights (constants) were never handed to the pool: the same windows still give the same loss.
    expect(reused.languageModelLoss(windows.slice(0, 2))).toBe(heldOutBefore)
  })
})
