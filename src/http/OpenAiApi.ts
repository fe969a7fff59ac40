/**
 * HTTP contract of the inference the node serves, OpenAI-compatible: embeddings, completions and chat
 * completions. The handlers read the body themselves so that every refusal has OpenAI's error shape.
 */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { ChatCompletionRequest, CompletionRequest, EmbeddingRequest } from "../serve/OpenAiSchema.js"

/** The paths of the OpenAI-compatible routes, whose refusals (the guards' too) take OpenAI's error shape. */
export const OPENAI_ROUTES: ReadonlySet<string> = new Set(["/v1/embeddings", "/v1/completions", "/v1/chat/completions"])

export class OpenAiApi extends HttpApiGroup.make("openai")
  .add(
    HttpApiEndpoint.post("embeddings", "/v1/embeddings")
      .setPayload(EmbeddingRequest)
      .annotate(
        OpenApi.Description,
        "OpenAI's embeddings with a model of this node's registry (`id[@version]`, optionally `:adapter[@version]` or " +
          "`adapter`); `encoding_format` float or base64 (little-endian float32)."
      )
  )
  .add(
    HttpApiEndpoint.post("completions", "/v1/completions")
      .setPayload(CompletionRequest)
      .annotate(OpenApi.Description, "OpenAI's completions; `stream: true` answers server-sent events.")
  )
  .add(
    HttpApiEndpoint.post("chatCompletions", "/v1/chat/completions")
      .setPayload(ChatCompletionRequest)
      .annotate(OpenApi.Description, "OpenAI's chat completions; `stream: true` answers server-sent events.")
  )
{}
