/**
 * LoRA on a 4-bit (MatMulNBits) base, the QLoRA case, on tiny-lm and its INT4 form: the same targets
 * under the same module names (AWQ's input scaling included); the branch fed zeros is the plain INT4
 * model in ONNX Runtime, and fed an adapter trained on FP32 it moves the INT4 model's output as it moves
 * FP32's; the training executor's MatMulNBits is ONNX Runtime's; an adapter trained through the 4-bit
 * base (or on FP32) reaches on it a held-out perplexity within 2% of the FP32 base with its adapter; and
 * the inference service runs adapters on the INT4 model through adapter slots.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import { Inference } from "../../../src/compute/inference/Inference.js"
import { readModelFolder } from "../../../src/compute/inference/ModelFolder.js"
import { SeededRandom } from "../../../src/compute/lora/Adapter.js"
import { adapterLayout, feedsFor, injectAdapterInputs, loraTargets } from "../../../src/compute/lora/GraphLora.js"
import { adaptedSession, ortFeeds } from "../../../src/compute/lora/train/Evaluate.js"
import { compile, forward, fromOnnxTensor } from "../../../src/compute/lora/train/Executor.js"
import { tokenFeeds } from "../../../src/compute/lora/train/Objectives.js"
import { operatorFor } from "../../../src/compute/lora/train/Operators.js"
import type { FloatTensor } from "../../../src/compute/lora/train/Tensor.js"
import { floatTensor } from "../../../src/compute/lora/train/Tensor.js"
import type { OnnxModel, OnnxTensor } from "../../../src/compute/onnx/OnnxModel.js"
import { AttributeType, DataType, writeModel } from "../../../src/compute/onnx/OnnxModel.js"
import { float32Tensor, uint8Tensor } from "../../../src/compute/onnx/Tensors.js"
import type { Feeds } from "../../../src/compute/optimize/Runner.js"
import { createSession, run } from "../../../src/compute/optimize/Runner.js"
import { quantizeInt4Rtn } from "../../../src/compute/quantize/Int4.js"
import { rewriteWeights } from "../../../src/compute/quantize/Rewrite.js"
import { int4Adaptation, referenceModel } from "../../support/LoraTasks.js"

const random = (seed: number, length: number, size = 1) => {
  const draws = new SeededRandom(seed)
  return Float32Array.from({ length }, () => (draws.uniform() * 2 - 1) * size)
}

const worstDifference = (left: ArrayLike<number>, right: ArrayLike<number>) => {
  let worst = 0
  for (let i = 0; i < left.length; i++) worst = Math.max(worst, Math.abs(left[i]! - right[i]!))
  return worst
}

const logitsOf = async (model: OnnxModel | Uint8Array, feeds: Feeds) => {
  const session = await createSession(model instanceof Uint8Array ? model : writeModel(model))
  const logits = (await run(session, feeds, ["logits"]))["logits"]!.data
  await session.release()
  return logits
}

const fp32 = referenceModel("tiny-lm")
const int4 = rewriteWeights(fp32.model, { defaultFormat: "INT4" }).model
const rows = [
  "The whale was seen off the coast of Nantucket in the year 1820.",
  "Please find the patch for the mailing list server attached below"
].map((text) => Array.from(fp32.tokenizer.encode(text, { truncation: 16 }).ids, Number))

/** The mail task, small enough for the fast suite: 12 optimizer steps on each base. */
let adaptation: ReturnType<typeof int4Adaptation> | undefined
const smallAdaptation = () =>
  adaptation ??= int4Adaptation({
    trainWindows: 48,
    heldOutWindows: 24,
    windowLength: 32,
    config: { epochs: 2 },
    inThisThread: true
  })

describe("LoRA targets on a 4-bit base", () => {
  it("are the FP32 model's, by module name, shape and branch input, with AWQ's input scaling too", () => {
    const shape = (targets: ReturnType<typeof loraTargets>) =>
      targets.map(({ inFeatures, input, module, outFeatures }) => ({ module, input, inFeatures, outFeatures }))
    const fp32Targets = loraTargets(fp32.model)
    const int4Targets = loraTargets(int4)
    expect(int4Targets).toHaveLength(16)
    expect(shape(int4Targets)).toEqual(shape(fp32Targets))
    expect(new Set(int4Targets.map((target) => target.storage))).toEqual(new Set(["int4"]))
    expect(int4Targets[0]!.node).toBe("/model/blocks.0/attn/c_attn/MatMulNBits")

    // AWQ multiplies the MatMul's input by per-channel scales: the branch reads the unscaled input.
    const inputScales = new Map(
      fp32Targets.map((target, index) => [target.weight, random(index + 1, target.inFeatures).map((s) => 1.5 + s)])
    )
    const awq = rewriteWeights(fp32.model, { defaultFormat: "INT4", inputScales }).model
    expect(awq.graph.nodes.filter((node) => node.name?.endsWith("/AwqInputScale"))).toHaveLength(16)
    expect(shape(loraTargets(awq))).toEqual(shape(fp32Targets))
  })

  it("refuses, in one line, 4-bit nodes named without their module path", () => {
    const unnamed = {
      ...int4,
      graph: {
        ...int4.graph,
        nodes: int4.graph.nodes.map((node, index) =>
          node.opType === "MatMulNBits" ? { ...node, name: `weight_${index}__q${index}_matmul` } : node
        )
      }
    }
    expect(loraTargets(unnamed)).toEqual([])
    expect(() => injectAdapterInputs(unnamed, ["model.blocks.0.c_fc"], 2)).toThrow(
      "the model's 4-bit MatMulNBits nodes have no module paths in their names (quantized by an older edge-net or another tool): quantize the FP32 model again"
    )
  })
})

