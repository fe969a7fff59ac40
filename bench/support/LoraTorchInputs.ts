/**
 * The inputs of tools/lora_torch_train.py, PyTorch's run of the same LoRA training as ours: the
 * reference LM's weights by module path (`weights.bin`, float32 little-endian, indexed by
 * `weights.json`), the token windows, the training options, and ONNX Runtime's loss on the
 * held-out windows, which the script's model must reproduce before it trains.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import path from "node:path"
import { loraTargets } from "../../src/compute/lora/GraphLora.js"
import type { CausalLmSample } from "../../src/compute/lora/train/Objectives.js"
import type { MicroLoRAConfig } from "../../src/compute/lora/train/TrainingConfig.js"
import { initializerMap } from "../../src/compute/onnx/Graph.js"
import type { OnnxModel } from "../../src/compute/onnx/OnnxModel.js"
import { tensorToFloat32 } from "../../src/compute/onnx/Tensors.js"

export const writeTorchInputs = (
  directory: string,
  model: OnnxModel,
  windows: { readonly train: ReadonlyArray<CausalLmSample>; readonly heldOut: ReadonlyArray<CausalLmSample> },
  config: MicroLoRAConfig,
  expectedBaseLoss: number
): void => {
  mkdirSync(directory, { recursive: true })
  const initializers = initializerMap(model.graph)
  // Named initializers keep their names; each LoRA target's MatMul weight [in, out] is named `<module>.weight`.
  const tensors = new Map<string, { dims: ReadonlyArray<number>; data: Float32Array }>()
  for (const [name, tensor] of initializers) {
    if (name.startsWith("model.")) tensors.set(name, { dims: tensor.dims, data: tensorToFloat32(tensor) })
  }
  for (const target of loraTargets(model)) {
    const weight = initializers.get(target.weight)!
    tensors.set(`${target.module}.weight`, { dims: weight.dims, data: tensorToFloat32(weight) })
  }
  const index: Record<string, { shape: ReadonlyArray<number>; offset: number; length: number }> = {}
  const parts: Array<Buffer> = []
  let offset = 0
  for (const [name, { dims, data }] of tensors) {
    index[name] = { shape: dims, offset, length: data.length }
    parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    offset += data.byteLength
  }
  writeFileSync(path.join(directory, "weights.bin"), Buffer.concat(parts))
  writeFileSync(path.join(directory, "weights.json"), JSON.stringify({ tensors: index }, null, 1))
  writeFileSync(
    path.join(directory, "task.json"),
    JSON.stringify({
      train: windows.train.map((window) => window.ids),
      held_out: windows.heldOut.map((window) => window.ids),
      targets: loraTargets(model).map((target) => target.module),
      config,
      expected_base_loss: expectedBaseLoss
    })
  )
}
