/**
 * PEFT's LoRA layout in and out: `adapter_config.json` plus `adapter_model.safetensors` with
 * `base_model.model.<module>.lora_A.weight` [r, in] and `...lora_B.weight` [out, r], so adapters trained
 * with Hugging Face PEFT can be brought in, and ours taken out to PyTorch.
 *
 * Supported: plain LoRA (one rank r, scale lora_alpha / r) on linear layers, F32/F16/BF16 weights,
 * `use_rslora` (scale lora_alpha / √r, stored here as alpha' = lora_alpha·√r), and `fan_in_fan_out`
 * either way: GPT-2's Conv1D layers keep their weight [in, out], but PEFT still stores lora_A [r, in]
 * and lora_B [out, r], the layout ONNX MatMul weights [in, out] need too. Fields that only steer
 * training (target_modules, layers_to_transform, lora_dropout, init_lora_weights true/false/gaussian,
 * eva_config, megatron_config...) are read past: the saved tensors already say which layers adapt.
 *
 * Refused, each with one line: other peft_types, DoRA, bias other than "none", lora_bias, rank_pattern /
 * alpha_pattern, modules_to_save, trainable_token_indices, target_parameters, layer_replication, LoRA
 * on embeddings, initialisations that change the base weights (PiSSA, OLoRA, LoftQ, CorDA), and any
 * other `use_*` flag or `*_config` we do not know: an adapter applied with the wrong math is worse than
 * none.
 */
import { Data, Effect, Either } from "effect"
import * as fs from "node:fs"
import * as fsp from "node:fs/promises"
import * as path from "node:path"
import { writeFileAtomically } from "../../node/AtomicFile.js"
import type { LoraWeights } from "./Adapter.js"
import { loraModulesFrom } from "./AdapterFile.js"
import type { SafetensorsFile } from "./Safetensors.js"
import { readSafetensors, SafetensorsError, writeSafetensors } from "./Safetensors.js"

export const peftConfigFile = "adapter_config.json"
export const peftWeightsFile = "adapter_model.safetensors"

export class PeftError extends Data.TaggedError("PeftError")<{ readonly path: string; readonly problem: string }> {
  override get message() {
    return `${this.path}: ${this.problem}`
  }
}

export interface PeftAdapter {
  /** Modules named as in the PyTorch model (the key without `base_model.model.` and the factor). */
  readonly weights: LoraWeights
  readonly baseModelNameOrPath: string | undefined
  readonly taskType: string | undefined
}

const isEmpty = (value: unknown): boolean =>
  value === undefined || value === null || value === false || (Array.isArray(value) && value.length === 0) ||
  (typeof value === "object" && value !== null && Object.keys(value).length === 0)

// Known fields that never change what the saved tensors mean.
const harmlessConfigs = new Set(["eva_config", "megatron_config"])
const handledFlags = new Set(["use_rslora", "use_dora"])

/** Why this config cannot be applied as plain LoRA, or undefined when it can. */
const refusal = (config: Record<string, unknown>): string | undefined => {
  const { peft_type: peftType, bias, init_lora_weights: init } = config
  if (peftType !== "LORA") return `peft_type ${JSON.stringify(peftType)} is not supported (only LORA)`
  if (config.use_dora === true) {
    return "DoRA adapters (use_dora) are not supported: their magnitude vectors rescale the base weights"
  }
  if (bias !== undefined && bias !== "none") {
    return `bias ${JSON.stringify(bias)} also trains the base layers' biases; only bias "none" is supported`
  }
  if (config.lora_bias === true) return "lora_bias (a trained bias on lora_B) is not supported"
  const unsupported: ReadonlyArray<readonly [string, string]> = [
    ["rank_pattern", "per-module ranks"],
    ["alpha_pattern", "per-module alphas"],
    ["modules_to_save", "layers trained in full beside the adapter"],
    ["trainable_token_indices", "trained embedding rows"],
    ["target_parameters", "LoRA on raw parameters"],
    ["layer_replication", "a base model with replicated layers"],
    ["alora_invocation_tokens", "activated LoRA"]
  ]
  for (const [key, what] of unsupported) if (!isEmpty(config[key])) return `${key} (${what}) is not supported`
  if ((typeof init === "string" && /^(pissa|olora|loftq|corda)/i.test(init)) || !isEmpty(config.loftq_config)) {
    return `init_lora_weights ${
      JSON.stringify(init)
    } adapters expect a modified base model; save them converted to plain LoRA first`
  }
  for (const [key, value] of Object.entries(config)) {
    if (key.startsWith("use_") && !handledFlags.has(key) && !isEmpty(value)) return `${key} is not supported`
    if (key.endsWith("_config") && !harmlessConfigs.has(key) && !isEmpty(value)) return `${key} is not supported`
  }
  return undefined
}

