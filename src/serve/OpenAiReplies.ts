/**
 * The answers of the OpenAI-compatible routes in OpenAI's shapes: whole replies, the chunks of a
 * streamed one as server-sent events, embeddings as numbers or base64, and token usage.
 */
import * as crypto from "node:crypto"
import type { GenerateResult } from "../compute/inference/Inference.js"

/** OpenAI has no "eos": the end of the text and a stop sequence are both "stop". */
const finishReasonOf = (result: GenerateResult) => (result.finishReason === "length" ? "length" : "stop")

const usageOf = (result: GenerateResult) => ({
  prompt_tokens: result.promptTokens,
  completion_tokens: result.tokenIds.length,
  total_tokens: result.promptTokens + result.tokenIds.length
})

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: "base64"`. */
export const base64OfFloats = (vector: Float32Array) => {
  const bytes = Buffer.alloc(vector.length * 4)
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i]!, i * 4)
  return bytes.toString("base64")
}

export const embeddingReply = (
  model: string,
  vectors: ReadonlyArray<Float32Array>,
  encoding: "float" | "base64",
  tokens: number
) => ({
  object: "list" as const,
  data: vectors.map((vector, index) => ({
    object: "embedding" as const,
    index,
    embedding: encoding === "base64" ? base64OfFloats(vector) : Array.from(vector)
  })),
  model,
  usage: { prompt_tokens: tokens, total_tokens: tokens }
})

const replyId = (kind: "completion" | "chat") => `${kind === "chat" ? "chatcmpl" : "cmpl"}-${crypto.randomUUID()}`

const now = () => Math.floor(Date.now() / 1000)

/** A whole completion (`text_completion`) or chat completion (`chat.completion`). */
export const wholeReply = (kind: "completion" | "chat", model: string, result: GenerateResult) => ({
  id: replyId(kind),
  object: kind === "chat" ? "chat.completion" : "text_completion",
  created: now(),
  model,
  choices: [
    kind === "chat"
      ? {
        index: 0,
        message: { role: "assistant", content: result.text, refusal: null },
        logprobs: null,
        finish_reason: finishReasonOf(result)
      }
      : { index: 0, text: result.text, logprobs: null, finish_reason: finishReasonOf(result) }
  ],
  usage: usageOf(result)
})

/** One server-sent event carrying JSON. */
export const sse = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`
export const SSE_DONE = "data: [DONE]\n\n"

/**
 * The events of one streamed reply, all with its id: a chat stream opens with the role, each piece
 * of text is a chunk, and the last chunk carries the finish reason.
 */
export const streamFrames = (kind: "completion" | "chat", model: string) => {
  const id = replyId(kind)
  const created = now()
  const chunk = (choice: Record<string, unknown>) =>
    sse({
      id,
      object: kind === "chat" ? "chat.completion.chunk" : "text_completion",
      created,
      model,
      choices: [{ index: 0, logprobs: null, ...choice }]
    })
  return {
    first: kind === "chat" ? [chunk({ delta: { role: "assistant", content: "" }, finish_reason: null })] : [],
    piece: (text: string) =>
      kind === "chat" ? chunk({ delta: { content: text }, finish_reason: null }) : chunk({ text, finish_reason: null }),
    last: (result: GenerateResult) =>
      kind === "chat"
        ? chunk({ delta: {}, finish_reason: finishReasonOf(result) })
        : chunk({ text: "", finish_reason: finishReasonOf(result) })
  }
}