const logitsOfNode = async (model: OnnxModel, a: FloatTensor) => {
  const session = await createSession(writeModel(model))
  const output = (await run(session, { A: { type: "float32", data: a.data, dims: a.dims } }, ["Y"]))["Y"]!.data
  await session.release()
  return output
}

describe("the executor's MatMulNBits", () => {
  /** One MatMulNBits node over A [2, 3, K] with a weight [K, N] quantized by our round-to-nearest. */
  const singleNode = (K: number, N: number, blockSize: number, withZeroPoints: boolean) => {
    const blocks = quantizeInt4Rtn(random(5, K * N), K, N, blockSize)
    const perColumn = Math.ceil(K / blockSize)
    // Without zero points, both runtimes read every block's zero point as 8.
    const initializers: Array<OnnxTensor> = [
      uint8Tensor("B", [N, perColumn, blockSize / 2], blocks.packed),
      float32Tensor("scales", [N * perColumn], blocks.scales),
      ...(withZeroPoints ? [uint8Tensor("zero_points", [blocks.zeroPoints.length], blocks.zeroPoints)] : [])
    ]
    const int = (name: string, value: number) => ({ name, type: AttributeType.INT, i: BigInt(value) })
    const floatValue = (name: string, dims: Array<number>) => ({
      name,
      type: { tensorType: { elemType: DataType.FLOAT, shape: dims.map((value) => ({ value })) } }
    })
    const node = {
      opType: "MatMulNBits",
      domain: "com.microsoft",
      name: "/layer/MatMulNBits",
      inputs: ["A", "B", "scales", ...(withZeroPoints ? ["zero_points"] : [])],
      outputs: ["Y"],
      attributes: [int("K", K), int("N", N), int("bits", 4), int("block_size", blockSize)]
    }
    const model: OnnxModel = {
      irVersion: 8,
      opsetImports: [{ version: 17 }, { domain: "com.microsoft", version: 1 }],
      graph: {
        name: "single",
        nodes: [node],
        initializers,
        inputs: [floatValue("A", [2, 3, K])],
        outputs: [floatValue("Y", [2, 3, N])],
        valueInfo: []
      }
    }
    return { model, node, initializers }
  }

  it.each([[80, 24, 32, true], [64, 10, 16, false]] as const)(
    "equals ONNX Runtime's on K %i, N %i, blocks of %i (zero points given: %s), and passes its gradient to the input",
    async (K, N, blockSize, withZeroPoints) => {
      const { initializers, model, node } = singleNode(K, N, blockSize, withZeroPoints)
      const a = floatTensor([2, 3, K], random(9, 6 * K))
      const reference = await logitsOfNode(model, a)
      const operator = operatorFor("MatMulNBits", "com.microsoft")!
      const context = { node, training: false, random: () => 0.5 }
      const inputs = [a, ...initializers.map(fromOnnxTensor)]
      const ours = operator.forward(inputs, context)[0] as FloatTensor
      expect(ours.dims).toEqual([2, 3, N])
      const scale = Math.max(...Array.from(reference, Math.abs))
      expect(worstDifference(ours.data, reference) / scale).toBeLessThan(1e-5)

      // The output is linear in A: its vector-Jacobian product is exact, and the weight gets none.
      const weights = random(10, ours.data.length)
      const [dA] = operator.backward!(inputs, [ours], [weights], inputs.map((_, index) => index === 0), context)
      const loss = (shift: number, index: number) => {
        const shifted = a.data.slice()
        shifted[index]! += shift
        const out = operator.forward([floatTensor(a.dims, shifted), ...inputs.slice(1)], context)[0]!.data
        return Array.from(out).reduce((sum, value, i) => sum + Number(value) * weights[i]!, 0)
      }
      for (const index of [0, 7, a.data.length - 1]) {
        expect(dA![index]!).toBeCloseTo((loss(0.5, index) - loss(-0.5, index)) / 1, 3)
      }
      expect(() => operator.backward!(inputs, [ours], [weights], [true, true], context)).toThrow(
        "MatMulNBits /layer/MatMulNBits: the 4-bit weight, its scales and bias are frozen: no gradients"
      )
    }
  )

  it("runs the INT4 model (4-bit MatMuls, INT8 embeddings) as ONNX Runtime does", async () => {
    const feeds = tokenFeeds(int4, rows)
    const ours = forward(compile(int4, []), feeds).values.get("logits")!.data
    const reference = await logitsOf(int4, ortFeeds(feeds))
    expect(ours.length).toBe(reference.length)
    expect(worstDifference(ours, reference)).toBeLessThan(1e-4)
  })
})

