/**
 * Text generation with a decoder-only model: one forward pass per new token, reusing the model's
 * key/value cache (past_key_values.* in, present.* out) or recomputing the whole sequence, sampling
 * through Effect's Random, stopping at end of sequence, a stop string or the token budget.
 */
import { Effect, Option, Random, Stream } from "effect"
import { StreamDecoder } from "../tokenizer/StreamDecoder.js"
import type { Tensor } from "./Backend.js"
import { adapterFeeds, int64, type RunAdapter } from "./Embedding.js"
import { describeCause, InferenceInputError, InferenceRunError } from "./InferenceError.js"
import type { ModelHandle } from "./Model.js"
import { type SamplingOptions, selectToken } from "./Sampling.js"

export interface GenerateOptions extends SamplingOptions {
  /** Default 64. */
  readonly maxNewTokens?: number | undefined
  /** Generation ends when the text contains one of these; the text is cut before it. */
  readonly stop?: ReadonlyArray<string> | undefined
  /** Reuse the KV cache (default); false recomputes the whole sequence for every token. */
  readonly useCache?: boolean | undefined
  /** Keep going past end-of-sequence tokens. */
  readonly ignoreEos?: boolean | undefined
  /** Encode the prompt with the tokenizer's special tokens (a BOS, say); default true. */
  readonly addSpecialTokens?: boolean | undefined
  /** Run with this LoRA adapter (the model loaded with `adapterSlots`); another call may use another. */
  readonly adapter?: RunAdapter | undefined
}

export interface GenerateResult {
  readonly text: string
  /** The generated ids, without the prompt (and without the end-of-sequence token). */
  readonly tokenIds: ReadonlyArray<number>
  readonly promptTokens: number
  readonly finishReason: "eos" | "stop" | "length"
}

/** Holds back text that may be the start of a stop string; reports the cut when one appears. */
export class StopFilter {
  private pending = ""
  constructor(private readonly stops: ReadonlyArray<string>) {}

  push(text: string): { readonly release: string; readonly stopped: boolean } {
    this.pending += text
    const cut = earliestStop(this.pending, this.stops)
    if (cut !== undefined) {
      const release = this.pending.slice(0, cut)
      this.pending = ""
      return { release, stopped: true }
    }
    let hold = 0
    for (const stop of this.stops) {
      for (let k = Math.min(stop.length - 1, this.pending.length); k > hold; k--) {
        if (this.pending.endsWith(stop.slice(0, k))) {
          hold = k
          break
        }
      }
    }
    const release = this.pending.slice(0, this.pending.length - hold)
    this.pending = this.pending.slice(this.pending.length - hold)
    return { release, stopped: false }
  }

  end(): string {
    const rest = this.pending
    this.pending = ""
    return rest
  }
}

export const earliestStop = (text: string, stops: ReadonlyArray<string>): number | undefined => {
  let cut: number | undefined
  for (const stop of stops) {
    if (stop.length === 0) continue
    const index = text.indexOf(stop)
    if (index >= 0 && (cut === undefined || index < cut)) cut = index
  }
  return cut
}

/** An all-ones int64 tensor (the attention mask of one unpadded sequence). */
const ones = (dims: [number, number]): Tensor => ({ type: "int64", data: new BigInt64Array(dims[1]).fill(1n), dims })

/** Position ids offset, offset + 1, ... for `count` tokens. */
const positions = (offset: number, count: number): Tensor => {
  const data = new BigInt64Array(count)
  for (let i = 0; i < count; i++) data[i] = BigInt(offset + i)
  return { type: "int64", data, dims: [1, count] }
}

const requireDecoder = (handle: ModelHandle) =>
  handle.kind === "decoder"
    ? Effect.void
    : Effect.fail(
      new InferenceInputError({ reason: `${handle.name} has no output named logits: generation needs a decoder` })
    )

interface Step {
  readonly piece: string
  readonly done: boolean
}

