/**
 * A loaded model: its ORT session, tokenizer and configuration, and what the service needs to know
 * about it (encoder or decoder, KV-cache inputs, context length, end-of-sequence ids), from bytes and
 * JSON given directly (ModelFolder.ts reads them from a Hugging Face style folder). No Node built-in:
 * the browser SDK opens its models here too.
 */
import { Effect, type Scope } from "effect"
import { sha256, toHex } from "../../content/Sha256.js"
import { type AdapterLayout, adapterLayout, injectAdapterInputs, loraTargets } from "../lora/GraphLora.js"
import { readModel, writeModel } from "../onnx/OnnxModel.js"
import { Tokenizer } from "../tokenizer/Tokenizer.js"
import type { Backend, Session, ValueInfo } from "./Backend.js"
import { chatTemplateOf, compileChatTemplate, type CompiledChatTemplate } from "./ChatTemplate.js"
import { describeCause, ModelLoadError } from "./InferenceError.js"

type Json = Readonly<Record<string, unknown>>

export interface ModelSource {
  readonly model: Uint8Array
  /** A parsed (or raw) tokenizer.json, or a Tokenizer already made. */
  readonly tokenizer: unknown
  readonly tokenizerConfig?: Json | undefined
  /** config.json: n_layer / n_head / n_embd (or their Llama-style names), context length, special ids. */
  readonly config?: Json | undefined
  readonly generationConfig?: Json | undefined
  /** Names the model in errors. */
  readonly name?: string | undefined
  /**
   * LoRA branches whose factors are fed with every run, so adapters of up to `rank` on `modules`
   * (default: every MatMul weight) are swapped per call without reloading the session.
   */
  readonly adapterSlots?: { readonly rank: number; readonly modules?: ReadonlyArray<string> | undefined } | undefined
  /**
   * The SHA-256 an adapter must name to run on this model (default: this file's). A quantized file may
   * name the FP32 model it was made from: LoRA targets keep their module names and shapes through
   * quantization (INT8 and 4-bit alike), so adapters trained on that model run on this one.
   */
  readonly baseModelDigest?: string | undefined
}

export interface PastInput {
  readonly input: string
  readonly output: string
  /** [heads, headDim] of the past tensor: batch and past length are the variable ones. */
  readonly heads: number
  readonly headDim: number
}

export interface ModelHandle {
  readonly name: string
  readonly backend: Backend["name"]
  readonly kind: "encoder" | "decoder"
  readonly session: Session
  readonly tokenizer: Tokenizer
  readonly config: Json
  readonly inputNames: ReadonlySet<string>
  readonly outputNames: ReadonlySet<string>
  /** past_key_values.{i}.key/value inputs with the present.{i}.* outputs that feed them; empty without a KV cache. */
  readonly pastInputs: ReadonlyArray<PastInput>
  /** Longest sequence the model takes (positions), when the config says. */
  readonly maxLength: number | undefined
  readonly eosIds: ReadonlySet<number>
  readonly chatTemplate: CompiledChatTemplate | undefined
  /** Runs of one session are serialized (onnxruntime-web cannot overlap them). */
  readonly lock: Effect.Semaphore
  /** SHA-256 of the model file as given (or the source's `baseModelDigest`): an adapter runs only on the base model it was made for. */
  readonly baseModelDigest: string
  /** The adapter branches the session was built with (`adapterSlots`), if any. */
  readonly adapterLayout: AdapterLayout | undefined
}

const numberAt = (config: Json, ...keys: ReadonlyArray<string>) => {
  for (const key of keys) if (typeof config[key] === "number") return config[key] as number
  return undefined
}

const idsOf = (
  value: unknown
): Array<
  number
> => (typeof value === "number"
  ? [value]
  : Array.isArray(value)
  ? value.filter((id): id is number => typeof id === "number")
  : [])

