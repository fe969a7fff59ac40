/**
 * `--onnx-simplify`'s rewrites: the reference models shrink and a graph built to hold every kind of
 * redundancy loses each, and ONNX Runtime gives exactly the same outputs before and after.
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import {
  AttributeType,
  DataType,
  type OnnxAttribute,
  type OnnxModel,
  type OnnxNode,
  readModel,
  writeModel
} from "../../src/compute/onnx/OnnxModel.js"
import { simplify } from "../../src/compute/onnx/Simplify.js"
import { float32Tensor, int64Tensor } from "../../src/compute/onnx/Tensors.js"
import { randomFeeds } from "../../src/compute/optimize/Feeds.js"
import { createSession, type Feeds, run } from "../../src/compute/optimize/Runner.js"

const outputsOf = async (bytes: Uint8Array, feeds: Feeds) => {
  const session = await createSession(bytes)
  try {
    return await run(session, feeds)
  } finally {
    await session.release()
  }
}

const expectSameOutputs = async (before: Uint8Array, after: Uint8Array, feeds: Feeds) => {
  const [expected, actual] = await Promise.all([outputsOf(before, feeds), outputsOf(after, feeds)])
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort())
  for (const [name, output] of Object.entries(expected)) {
    expect(actual[name]!.dims).toEqual(output.dims)
    expect(Buffer.from(actual[name]!.data.buffer).equals(Buffer.from(output.data.buffer))).toBe(true)
  }
}

const node = (
  opType: string,
  inputs: ReadonlyArray<string>,
  outputs: ReadonlyArray<string>,
  attributes: ReadonlyArray<OnnxAttribute> = []
): OnnxNode => ({ opType, inputs, outputs, attributes, name: outputs[0] ?? opType })

/** y = ((x as [2, 3]) + w)² · 2, written the long way an exporter might. */
const redundant: OnnxModel = {
  irVersion: 8,
  opsetImports: [{ version: 17 }],
  graph: {
    name: "redundant",
    inputs: [{ name: "x", type: { tensorType: { elemType: DataType.FLOAT, shape: [{ value: 2 }, { value: 3 }] } } }],
    outputs: [{ name: "y", type: { tensorType: { elemType: DataType.FLOAT, shape: [{ value: 2 }, { value: 3 }] } } }],
    valueInfo: [],
    initializers: [
      float32Tensor("w", [3], [0.5, -1, 2]),
      int64Tensor("zero", [], [0]),
      int64Tensor("axis0", [1], [0]),
      int64Tensor("axis0_again", [1], [0])
    ],
    nodes: [
      node("Constant", [], ["minus_one"], [{
        name: "value",
        type: AttributeType.TENSOR,
        t: int64Tensor("", [1], [-1])
      }]),
      node("Shape", ["x"], ["shape"]),
      node("Gather", ["shape", "zero"], ["rows"], [{ name: "axis", type: AttributeType.INT, i: 0n }]),
      node("Unsqueeze", ["rows", "axis0"], ["rows_1d"]),
      node("Concat", ["rows_1d", "minus_one"], ["target"], [{ name: "axis", type: AttributeType.INT, i: 0n }]),
      node("Identity", ["x"], ["x_copy"]),
      node("Reshape", ["x_copy", "target"], ["reshaped"]),
      node("Add", ["reshaped", "w"], ["left"]),
      node("Add", ["reshaped", "w"], ["right"]),
      node("Mul", ["left", "right"], ["square"]),
      node("Mul", ["x", "x"], ["unused"]),
      node("Constant", [], ["two_int"], [{ name: "value", type: AttributeType.TENSOR, t: int64Tensor("", [], [2]) }]),
      node("Cast", ["two_int"], ["two"], [{ name: "to", type: AttributeType.INT, i: BigInt(DataType.FLOAT) }]),
      node("Unsqueeze", ["two", "axis0_again"], ["two_1d"]),
      node("Mul", ["square", "two_1d"], ["y"])
    ]
  }
}

describe("Simplify", () => {
  it("removes each kind of redundancy, and the outputs stay exactly the same", async () => {
    const { model, report } = simplify(redundant)
    expect(model.graph.nodes.map((n) => n.opType)).toEqual(["Reshape", "Add", "Mul", "Mul"])
    expect(report).toMatchObject({
      nodesBefore: 15,
      nodesAfter: 4,
      constantsPromoted: 2,
      identitiesRemoved: 1,
      duplicateNodes: 1,
      deadNodesRemoved: 1,
      duplicateInitializers: 2
    })
    // Shape of the fixed-size x, Gather, Unsqueeze, Concat; Cast and Unsqueeze of the 2. Equal scalars 2 (rows, two_int) merge too.
    expect(report.folded).toBe(6)
    // Only what the remaining nodes read is left: w, the folded shape and the folded 2.
    expect(model.graph.initializers.map((tensor) => tensor.name).sort()).toEqual(["target", "two_1d", "w"])
    const x = new Float32Array([1, -2, 3.25, 0.1, 7, -0.3])
    await expectSameOutputs(writeModel(redundant), writeModel(model), { x: { type: "float32", data: x, dims: [2, 3] } })
  })

  it.each(["tiny-lm", "tiny-encoder"])(
    "shrinks the reference %s and runs it to the same bits in ONNX Runtime",
    async (name) => {
      const bytes = new Uint8Array(fs.readFileSync(`models/reference/${name}/onnx/model.onnx`))
      const original = readModel(bytes)
      const { model, report } = simplify(original)
      expect(report.nodesAfter).toBeLessThan(report.nodesBefore * 0.7)
      expect(report.duplicateNodes).toBeGreaterThan(0)
      const simplified = writeModel(model)
      expect(simplified.length).toBeLessThan(bytes.length)
      const sizes = { batch_size: 2, sequence_length: 9, total_sequence_length: 9, past_sequence_length: 0 }
      for (const seed of [1, 2]) await expectSameOutputs(bytes, simplified, randomFeeds(original, seed, sizes))
    },
    60_000
  )

  it("keeps a model with nothing to simplify as it is", () => {
    const plain: OnnxModel = {
      ...redundant,
      graph: {
        ...redundant.graph,
        initializers: [float32Tensor("w", [3], [1, 2, 3])],
        nodes: [node("Add", ["x", "w"], ["y"])]
      }
    }
    const { model, report } = simplify(plain)
    expect(model.graph.nodes).toEqual(plain.graph.nodes)
    expect(report).toMatchObject({ nodesBefore: 1, nodesAfter: 1, folded: 0, duplicateNodes: 0, deadNodesRemoved: 0 })
  })
})