/** Prepares a generation; `step` adds one token and returns the text that is now safe to show. */
const start = (handle: ModelHandle, prompt: string, options: GenerateOptions) =>
  Effect.gen(function*() {
    yield* requireDecoder(handle)
    const maxNewTokens = options.maxNewTokens ?? 64
    if (!(maxNewTokens >= 0)) {
      return yield* new InferenceInputError({ reason: `maxNewTokens must be at least 0, got ${maxNewTokens}` })
    }
    let promptIds = Array.from(
      handle.tokenizer.encode(prompt, { addSpecialTokens: options.addSpecialTokens ?? true, truncation: false }).ids
    )
    if (promptIds.length === 0) {
      const bos = handle.tokenizer.specialIds.bos
      if (bos === undefined) return yield* new InferenceInputError({ reason: "text is empty" })
      promptIds = [bos]
    }
    if (handle.maxLength !== undefined && promptIds.length >= handle.maxLength) {
      return yield* new InferenceInputError({
        reason: `prompt has ${promptIds.length} tokens; the model takes at most ${handle.maxLength}`
      })
    }
    const ids = [...promptIds]
    const generated: Array<number> = []
    const useCache = (options.useCache ?? true) && handle.pastInputs.length > 0
    // The adapter is the same for every token: its branch feeds are looked up once.
    const branches = yield* adapterFeeds(handle, options.adapter)
    const wanted = ["logits", ...(useCache ? handle.pastInputs.map((input) => input.output) : [])]
    const wantsMask = handle.inputNames.has("attention_mask")
    const wantsPositions = handle.inputNames.has("position_ids")
    let past: Record<string, Tensor> = {}
    for (const input of handle.pastInputs) {
      past[input.input] = { type: "float32", data: new Float32Array(0), dims: [1, input.heads, 0, input.headDim] }
    }
    let pastLength = 0
    const stream = new StreamDecoder(handle.tokenizer, { skipSpecialTokens: true })
    const stops = new StopFilter(options.stop ?? [])
    let finishReason: GenerateResult["finishReason"] = "length"
    let finished = maxNewTokens === 0

    /** The next token's logits: one run over the tokens the cache has not seen (all of them without a cache). */
    const forward = async (): Promise<Float32Array | InferenceRunError> => {
      const offset = useCache ? pastLength : 0
      const fed = ids.slice(offset)
      // Without the cache, `past` stays the empty cache a model with cache inputs still needs fed.
      const feeds: Record<string, Tensor> = { ...branches, ...past }
      feeds.input_ids = int64(fed, [1, fed.length])
      if (wantsMask) feeds.attention_mask = ones([1, offset + fed.length])
      if (wantsPositions) feeds.position_ids = positions(offset, fed.length)
      let outputs: Record<string, Tensor>
      try {
        outputs = await handle.session.run(feeds, wanted)
      } catch (cause) {
        return new InferenceRunError({ reason: `${handle.name}: ${describeCause(cause)}` })
      }
      const logits = outputs.logits
      if (logits === undefined || logits.type !== "float32" || logits.dims.length !== 3) {
        return new InferenceRunError({ reason: `${handle.name}: logits is not a float32 [batch, seq, vocab] tensor` })
      }
      if (useCache) {
        const next: Record<string, Tensor> = {}
        for (const input of handle.pastInputs) next[input.input] = outputs[input.output]!
        past = next
        pastLength = ids.length
      }
      const vocab = logits.dims[2]!
      const last = logits.dims[1]! - 1
      return (logits.data as Float32Array).subarray(last * vocab, (last + 1) * vocab)
    }

    const finish = (reason: GenerateResult["finishReason"], piece: string): Step => {
      finished = true
      finishReason = reason
      return { piece, done: true }
    }

    /** Adds the chosen token; the text now safe to show, and whether generation ended. */
    const advance = (logits: Float32Array, uniform: number): Step => {
      const token = selectToken(logits, ids, options, uniform)
      if (handle.eosIds.has(token) && options.ignoreEos !== true) {
        const tail = stops.push(stream.flush())
        return finish(tail.stopped ? "stop" : "eos", tail.release + (tail.stopped ? "" : stops.end()))
      }
      ids.push(token)
      generated.push(token)
      const out = stops.push(stream.push(token))
      if (out.stopped) return finish("stop", out.release)
      if (generated.length >= maxNewTokens || (handle.maxLength !== undefined && ids.length >= handle.maxLength)) {
        const tail = stops.push(stream.flush())
        return finish(
          tail.stopped ? "stop" : "length",
          out.release + tail.release + (tail.stopped ? "" : stops.end())
        )
      }
      return { piece: out.release, done: false }
    }

    // A token costs one Effect step around one Promise (the run, then the choice): a small model
    // decodes a token in well under a millisecond, where each Effect operation per token showed.
    const tokenWith = (uniform: number) =>
      handle.lock.withPermits(1)(
        Effect.flatMap(
          Effect.promise(forward),
          (logits) =>
            logits instanceof InferenceRunError ? Effect.fail(logits) : Effect.succeed(advance(logits, uniform))
        )
      )
    const sampling = (options.temperature ?? 0) > 0
    const step: Effect.Effect<Step, InferenceInputError | InferenceRunError> = Effect.suspend(() => {
      if (finished) return Effect.succeed({ piece: "", done: true })
      return sampling ? Effect.flatMap(Random.next, tokenWith) : tokenWith(0)
    })

    const result = (): GenerateResult => {
      const text = handle.tokenizer.decode(generated, { skipSpecialTokens: true })
      const cut = earliestStop(text, options.stop ?? [])
      return {
        text: cut === undefined ? text : text.slice(0, cut),
        tokenIds: [...generated],
        promptTokens: promptIds.length,
        finishReason
      }
    }
    return { step, result }
  })

export const generateText = (handle: ModelHandle, prompt: string, options: GenerateOptions = {}) =>
  Effect.gen(function*() {
    const generation = yield* start(handle, prompt, options)
    while (!(yield* generation.step).done) {
      // every step's text is also in the final decode
    }
    return generation.result()
  })

export const generateTextStream = (handle: ModelHandle, prompt: string, options: GenerateOptions = {}) =>
  Stream.unwrap(
    Effect.map(start(handle, prompt, options), (generation) =>
      Stream.paginateEffect(undefined, () =>
        Effect.map(generation.step, (step) =>
          [step.piece, step.done ? Option.none() : Option.some(undefined)] as const)))
  ).pipe(Stream.filter((piece) =>
    piece.length > 0
  ))

/** A piece of text as it is decoded, or the end of the generation with its whole result. */
export type GenerationEvent =
  | { readonly _tag: "Piece"; readonly text: string }
  | { readonly _tag: "Done"; readonly result: GenerateResult }

/**
 * The pieces `generateTextStream` gives, then the result (why it stopped, token counts): a server that
 * streams must still say at the end whether the reply was cut by the token limit.
 */
export const generateTextEvents = (handle: ModelHandle, prompt: string, options: GenerateOptions = {}) =>
  Stream.unwrap(
    Effect.map(start(handle, prompt, options), (generation) =>
      Stream.paginateEffect(false, (done) =>
        done
          ? Effect.succeed(
            [{ _tag: "Done", result: generation.result() } as GenerationEvent, Option.none<boolean>()] as const
          )
          : Effect.map(generation.step, (step) =>
            [{ _tag: "Piece", text: step.piece } as GenerationEvent, Option.some(step.done)] as const)))
  ).pipe(Stream.filter((event) =>
    event._tag === "Done" || event.text.length > 0
  ))