describe("adapters on a 4-bit base", () => {
  it(
    "fed zeros, the branch is the plain INT4 model; fed an FP32-trained adapter, it moves INT4 as it moves FP32",
    async () => {
      const { weights } = await smallAdaptation()
      const feeds = ortFeeds(tokenFeeds(int4, rows))
      const injected = injectAdapterInputs(int4, loraTargets(int4).map((target) => target.module), 4)
      const plain = await logitsOf(int4, feeds)
      const zero = await logitsOf(injected, { ...feeds, ...feedsFor(adapterLayout(injected)) })
      expect(worstDifference(zero, plain)).toBeLessThan(1e-5)

      const moved = async (model: OnnxModel, base: Float32Array) => {
        const adapted = await adaptedSession(model, weights.fp32)
        const logits = (await run(adapted.session, { ...feeds, ...adapted.feeds }, ["logits"]))["logits"]!.data
        await adapted.session.release()
        return logits.map((value, index) => value - base[index]!)
      }
      const onFp32 = await moved(fp32.model, await logitsOf(fp32.bytes, feeds))
      const onInt4 = await moved(int4, plain)
      const norm = (values: Float32Array) => Math.sqrt(values.reduce((sum, value) => sum + value * value, 0))
      const apart = norm(onInt4.map((value, index) => value - onFp32[index]!)) / norm(onFp32)
      expect(norm(onFp32) / Math.sqrt(onFp32.length)).toBeGreaterThan(0.1)
      // Measured 0.05 (4-bit rounding moves the activations the branch reads); a wrong branch input is ~1.
      expect(apart).toBeLessThan(0.1)
    },
    60_000
  )

  it(
    "reach on the INT4 base a held-out perplexity within 2% of the FP32 base with its adapter, trained on either",
    async () => {
      const { perplexity } = await smallAdaptation()
      console.log(
        `INT4 LoRA (12 steps, ${
          JSON.stringify(Object.fromEntries(Object.entries(perplexity).map(([k, v]) => [k, +v.toFixed(2)])))
        })`
      )
      // Both adapters learned the mail: well below either base.
      expect(perplexity.fp32Adapter).toBeLessThan(0.8 * perplexity.fp32Base)
      expect(perplexity.int4Adapter).toBeLessThan(0.8 * perplexity.int4Base)
      expect(Math.abs(perplexity.fp32AdapterOnInt4 / perplexity.fp32Adapter - 1)).toBeLessThan(0.02)
      expect(Math.abs(perplexity.int4Adapter / perplexity.fp32Adapter - 1)).toBeLessThan(0.02)
    },
    60_000
  )

  it.scoped("run in the inference service through adapter slots on the INT4 file", () =>
    Effect.gen(function*() {
      const { weights } = yield* Effect.promise(smallAdaptation)
      const inference = yield* Inference
      const source = yield* readModelFolder("models/reference/tiny-lm")
      const int4Bytes = writeModel(int4)
      const fp32Digest = crypto.createHash("sha256").update(source.model).digest("hex")
      const base = yield* inference.loadModel({ ...source, model: int4Bytes })
      const slotted = yield* inference.loadModel({
        ...source,
        model: int4Bytes,
        adapterSlots: { rank: 4 },
        baseModelDigest: fp32Digest
      })
      const adapter = { metadata: { id: "mail", baseModelDigest: fp32Digest }, weights: weights.fp32 }
      const prompt = "Hi all, the list server"
      const text = (handle: typeof base, withAdapter?: typeof adapter) =>
        Effect.map(
          inference.generate(handle, prompt, { maxNewTokens: 12, temperature: 0, adapter: withAdapter }),
          (result) => result.text
        )
      const baseText = yield* text(base)
      expect(yield* text(slotted)).toBe(baseText)
      expect(yield* text(slotted, adapter)).not.toBe(baseText)
      // Without the declared digest, the INT4 file answers to its own: the FP32 model's adapter is refused.
      const undeclared = yield* inference.loadModel({ ...source, model: int4Bytes, adapterSlots: { rank: 4 } })
      const refused = yield* Effect.flip(inference.generate(undeclared, prompt, { maxNewTokens: 2, adapter }))
      expect(refused.message).toMatch(/^adapter mail was made for base model [0-9a-f]{64}, not /)
    }).pipe(Effect.provide(Inference.node)), 60_000)
})