const positiveNumber = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && value > 0

const peftFactor = (key: string) => {
  const match = /^(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight$/.exec(key)
  if (match !== null) return { module: match[1]!, factor: match[2] as "A" | "B" }
  if (/\.lora_magnitude_vector/.test(key)) return `tensor "${key}" is a DoRA magnitude vector; DoRA is not supported`
  if (/\.lora_embedding_[AB]/.test(key)) return `tensor "${key}": LoRA on embedding layers is not supported`
  if (/\.lora_B\.bias$/.test(key)) return `tensor "${key}": lora_bias is not supported`
  return `tensor "${key}" is not a LoRA factor (base_model.model.<module>.lora_A.weight or .lora_B.weight)`
}

/** Reads PEFT's config (parsed JSON) and weights (safetensors bytes); the problem is one line. */
export const peftAdapterFrom = (
  config: unknown,
  weightsBytes: Uint8Array
): Either.Either<PeftAdapter, { readonly file: string; readonly problem: string }> => {
  const inConfig = (problem: string) => Either.left({ file: peftConfigFile, problem })
  if (typeof config !== "object" || config === null || Array.isArray(config)) return inConfig("must be a JSON object")
  const fields = config as Record<string, unknown>
  const refused = refusal(fields)
  if (refused !== undefined) return inConfig(refused)
  const { r: rank, lora_alpha: alpha } = fields
  if (typeof rank !== "number" || !Number.isInteger(rank) || rank < 1) {
    return inConfig(`r must be a whole number, 1 or more (it is ${JSON.stringify(rank)})`)
  }
  if (!positiveNumber(alpha)) return inConfig(`lora_alpha must be a positive number (it is ${JSON.stringify(alpha)})`)
  const text = (value: unknown) => (typeof value === "string" && value !== "" ? value : undefined)
  let tensors: SafetensorsFile["tensors"]
  try {
    tensors = readSafetensors(weightsBytes).tensors
  } catch (cause) {
    if (cause instanceof SafetensorsError) return Either.left({ file: peftWeightsFile, problem: cause.reason })
    throw cause
  }
  return Either.match(loraModulesFrom(tensors, peftFactor, rank), {
    onLeft: (problem) => Either.left({ file: peftWeightsFile, problem }),
    onRight: (modules) =>
      Either.right({
        // rsLoRA scales by alpha / √r; as alpha' / r that is alpha' = alpha · √r.
        weights: { rank, alpha: fields.use_rslora === true ? alpha * Math.sqrt(rank) : alpha, modules },
        baseModelNameOrPath: text(fields.base_model_name_or_path),
        taskType: text(fields.task_type)
      })
  })
}

/**
 * Renames modules to the model's LoRA targets (ONNX module paths): a module maps to the target of the
 * same name, else to the one target that ends with it or that it ends with, at a dot (PyTorch wrappers
 * add or drop a prefix: PEFT's `blocks.0.attn.c_attn` is the ONNX export's `model.blocks.0.attn.c_attn`).
 */
export const matchModules = (
  weights: LoraWeights,
  targets: ReadonlyArray<string>
): Either.Either<LoraWeights, string> => {
  const modules: Array<readonly [string, LoraWeights["modules"][string]]> = []
  const claimedBy = new Map<string, string>()
  for (const [module, factors] of Object.entries(weights.modules)) {
    const exact = targets.filter((target) => target === module)
    const matches = exact.length > 0
      ? exact
      : targets.filter((target) => target.endsWith(`.${module}`) || module.endsWith(`.${target}`))
    if (matches.length === 0) {
      const examples = targets.slice(0, 3).join(", ")
      return Either.left(
        `module ${module} matches none of the model's ${targets.length} LoRA targets${
          examples === "" ? "" : ` (${examples}${targets.length > 3 ? ", ..." : ""})`
        }`
      )
    }
    if (matches.length > 1) return Either.left(`module ${module} matches several targets: ${matches.join(", ")}`)
    const target = matches[0]!
    const earlier = claimedBy.get(target)
    if (earlier !== undefined) return Either.left(`modules ${earlier} and ${module} both map to target ${target}`)
    claimedBy.set(target, module)
    modules.push([target, factors])
  }
  return Either.right({ ...weights, modules: Object.fromEntries(modules) })
}

const fileError = (file: string, cause: unknown) =>
  new PeftError({ path: file, problem: cause instanceof Error ? cause.message.split("\n")[0]! : String(cause) })

export interface ImportPeftOptions {
  /** The model's LoRA targets: when given, modules are renamed to them (see matchModules). */
  readonly targets?: ReadonlyArray<string>
}

/** Reads a PEFT adapter directory. */
export const importPeft = Effect.fn("Peft.importPeft")(function*(directory: string, options: ImportPeftOptions = {}) {
  const configPath = path.join(directory, peftConfigFile)
  const weightsPath = path.join(directory, peftWeightsFile)
  const text = yield* Effect.tryPromise({
    try: () => fsp.readFile(configPath, "utf8"),
    catch: (cause) => fileError(configPath, cause)
  })
  const config = yield* Effect.try({
    try: () => JSON.parse(text) as unknown,
    catch: (cause) =>
      new PeftError({
        path: configPath,
        problem: `is not JSON (${cause instanceof Error ? cause.message : String(cause)})`
      })
  })
  const buffer = yield* Effect.tryPromise({
    try: () => fsp.readFile(weightsPath),
    catch: (cause) =>
      fs.existsSync(path.join(directory, "adapter_model.bin"))
        ? new PeftError({
          path: weightsPath,
          problem: "is missing; adapter_model.bin (a PyTorch pickle) is not read: save with safe_serialization=True"
        })
        : fileError(weightsPath, cause)
  })
  const adapter = yield* Either.mapLeft(
    peftAdapterFrom(config, new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)),
    ({ file, problem }) => new PeftError({ path: path.join(directory, file), problem })
  )
  if (options.targets === undefined) return adapter
  const weights = yield* Either.mapLeft(
    matchModules(adapter.weights, options.targets),
    (problem) => new PeftError({ path: weightsPath, problem })
  )
  return { ...adapter, weights } satisfies PeftAdapter
})

