/**
 * Running a model for the optimizer, in onnxruntime-node or (for models meant for browsers)
 * onnxruntime-web's WebAssembly build: named feeds in, named Float32 outputs out, median latency over
 * repeated runs, and the activations feeding chosen tensors (for GPTQ / AWQ).
 */
import type * as ort from "onnxruntime-node"
import type { OnnxModel } from "../onnx/OnnxModel.js"
import { DataType, writeModel } from "../onnx/OnnxModel.js"

export interface FeedTensor {
  readonly type: "float32" | "int64" | "int32" | "uint8" | "bool"
  readonly data: Float32Array | BigInt64Array | Int32Array | Uint8Array
  readonly dims: ReadonlyArray<number>
}

export type Feeds = Readonly<Record<string, FeedTensor>>

export type Outputs = Record<string, { readonly data: Float32Array; readonly dims: ReadonlyArray<number> }>

export type Runtime = "onnxruntime-node" | "onnxruntime-web"

/** The Tensor class of the package each session came from: a session only takes its own package's tensors. */
const tensorClasses = new WeakMap<ort.InferenceSession, typeof ort.Tensor>()

/** One thread each, so the FP32 and the optimized model are timed alike on a shared machine. */
export const createSession = async (
  bytes: Uint8Array,
  runtime: Runtime = "onnxruntime-node"
): Promise<ort.InferenceSession> => {
  if (runtime === "onnxruntime-node") {
    // Loaded on first use: a node that never optimizes never maps ONNX Runtime's native library.
    const ort = await import("onnxruntime-node")
    const session = await ort.InferenceSession.create(bytes, {
      graphOptimizationLevel: "all",
      intraOpNumThreads: 1,
      interOpNumThreads: 1
    })
    tensorClasses.set(session, ort.Tensor)
    return session
  }
  const web = await import("onnxruntime-web")
  web.env.wasm.numThreads = 1
  const session = await web.InferenceSession.create(bytes, {
    executionProviders: ["wasm"],
    graphOptimizationLevel: "all"
  })
  // eslint-disable-next-line no-restricted-syntax -- onnxruntime-web's session and tensor are onnxruntime-node's at run time, under a separate type tree
  tensorClasses.set(session as unknown as ort.InferenceSession, web.Tensor as unknown as typeof ort.Tensor)
  // eslint-disable-next-line no-restricted-syntax -- the same session object, typed by the other package
  return session as unknown as ort.InferenceSession
}

const toOrt = (Tensor: typeof ort.Tensor, feeds: Feeds): Record<string, ort.Tensor> =>
  Object.fromEntries(
    Object.entries(feeds).map((
      [name, tensor]
    ) => [name, new Tensor(tensor.type, tensor.data as Float32Array, [...tensor.dims])])
  )

export const run = async (
  session: ort.InferenceSession,
  feeds: Feeds,
  outputNames?: ReadonlyArray<string>
): Promise<Outputs> => {
  const wanted = Object.fromEntries(
    Object.entries(toOrt(tensorClasses.get(session) ?? (await import("onnxruntime-node")).Tensor, feeds)).filter((
      [name]
    ) => session.inputNames.includes(name))
  )
  const results = outputNames === undefined ? await session.run(wanted) : await session.run(wanted, [...outputNames])
  const outputs: Outputs = {}
  for (const [name, tensor] of Object.entries(results)) {
    if (tensor.type === "float32") outputs[name] = { data: tensor.data as Float32Array, dims: tensor.dims }
  }
  return outputs
}

/** Median wall time of one run over `repeats` runs (after one warm-up), in milliseconds. */
export const latencyMs = async (session: ort.InferenceSession, feeds: Feeds, repeats = 5): Promise<number> => {
  await run(session, feeds)
  const times: Array<number> = []
  for (let i = 0; i < repeats; i++) {
    const start = performance.now()
    await run(session, feeds)
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  return times[Math.floor(times.length / 2)]!
}

/**
 * The values of the named intermediate tensors for each feed: the model is rewritten so they are also
 * graph outputs, then run. Each result is flattened to rows of its last dimension.
 */
export const captureActivations = async (
  model: OnnxModel,
  tensors: ReadonlyArray<string>,
  feeds: ReadonlyArray<Feeds>
) => {
  const existing = new Set(model.graph.outputs.map((output) => output.name))
  const extra = tensors.filter((name) => !existing.has(name))
  const probe: OnnxModel = {
    ...model,
    graph: {
      ...model.graph,
      outputs: [
        ...model.graph.outputs,
        ...extra.map((name) => ({ name, type: { tensorType: { elemType: DataType.FLOAT } } }))
      ]
    }
  }
  const session = await createSession(writeModel(probe))
  const collected = new Map<string, { rows: Array<Float32Array>; width: number }>()
  for (const feed of feeds) {
    const outputs = await run(session, feed, tensors)
    for (const name of tensors) {
      const output = outputs[name]
      if (output === undefined) continue
      const width = output.dims[output.dims.length - 1] ?? 1
      const entry = collected.get(name) ?? { rows: [], width }
      entry.rows.push(output.data.slice())
      collected.set(name, entry)
    }
  }
  await session.release()
  return new Map(
    [...collected].map(([name, { rows, width }]) => {
      const total = rows.reduce((sum, row) => sum + row.length, 0)
      const data = new Float32Array(total)
      let offset = 0
      for (const row of rows) {
        data.set(row, offset)
        offset += row.length
      }
      return [name, { data, samples: total / width, width }] as const
    })
  )
}
