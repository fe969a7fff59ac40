/**
 * Training checkpoints on disk, so an interrupted `adapters train` continues where it stopped:
 * `checkpoint.safetensors` holds the factors, the head and AdamW's moments; `checkpoint.json` the step
 * and the run's fingerprint (base model, data, options). A checkpoint resumes only the run it was taken
 * from: with another fingerprint it is ignored and replaced.
 */
import { Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { jsonDecoderSync } from "../../../domain/JsonText.js"
import { writeFileAtomicallySync } from "../../../node/AtomicFile.js"
import type { LoraModule } from "../Adapter.js"
import { readSafetensors, type TensorToWrite, writeSafetensors } from "../Safetensors.js"
import type { TrainingCheckpoint } from "./LoraTrainer.js"

const WEIGHTS = "checkpoint.safetensors"
const STATE = "checkpoint.json"

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const CheckpointState = Schema.Struct({
  fingerprint: Schema.String,
  step: Count,
  rank: Count,
  alpha: Schema.Number,
  modules: Schema.Record({ key: Schema.String, value: Schema.Struct({ inFeatures: Count, outFeatures: Count }) }),
  head: Schema.optional(Schema.Struct({ hidden: Count, classes: Count }))
})
type CheckpointState = typeof CheckpointState.Type
const decodeState = jsonDecoderSync(CheckpointState)

/** Writes the checkpoint: tensors first, then the state naming them, each by an atomic rename. */
export const saveCheckpoint = (directory: string, fingerprint: string, checkpoint: TrainingCheckpoint): void => {
  const { weights, head, optimizer } = checkpoint
  const tensors: Array<readonly [string, TensorToWrite]> = []
  const flat = (data: Float32Array): TensorToWrite => ({ dtype: "F32", shape: [data.length], data })
  for (const [module, factors] of Object.entries(weights.modules)) {
    tensors.push([`A/${module}`, flat(factors.A as Float32Array)], [`B/${module}`, flat(factors.B as Float32Array)])
  }
  if (head !== undefined) tensors.push(["head/weight", flat(head.weight)], ["head/bias", flat(head.bias)])
  for (const [name, moment] of Object.entries(optimizer.firstMoments)) tensors.push([`m/${name}`, flat(moment)])
  for (const [name, moment] of Object.entries(optimizer.secondMoments)) tensors.push([`v/${name}`, flat(moment)])
  const state: CheckpointState = {
    fingerprint,
    step: checkpoint.step,
    rank: weights.rank,
    alpha: weights.alpha,
    modules: Object.fromEntries(
      Object.entries(weights.modules).map((
        [module, { inFeatures, outFeatures }]
      ) => [module, { inFeatures, outFeatures }])
    ),
    ...(head === undefined ? {} : { head: { hidden: head.hidden, classes: head.classes } })
  }
  fs.mkdirSync(directory, { recursive: true })
  writeFileAtomicallySync(path.join(directory, WEIGHTS), writeSafetensors(tensors))
  writeFileAtomicallySync(path.join(directory, STATE), JSON.stringify(state, null, 2) + "\n")
}

/** The checkpoint of the run with this fingerprint, or undefined when there is none (or another run's). */
export const loadCheckpoint = (directory: string, fingerprint: string): TrainingCheckpoint | undefined => {
  const stateFile = path.join(directory, STATE)
  if (!fs.existsSync(stateFile)) return undefined
  const state = decodeState(fs.readFileSync(stateFile, "utf8"), stateFile)
  if (state.fingerprint !== fingerprint) return undefined
  const { tensors } = readSafetensors(new Uint8Array(fs.readFileSync(path.join(directory, WEIGHTS))))
  const tensor = (name: string) => {
    const found = tensors.get(name)
    if (found === undefined) throw new Error(`${path.join(directory, WEIGHTS)} has no tensor ${name}`)
    return found.data
  }
  const modules: Record<string, LoraModule> = {}
  for (const [module, { inFeatures, outFeatures }] of Object.entries(state.modules)) {
    modules[module] = { inFeatures, outFeatures, A: tensor(`A/${module}`), B: tensor(`B/${module}`) }
  }
  const moments = (prefix: string) =>
    Object.fromEntries(
      [...tensors].filter(([name]) => name.startsWith(prefix)).map((
        [name, value]
      ) => [name.slice(prefix.length), value.data])
    )
  return {
    step: state.step,
    weights: { rank: state.rank, alpha: state.alpha, modules },
    ...(state.head === undefined
      ? {}
      : { head: { ...state.head, weight: tensor("head/weight"), bias: tensor("head/bias") } }),
    optimizer: { step: state.step, firstMoments: moments("m/"), secondMoments: moments("v/") }
  }
}

export const removeCheckpoint = (directory: string): void => fs.rmSync(directory, { recursive: true, force: true })
