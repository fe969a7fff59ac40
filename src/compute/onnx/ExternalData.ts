/**
 * Model files with external data, ONNX's convention for models past protobuf's 2 GiB: large tensors
 * live in a side file (`<model>.onnx.data`) at 4096-aligned offsets, named by location/offset/length.
 */
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { writeFileAtomically } from "../../node/AtomicFile.js"
import { allTensors, mapTensors } from "./Graph.js"
import {
  DataLocation,
  DataType,
  encodedModelSize,
  maxModelBytes,
  OnnxError,
  type OnnxModel,
  type OnnxTensor,
  readModel,
  writeModel
} from "./OnnxModel.js"
import { isExternal } from "./Tensors.js"

export const externalDataAlignment = 4096

export interface WriteModelFileOptions {
  /** Tensors of at least this many bytes go to the side file when external data is used (default 1024). */
  readonly externalDataThreshold?: number
  /** Use external data even when the model would fit in one file. */
  readonly forceExternal?: boolean
}

export const externalDataPathFor = (modelPath: string): string => `${modelPath}.data`

const fileError = (file: string, error: unknown) =>
  new OnnxError({
    kind: "FileSystem",
    file,
    reason: error instanceof Error ? error.message.split("\n")[0]! : String(error)
  })

const externalError = (file: string, reason: string) => new OnnxError({ kind: "ExternalData", file, reason })

interface ExternalRef {
  readonly location: string
  readonly offset: number
  readonly length: number | undefined
}

const externalRef = (tensor: OnnxTensor, modelFile: string): ExternalRef => {
  const entries = new Map((tensor.externalData ?? []).map((entry) => [entry.key, entry.value]))
  const label = tensor.name ?? "tensor"
  const location = entries.get("location")
  if (!location) throw externalError(modelFile, `${label}: external data without a location`)
  if (path.isAbsolute(location) || location.split(/[\\/]/).includes("..")) {
    throw externalError(modelFile, `${label}: external data location ${location} is outside the model's directory`)
  }
  const number = (key: string): number | undefined => {
    const text = entries.get(key)
    if (text === undefined) return undefined
    const value = Number(text)
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
      throw externalError(modelFile, `${label}: external data ${key} "${text}" is not a byte count`)
    }
    return value
  }
  return { location, offset: number("offset") ?? 0, length: number("length") }
}

const withoutExternal = (tensor: OnnxTensor, rawData: Uint8Array): OnnxTensor => {
  const copy: { -readonly [K in keyof OnnxTensor]: OnnxTensor[K] } = { ...tensor, rawData }
  delete copy.externalData
  delete copy.dataLocation
  return copy
}

/** Reads the external data of a model loaded from `modelFile` into its tensors' rawData. */
export const loadExternalData = Effect.fn("ExternalData.loadExternalData")(
  function*(model: OnnxModel, modelFile: string) {
    const pending = allTensors(model).filter(({ tensor }) => isExternal(tensor))
    if (pending.length === 0) return model
    const directory = path.dirname(modelFile)
    const loaded = new Map<OnnxTensor, Uint8Array>()
    const refs = yield* Effect.try({
      try: () => pending.map(({ tensor }) => [tensor, externalRef(tensor, modelFile)] as const),
      catch: (e) => e as OnnxError
    })
    const byLocation = new Map<string, Array<(typeof refs)[number]>>()
    for (const entry of refs) {
      const group = byLocation.get(entry[1].location)
      if (group) group.push(entry)
      else byLocation.set(entry[1].location, [entry])
    }
    for (const [location, tensors] of byLocation) {
      const file = path.join(directory, location)
      yield* Effect.tryPromise({
        try: async () => {
          const handle = await fs.open(file, "r")
          try {
            const size = (await handle.stat()).size
            for (const [tensor, ref] of tensors) {
              const length = ref.length ?? size - ref.offset
              if (ref.offset + length > size) {
                throw externalError(
                  modelFile,
                  `${tensor.name ?? "tensor"}: bytes ${ref.offset}..${
                    ref.offset + length
                  } are past the end of ${location} (${size} bytes)`
                )
              }
              const bytes = new Uint8Array(length)
              const { bytesRead } = await handle.read(bytes, 0, length, ref.offset)
              if (bytesRead !== length) throw externalError(modelFile, `${location}: short read at byte ${ref.offset}`)
              loaded.set(tensor, bytes)
            }
          } finally {
            await handle.close()
          }
        },
        catch: (error) => (error instanceof OnnxError ? error : fileError(file, error))
      })
    }
    return mapTensors(model, (tensor) => {
      const bytes = loaded.get(tensor)
      return bytes ? withoutExternal(tensor, bytes) : tensor
    })
  }
)

