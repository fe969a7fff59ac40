/**
 * What the inference service needs from an ONNX runtime: a session made from model bytes, run with
 * named tensors, disposed. onnxruntime-node and onnxruntime-web share that API, so one adapter serves
 * both (RuntimeBackends.ts imports each package; the browser SDK hands its own onnxruntime-web here).
 */

export type TensorType = "float32" | "int64" | "int32"

export type TensorData = Float32Array | BigInt64Array | Int32Array

export interface Tensor {
  readonly type: TensorType
  readonly data: TensorData
  readonly dims: ReadonlyArray<number>
}

export interface ValueInfo {
  readonly name: string
  /** The element type ("float32", "float16", "int64", ...), when the runtime reports it. */
  readonly type: string | undefined
  /** Dimensions: a number when fixed, a name (or undefined) when symbolic. */
  readonly shape: ReadonlyArray<number | string | undefined> | undefined
}

export interface Session {
  readonly inputs: ReadonlyArray<ValueInfo>
  readonly outputs: ReadonlyArray<ValueInfo>
  readonly run: (
    feeds: Readonly<Record<string, Tensor>>,
    outputNames?: ReadonlyArray<string>
  ) => Promise<Record<string, Tensor>>
  readonly dispose: () => Promise<void>
}

export interface Backend {
  readonly name: "onnxruntime-node" | "onnxruntime-web"
  readonly createSession: (model: Uint8Array) => Promise<Session>
}

/** The slice of onnxruntime-common's API both packages export. */
interface OrtTensor {
  readonly type: string
  readonly data: unknown
  readonly dims: ReadonlyArray<number>
}

interface OrtSession {
  readonly inputNames: ReadonlyArray<string>
  readonly outputNames: ReadonlyArray<string>
  readonly inputMetadata?: ReadonlyArray<unknown>
  readonly outputMetadata?: ReadonlyArray<unknown>
  run(feeds: Record<string, OrtTensor>, fetches?: ReadonlyArray<string>): Promise<Record<string, OrtTensor>>
  release(): Promise<void>
}

export interface OrtModule {
  readonly Tensor: new(type: TensorType, data: TensorData, dims: ReadonlyArray<number>) => OrtTensor
  readonly InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession> }
}

const describe = (names: ReadonlyArray<string>, metadata: ReadonlyArray<unknown> | undefined): Array<ValueInfo> =>
  names.map((name, index) => {
    const entry = metadata?.[index] as {
      name?: string
      isTensor?: boolean
      type?: string
      shape?: ReadonlyArray<number | string>
    } | undefined
    const matches = entry !== undefined && entry.name === name && entry.isTensor === true
    return {
      name,
      type: matches ? entry.type : undefined,
      shape: matches && entry.shape !== undefined
        ? entry.shape.map((
          dim
        ) => (typeof dim === "number" && dim >= 0 ? dim : typeof dim === "string" ? dim : undefined))
        : undefined
    }
  })

const fromOrt = (tensor: OrtTensor): Tensor => {
  const type = tensor.type
  if (type !== "float32" && type !== "int64" && type !== "int32") {
    throw new Error(`output of type ${type} is not supported (float32, int64, int32)`)
  }
  return { type, data: tensor.data as TensorData, dims: [...tensor.dims] }
}

export const ortBackend = (
  name: Backend["name"],
  ort: OrtModule,
  sessionOptions: Record<string, unknown>
): Backend => ({
  name,
  createSession: async (model) => {
    const session = await ort.InferenceSession.create(model, sessionOptions)
    return {
      inputs: describe(session.inputNames, session.inputMetadata),
      outputs: describe(session.outputNames, session.outputMetadata),
      run: async (feeds, outputNames) => {
        const ortFeeds: Record<string, OrtTensor> = {}
        for (const [key, tensor] of Object.entries(feeds)) {
          ortFeeds[key] = new ort.Tensor(tensor.type, tensor.data, tensor.dims)
        }
        const results = await session.run(ortFeeds, outputNames)
        const out: Record<string, Tensor> = {}
        for (const [key, tensor] of Object.entries(results)) out[key] = fromOrt(tensor)
        return out
      },
      dispose: () => session.release()
    }
  }
})
