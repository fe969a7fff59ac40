/**
 * PEFT's layout against adapters PEFT itself saved (test/fixtures/peft, made by
 * tools/make_peft_fixture.py): our reading of the factors and scale reproduces what PEFT's own LoRA
 * layers add to their input, modules map onto the ONNX model's targets, export writes what PEFT
 * writes, and variants we cannot apply exactly are refused with one line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import type { LoraWeights } from "../../../src/compute/lora/Adapter.js"
import { deltaWeight, scaleOf } from "../../../src/compute/lora/Adapter.js"
import { loraTargets } from "../../../src/compute/lora/GraphLora.js"
import {
  exportPeft,
  importPeft,
  matchModules,
  peftAdapterFrom,
  peftConfigFile,
  peftWeightsFile
} from "../../../src/compute/lora/Peft.js"
import { readSafetensors, writeSafetensors } from "../../../src/compute/lora/Safetensors.js"
import { readModel } from "../../../src/compute/onnx/OnnxModel.js"
import { tempDir } from "../../support/TempDir.js"

const fixtures = "test/fixtures/peft"
const lmTargets = loraTargets(readModel(new Uint8Array(fs.readFileSync("models/reference/tiny-lm/model.onnx")))).map((
  target
) => target.module)

/** The largest |ours - PEFT's| over every module's reference rows: rows · scale·AᵀBᵀ against PEFT's forward. */
const worstDelta = (weights: LoraWeights, directory: string, peftName: (module: string) => string) => {
  const reference =
    readSafetensors(new Uint8Array(fs.readFileSync(path.join(directory, "reference.safetensors")))).tensors
  let worst = 0
  for (const [module, factors] of Object.entries(weights.modules)) {
    const rows = reference.get(`${peftName(module)}.input`)!
    const expected = reference.get(`${peftName(module)}.delta`)!
    expect(rows.shape).toEqual([2, factors.inFeatures])
    expect(expected.shape).toEqual([2, factors.outFeatures])
    const delta = deltaWeight(factors, weights.rank, scaleOf(weights))
    for (let row = 0; row < 2; row++) {
      for (let o = 0; o < factors.outFeatures; o++) {
        let sum = 0
        for (let i = 0; i < factors.inFeatures; i++) {
          sum += rows.data[row * factors.inFeatures + i]! * delta[i * factors.outFeatures + o]!
        }
        worst = Math.max(worst, Math.abs(sum - expected.data[row * factors.outFeatures + o]!))
      }
    }
  }
  return worst
}

const fixtureConfig = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(fixtures, name, peftConfigFile), "utf8")) as Record<string, unknown>
const fixtureWeights = (name: string) => new Uint8Array(fs.readFileSync(path.join(fixtures, name, peftWeightsFile)))

const refusalOf = (config: Record<string, unknown>, weights: Uint8Array = fixtureWeights("tiny-lm")) => {
  const result = peftAdapterFrom(config, weights)
  if (Either.isRight(result)) throw new Error("the adapter was accepted")
  expect(result.left.problem).not.toContain("\n")
  return `${result.left.file}: ${result.left.problem}`
}