/** The past inputs with their shapes, from the session's metadata or else the config. */
const pastInputsOf = (
  name: string,
  inputs: ReadonlyArray<ValueInfo>,
  outputs: ReadonlySet<string>,
  config: Json
): Array<PastInput> => {
  const past = inputs.filter((input) => input.name.startsWith("past_key_values."))
  const configHeads = numberAt(config, "num_key_value_heads", "n_head", "num_attention_heads", "num_heads")
  const width = numberAt(config, "n_embd", "hidden_size", "d_model")
  const configHeadDim = numberAt(config, "head_dim") ??
    (width !== undefined && numberAt(config, "n_head", "num_attention_heads", "num_heads") !== undefined
      ? width / numberAt(config, "n_head", "num_attention_heads", "num_heads")!
      : undefined)
  return past.map((input) => {
    const output = input.name.replace("past_key_values.", "present.")
    if (!outputs.has(output)) {
      throw new ModelLoadError({ reason: `${name}: model has input ${input.name} but no output named ${output}` })
    }
    if (input.type !== undefined && input.type !== "float32") {
      throw new ModelLoadError({
        reason: `${name}: ${input.name} is ${input.type}; only float32 KV caches are supported`
      })
    }
    const heads = typeof input.shape?.[1] === "number" ? input.shape[1] : configHeads
    const headDim = typeof input.shape?.[3] === "number" ? input.shape[3] : configHeadDim
    if (heads === undefined || headDim === undefined) {
      throw new ModelLoadError({
        reason:
          `${name}: cannot tell the shape of ${input.name} (config.json needs n_head and n_embd, or num_attention_heads and hidden_size)`
      })
    }
    return { input: input.name, output, heads, headDim }
  })
}

const ONNX_FIRST_BYTE = 0x08 // field 1 (ir_version), varint: every ONNX ModelProto writer puts it first

/** Opens the session and reads what the service needs; the session is released when the scope closes. */
export const openModel = (
  backend: Backend,
  source: ModelSource
): Effect.Effect<ModelHandle, ModelLoadError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = source.name ?? "model"
    if (source.model.length < 16 || source.model[0] !== ONNX_FIRST_BYTE) {
      return yield* new ModelLoadError({
        reason: `model file is not ONNX: ${name} does not start with an ONNX ModelProto`
      })
    }
    const tokenizer = source.tokenizer instanceof Tokenizer
      ? source.tokenizer
      : yield* Effect.try({
        try: () => Tokenizer.fromJson(source.tokenizer, source.tokenizerConfig ?? {}, source.config ?? {}),
        catch: (cause) => new ModelLoadError({ reason: `${name}: ${describeCause(cause)}` })
      })
    const slots = source.adapterSlots
    const model = slots === undefined ? source.model : yield* Effect.try({
      try: () => {
        const graph = readModel(source.model)
        return writeModel(
          injectAdapterInputs(graph, slots.modules ?? loraTargets(graph).map((target) => target.module), slots.rank)
        )
      },
      catch: (cause) => new ModelLoadError({ reason: `${name}: cannot add adapter slots: ${describeCause(cause)}` })
    })
    const session = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => backend.createSession(model),
        catch: (cause) => new ModelLoadError({ reason: `model file is not ONNX: ${name}: ${describeCause(cause)}` })
      }),
      (opened) => Effect.promise(() => opened.dispose().catch(() => undefined))
    )
    const inputNames = new Set(session.inputs.map((input) => input.name))
    const outputNames = new Set(session.outputs.map((output) => output.name))
    if (!inputNames.has("input_ids")) return yield* new ModelLoadError({ reason: "model has no input named input_ids" })
    const kind = outputNames.has("logits") ? "decoder" : outputNames.has("last_hidden_state") ? "encoder" : undefined
    if (kind === undefined) {
      return yield* new ModelLoadError({ reason: `${name}: model has no output named logits or last_hidden_state` })
    }
    const config = source.config ?? {}
    const pastInputs = yield* Effect.try({
      try: () => pastInputsOf(name, session.inputs, outputNames, config),
      catch: (cause) => (cause instanceof ModelLoadError ? cause : new ModelLoadError({ reason: describeCause(cause) }))
    })
    const eosIds = new Set([...idsOf(source.generationConfig?.eos_token_id), ...idsOf(config.eos_token_id)])
    if (eosIds.size === 0 && tokenizer.specialIds.eos !== undefined) eosIds.add(tokenizer.specialIds.eos)
    const maxLength = numberAt(config, "n_positions", "max_position_embeddings", "n_ctx") ??
      numberAt(source.tokenizerConfig ?? {}, "model_max_length")
    const template = chatTemplateOf(source.tokenizerConfig ?? {})
    const lock = yield* Effect.makeSemaphore(1)
    return {
      name,
      backend: backend.name,
      kind,
      session,
      tokenizer,
      config,
      inputNames,
      outputNames,
      pastInputs,
      maxLength: maxLength !== undefined && maxLength < 1e9 ? maxLength : undefined,
      eosIds,
      chatTemplate: template === undefined ? undefined : compileChatTemplate(template),
      lock,
      baseModelDigest: source.baseModelDigest ?? toHex(sha256(source.model)),
      adapterLayout: slots === undefined ? undefined : adapterLayout(readModel(model))
    } satisfies ModelHandle
  })