export interface ReadModelFileOptions {
  /**
   * Refuse (OnnxError TooLarge) a model whose file and external data files together pass this many
   * bytes, before reading what would not fit: the model file is measured first, its side files next.
   */
  readonly maxBytes?: number
  /** The limit as the error states it, e.g. "40% of this machine's 8 GiB of memory". */
  readonly limitDescription?: string
}

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`

const fileSize = (file: string) =>
  Effect.tryPromise({ try: async () => (await fs.stat(file)).size, catch: (error) => fileError(file, error) })

/** Reads a model file and the external data it names (relative to the model's directory). */
export const readModelFile = Effect.fn("ExternalData.readModelFile")(
  function*(modelFile: string, options: ReadModelFileOptions = {}) {
    const { maxBytes } = options
    const tooLarge = (size: number) =>
      new OnnxError({
        kind: "TooLarge",
        file: modelFile,
        reason: `the model and its external data take ${gib(size)}, more than fits in memory here (${gib(maxBytes!)}${
          options.limitDescription === undefined ? "" : `: ${options.limitDescription}`
        })`
      })
    const fileBytes = maxBytes === undefined ? 0 : yield* fileSize(modelFile)
    if (maxBytes !== undefined && fileBytes > maxBytes) return yield* tooLarge(fileBytes)
    const bytes = yield* Effect.tryPromise({
      try: () => fs.readFile(modelFile),
      catch: (error) => fileError(modelFile, error)
    })
    const model = yield* Effect.try({
      try: () => readModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)),
      catch: (error) => (error instanceof OnnxError
        ? new OnnxError({ kind: error.kind, reason: error.reason, file: modelFile })
        : fileError(modelFile, error))
    })
    if (maxBytes !== undefined) {
      const locations = yield* Effect.try({
        try: () =>
          new Set(
            allTensors(model).filter(({ tensor }) => isExternal(tensor)).map(({ tensor }) =>
              externalRef(tensor, modelFile).location
            )
          ),
        catch: (error) => error as OnnxError
      })
      let total = fileBytes
      for (const location of locations) {
        total += yield* fileSize(path.join(path.dirname(modelFile), location))
      }
      if (total > maxBytes) return yield* tooLarge(total)
    }
    return yield* loadExternalData(model, modelFile)
  }
)

const alignUp = (offset: number): number => Math.ceil(offset / externalDataAlignment) * externalDataAlignment

const writeFully = async (handle: fs.FileHandle, bytes: Uint8Array, position: number): Promise<void> => {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done)
    done += bytesWritten
  }
}

/**
 * Writes a model file. When the model would pass 2 GiB (or with `forceExternal`), initializers of at
 * least `externalDataThreshold` bytes go to `<model file>.data` instead, at 4096-aligned offsets.
 */
export const writeModelFile = Effect.fn("ExternalData.writeModelFile")(function*(
  modelFile: string,
  model: OnnxModel,
  options: WriteModelFileOptions = {}
) {
  const unloaded = allTensors(model).find(({ tensor }) => isExternal(tensor) && tensor.rawData === undefined)
  if (unloaded) {
    return yield* externalError(modelFile, `${unloaded.tensor.name ?? "tensor"}: its external data is not loaded`)
  }
  const useExternal = options.forceExternal === true || encodedModelSize(model) > maxModelBytes
  if (!useExternal) {
    const bytes = yield* Effect.try({ try: () => writeModel(model), catch: (error) => error as OnnxError })
    return yield* Effect.tryPromise({
      try: () => writeFileAtomically(modelFile, (handle) => writeFully(handle, bytes, 0)),
      catch: (error) => fileError(modelFile, error)
    })
  }
  const threshold = options.externalDataThreshold ?? 1024
  const dataFile = externalDataPathFor(modelFile)
  const location = path.basename(dataFile)
  const placed = new Map<OnnxTensor, { offset: number; bytes: Uint8Array }>()
  let end = 0
  for (const { tensor, origin } of allTensors(model)) {
    const raw = tensor.rawData
    if (
      origin !== "initializer" || !raw || raw.length < threshold || tensor.dataType === DataType.STRING ||
      placed.has(tensor)
    ) continue
    const offset = alignUp(end)
    placed.set(tensor, { offset, bytes: raw })
    end = offset + raw.length
  }
  const rewritten = mapTensors(model, (tensor) => {
    const place = placed.get(tensor)
    if (!place) return tensor
    const copy: { -readonly [K in keyof OnnxTensor]: OnnxTensor[K] } = { ...tensor }
    delete copy.rawData
    copy.externalData = [
      { key: "location", value: location },
      { key: "offset", value: String(place.offset) },
      { key: "length", value: String(place.bytes.length) }
    ]
    copy.dataLocation = DataLocation.EXTERNAL
    return copy
  })
  const bytes = yield* Effect.try({
    try: () => writeModel(rewritten),
    catch: (error) =>
      error instanceof OnnxError && error.kind === "TooLarge"
        ? new OnnxError({
          kind: "TooLarge",
          file: modelFile,
          reason: `${error.reason}; weights held by Constant nodes stay inline (promoteConstants first)`
        })
        : (error as OnnxError)
  })
  if (placed.size === 0) {
    return yield* externalError(modelFile, `no initializer holds ${threshold} bytes or more to store as external data`)
  }
  yield* Effect.tryPromise({
    try: () =>
      writeFileAtomically(dataFile, async (handle) => {
        for (const { offset, bytes: tensorBytes } of placed.values()) await writeFully(handle, tensorBytes, offset)
        await handle.truncate(end)
      }),
    catch: (error) => fileError(dataFile, error)
  })
  yield* Effect.tryPromise({
    try: () => writeFileAtomically(modelFile, (handle) => writeFully(handle, bytes, 0)),
    catch: (error) => fileError(modelFile, error)
  })
})
