/**
 * A Hugging Face style model folder (model.onnx or onnx/model.onnx, tokenizer.json and the optional
 * JSON configs) read from disk into the ModelSource that Model.ts opens.
 */
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { jsonDecoder, JsonObject } from "../../domain/JsonText.js"
import { describeCause, ModelLoadError } from "./InferenceError.js"
import type { ModelSource } from "./Model.js"

type Json = Readonly<Record<string, unknown>>

const decodeJson = jsonDecoder(JsonObject)

const readJson = (file: string): Json | undefined => {
  if (!fs.existsSync(file)) return undefined
  const decoded = decodeJson(fs.readFileSync(file, "utf8"), file)
  if (Either.isLeft(decoded)) throw new ModelLoadError({ reason: decoded.left.message })
  return decoded.right
}

/** Reads a model folder: model.onnx or onnx/model.onnx, tokenizer.json, and the optional JSON configs. */
export const readModelFolder = (location: string): Effect.Effect<ModelSource, ModelLoadError> =>
  Effect.try({
    try: () => {
      const isFile = fs.existsSync(location) && fs.statSync(location).isFile()
      let folder = isFile ? path.dirname(location) : location
      const candidates = isFile
        ? [location]
        : [path.join(location, "model.onnx"), path.join(location, "onnx", "model.onnx")]
      const modelFile = candidates.find((file) => fs.existsSync(file))
      if (modelFile === undefined) {
        throw new ModelLoadError({ reason: `no model.onnx in ${location} (looked for ${candidates.join(", ")})` })
      }
      if (isFile && path.basename(folder) === "onnx" && !fs.existsSync(path.join(folder, "tokenizer.json"))) {
        folder = path.dirname(folder)
      }
      const tokenizer = readJson(path.join(folder, "tokenizer.json"))
      if (tokenizer === undefined) throw new ModelLoadError({ reason: `no tokenizer.json in ${folder}` })
      return {
        model: new Uint8Array(fs.readFileSync(modelFile)),
        tokenizer,
        tokenizerConfig: readJson(path.join(folder, "tokenizer_config.json")),
        config: readJson(path.join(folder, "config.json")),
        generationConfig: readJson(path.join(folder, "generation_config.json")),
        name: modelFile
      }
    },
    catch: (cause) => (cause instanceof ModelLoadError
      ? cause
      : new ModelLoadError({ reason: `cannot read ${location}: ${describeCause(cause)}` }))
  })