export interface ExportPeftOptions {
  readonly baseModelNameOrPath?: string
  /** PEFT's task type, e.g. CAUSAL_LM or FEATURE_EXTRACTION. */
  readonly taskType?: string
  /** The PyTorch module path of each module, e.g. dropping the ONNX export's wrapper (`model.`). */
  readonly renameModule?: (module: string) => string
}

/** adapter_config.json for these weights, as PEFT writes a plain LoRA config. */
export const peftConfigOf = (
  weights: LoraWeights,
  targetModules: ReadonlyArray<string>,
  options: ExportPeftOptions = {}
) => ({
  peft_type: "LORA",
  task_type: options.taskType ?? null,
  base_model_name_or_path: options.baseModelNameOrPath ?? null,
  revision: null,
  inference_mode: true,
  r: weights.rank,
  lora_alpha: weights.alpha,
  lora_dropout: 0,
  target_modules: [...targetModules],
  fan_in_fan_out: false,
  bias: "none",
  lora_bias: false,
  use_rslora: false,
  use_dora: false,
  init_lora_weights: true,
  modules_to_save: null,
  layers_to_transform: null,
  layers_pattern: null,
  rank_pattern: {},
  alpha_pattern: {}
})

/** A PEFT adapter's two files in memory: adapter_config.json's value and adapter_model.safetensors' bytes. */
export const peftFilesOf = (weights: LoraWeights, options: ExportPeftOptions = {}) => {
  const rename = options.renameModule ?? ((module: string) => module)
  const named = Object.entries(weights.modules).map(([module, factors]) => [rename(module), factors] as const)
  const bytes = writeSafetensors(
    named.flatMap(([module, { inFeatures, outFeatures, A, B }]) => [
      [`base_model.model.${module}.lora_A.weight`, {
        dtype: "F32",
        shape: [weights.rank, inFeatures],
        data: A
      }] as const,
      [`base_model.model.${module}.lora_B.weight`, {
        dtype: "F32",
        shape: [outFeatures, weights.rank],
        data: B
      }] as const
    ]),
    { format: "pt" }
  )
  return { config: peftConfigOf(weights, named.map(([module]) => module), options), weights: bytes }
}

/** Writes a PEFT adapter directory (F32 weights, `format: pt` metadata as PyTorch writers set). */
export const exportPeft = Effect.fn("Peft.exportPeft")(
  function*(directory: string, weights: LoraWeights, options: ExportPeftOptions = {}) {
    const weightsPath = path.join(directory, peftWeightsFile)
    const files = yield* Effect.try({
      try: () => peftFilesOf(weights, options),
      catch: (cause) => fileError(weightsPath, cause)
    })
    yield* Effect.tryPromise({
      try: async () => {
        await fsp.mkdir(directory, { recursive: true })
        await writeFileAtomically(weightsPath, files.weights)
        await writeFileAtomically(path.join(directory, peftConfigFile), JSON.stringify(files.config, null, 2) + "\n")
      },
      catch: (cause) => fileError(directory, cause)
    })
  }
)