describe("Peft", () => {
  it.effect("imports PEFT's tiny-lm adapter onto the ONNX targets and reproduces PEFT's LoRA output", () =>
    Effect.gen(function*() {
      const directory = path.join(fixtures, "tiny-lm")
      const adapter = yield* importPeft(directory, { targets: lmTargets })
      expect(adapter.weights.rank).toBe(4)
      expect(adapter.weights.alpha).toBe(8)
      expect(Object.keys(adapter.weights.modules).sort()).toEqual([
        "model.blocks.0.attn.c_attn",
        "model.blocks.1.mlp_proj",
        "model.blocks.3.attn.c_proj"
      ])
      expect(adapter.weights.modules["model.blocks.1.mlp_proj"]).toMatchObject({ inFeatures: 768, outFeatures: 192 })
      expect(worstDelta(adapter.weights, directory, (module) => module.replace(/^model\./, ""))).toBeLessThan(1e-4)
    }))

  it.effect("rsLoRA (scale alpha / √r) is read as alpha · √r and matches PEFT", () =>
    Effect.gen(function*() {
      const directory = path.join(fixtures, "tiny-lm-rslora")
      const adapter = yield* importPeft(directory)
      expect(adapter.weights.alpha).toBeCloseTo(4 * Math.SQRT2, 12)
      expect(Object.keys(adapter.weights.modules)).toEqual(["blocks.2.c_fc"])
      expect(worstDelta(adapter.weights, directory, (module) => module)).toBeLessThan(1e-4)
    }))

  it.effect("GPT-2 Conv1D with fan_in_fan_out: factors are still [r, in] and [out, r], and match PEFT", () =>
    Effect.gen(function*() {
      const directory = path.join(fixtures, "gpt2-conv1d")
      const adapter = yield* importPeft(directory)
      expect(adapter.taskType).toBe("CAUSAL_LM")
      expect(adapter.weights.modules["transformer.h.0.attn.c_attn"]).toMatchObject({ inFeatures: 16, outFeatures: 48 })
      expect(worstDelta(adapter.weights, directory, (module) => module)).toBeLessThan(1e-4)
    }))

  it.effect("exports what PEFT wrote: same keys, same tensors, a plain LoRA config, and imports back", () =>
    Effect.gen(function*() {
      const imported = yield* importPeft(path.join(fixtures, "tiny-lm"), { targets: lmTargets })
      const directory = tempDir("peft-")
      yield* exportPeft(directory, imported.weights, {
        baseModelNameOrPath: "tiny-lm",
        taskType: "CAUSAL_LM",
        renameModule: (module) => module.replace(/^model\./, "")
      })
      const ours = readSafetensors(new Uint8Array(fs.readFileSync(path.join(directory, peftWeightsFile))))
      const theirs = readSafetensors(fixtureWeights("tiny-lm"))
      expect([...ours.tensors.keys()].sort()).toEqual([...theirs.tensors.keys()].sort())
      for (const [key, tensor] of theirs.tensors) expect(ours.tensors.get(key)).toEqual(tensor)
      expect({ ...ours.metadata }).toEqual({ format: "pt" })
      const config = JSON.parse(fs.readFileSync(path.join(directory, peftConfigFile), "utf8")) as Record<
        string,
        unknown
      >
      expect(config).toMatchObject({
        peft_type: "LORA",
        r: 4,
        lora_alpha: 8,
        bias: "none",
        use_dora: false,
        base_model_name_or_path: "tiny-lm",
        task_type: "CAUSAL_LM"
      })
      expect((config.target_modules as Array<string>).sort()).toEqual([
        "blocks.0.attn.c_attn",
        "blocks.1.mlp_proj",
        "blocks.3.attn.c_proj"
      ])
      const again = yield* importPeft(directory, { targets: lmTargets })
      expect(again.weights).toEqual(imported.weights)
    }))

  it("refuses variants it cannot apply as plain LoRA, one line each", () => {
    const config = fixtureConfig("tiny-lm")
    const refused = (change: Record<string, unknown>) => refusalOf({ ...config, ...change })
    expect(refused({ peft_type: "LOHA" })).toBe("adapter_config.json: peft_type \"LOHA\" is not supported (only LORA)")
    expect(refused({ use_dora: true })).toBe(
      "adapter_config.json: DoRA adapters (use_dora) are not supported: their magnitude vectors rescale the base weights"
    )
    expect(refused({ bias: "lora_only" })).toBe(
      `adapter_config.json: bias "lora_only" also trains the base layers' biases; only bias "none" is supported`
    )
    expect(refused({ rank_pattern: { "blocks.0.attn.c_attn": 8 } })).toBe(
      "adapter_config.json: rank_pattern (per-module ranks) is not supported"
    )
    expect(refused({ alpha_pattern: { "blocks.0.attn.c_attn": 32 } })).toBe(
      "adapter_config.json: alpha_pattern (per-module alphas) is not supported"
    )
    expect(refused({ modules_to_save: ["lm_head"] })).toBe(
      "adapter_config.json: modules_to_save (layers trained in full beside the adapter) is not supported"
    )
    expect(refused({ init_lora_weights: "pissa_niter_4" })).toContain("expect a modified base model")
    expect(refused({ use_qalora: true })).toBe("adapter_config.json: use_qalora is not supported")
    expect(refused({ kasa_config: { k: 1 } })).toBe("adapter_config.json: kasa_config is not supported")
    expect(refused({ r: 8 })).toBe(
      "adapter_model.safetensors: module blocks.0.attn.c_attn: lora_A [4, 192] and lora_B [576, 4] are not rank 8 ([rank, in] and [out, rank])"
    )
    expect(refused({ lora_alpha: "eight" })).toBe(
      "adapter_config.json: lora_alpha must be a positive number (it is \"eight\")"
    )
    // Fields PEFT sets that do not change the tensors' meaning are read past.
    expect(
      Either.isRight(
        peftAdapterFrom(
          { ...config, lora_dropout: 0.1, eva_config: null, layers_to_transform: [0, 1] },
          fixtureWeights("tiny-lm")
        )
      )
    ).toBe(true)
  })

  it("refuses tensors that are not plain LoRA factors", () => {
    const config = fixtureConfig("tiny-lm")
    const factor = { dtype: "F32" as const, shape: [4, 8], data: new Float32Array(32) }
    const up = { dtype: "F32" as const, shape: [8, 4], data: new Float32Array(32) }
    const withTensor = (name: string) =>
      writeSafetensors([[name, { dtype: "F32", shape: [8], data: new Float32Array(8) }]])
    expect(refusalOf(config, withTensor("base_model.model.blocks.0.attn.c_attn.lora_magnitude_vector"))).toContain(
      "DoRA is not supported"
    )
    expect(refusalOf(config, withTensor("base_model.model.wte.lora_embedding_A"))).toContain(
      "LoRA on embedding layers is not supported"
    )
    expect(refusalOf(config, withTensor("base_model.model.lm_head.weight"))).toBe(
      "adapter_model.safetensors: tensor \"base_model.model.lm_head.weight\" is not a LoRA factor (base_model.model.<module>.lora_A.weight or .lora_B.weight)"
    )
    const halfPair = writeSafetensors([["base_model.model.blocks.0.c_fc.lora_B.weight", up]])
    expect(refusalOf(config, halfPair)).toBe("adapter_model.safetensors: module blocks.0.c_fc has lora_B but no lora_A")
    const pair = writeSafetensors([["base_model.model.blocks.0.c_fc.lora_A.weight", factor], [
      "base_model.model.blocks.0.c_fc.lora_B.weight",
      up
    ]])
    expect(Either.isRight(peftAdapterFrom(config, pair))).toBe(true)
  })

  it.effect("asks for safetensors when only PEFT's pickle format is there", () =>
    Effect.gen(function*() {
      const directory = tempDir("peft-")
      fs.copyFileSync(path.join(fixtures, "tiny-lm", peftConfigFile), path.join(directory, peftConfigFile))
      fs.writeFileSync(path.join(directory, "adapter_model.bin"), "PK")
      const error = yield* Effect.flip(importPeft(directory))
      expect(error.message).toBe(
        `${
          path.join(directory, peftWeightsFile)
        }: is missing; adapter_model.bin (a PyTorch pickle) is not read: save with safe_serialization=True`
      )
    }))

  it("maps module names to ONNX targets only when exactly one target fits", () => {
    const module = { inFeatures: 192, outFeatures: 576, A: new Float32Array(4 * 192), B: new Float32Array(576 * 4) }
    const named = (name: string): LoraWeights => ({ rank: 4, alpha: 8, modules: { [name]: module } })
    expect(Object.keys(Either.getOrThrow(matchModules(named("blocks.2.attn.c_attn"), lmTargets)).modules)).toEqual([
      "model.blocks.2.attn.c_attn"
    ])
    expect(Object.keys(Either.getOrThrow(matchModules(named("base.model.blocks.2.attn.c_attn"), lmTargets)).modules))
      .toEqual(["model.blocks.2.attn.c_attn"])
    expect(Either.flip(matchModules(named("c_attn"), lmTargets))).toEqual(
      Either.right(
        "module c_attn matches several targets: model.blocks.0.attn.c_attn, model.blocks.1.attn.c_attn, model.blocks.2.attn.c_attn, model.blocks.3.attn.c_attn"
      )
    )
    expect(Either.flip(matchModules(named("transformer.h.0.attn.c_attn"), lmTargets))).toEqual(
      Either.right(
        "module transformer.h.0.attn.c_attn matches none of the model's 16 LoRA targets (model.blocks.0.attn.c_attn, model.blocks.0.attn.c_proj, model.blocks.0.c_fc, ...)"
      )
    )
  })
})
