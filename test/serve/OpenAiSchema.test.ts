/**
 * OpenAI requests decoded without a node: what is accepted, what is refused and with which `param`
 * and `code`, the `model: base:adapter` form, base64 embeddings, and which listing GET /v1/models gives.
 */
import { HttpServerRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { listingFormat } from "../../src/http/RegistryRoutes.js"
import { parseModelField } from "../../src/serve/OpenAi.js"
import { base64OfFloats } from "../../src/serve/OpenAiReplies.js"
import { ChatCompletionRequest, decodeRequest, EmbeddingRequest } from "../../src/serve/OpenAiSchema.js"

const decodeChat = decodeRequest(ChatCompletionRequest)
const messages = [{ role: "user", content: "hi" }]

const refusalOf = (decoded: Either.Either<unknown, { readonly body: unknown }>) =>
  Either.isLeft(decoded) ? decoded.left.body : undefined

describe("OpenAI requests", () => {
  it("accepts OpenAI's defaults of parameters it does not serve, and refuses anything else by name", () => {
    expect(Either.isRight(decodeChat({ model: "tiny-lm", messages, n: 1, logprobs: false, user: "u", stop: null })))
      .toBe(true)
    expect(Either.isRight(decodeChat({ model: "tiny-lm", messages, response_format: { type: "text" } }))).toBe(true)
    expect(refusalOf(decodeChat({ model: "tiny-lm", messages, n: 3 }))).toEqual({
      error: {
        message: "n 3 is not supported by this node",
        type: "invalid_request_error",
        param: "n",
        code: "unsupported_parameter"
      }
    })
    expect(refusalOf(decodeChat({ model: "tiny-lm", messages, mystery: true }))).toMatchObject({
      error: { param: "mystery", code: "unknown_parameter" }
    })
    expect(refusalOf(decodeChat({ model: "tiny-lm" }))).toMatchObject({
      error: { message: "messages: is required", param: "messages", code: "missing_required_parameter" }
    })
    expect(refusalOf(decodeChat({ model: "tiny-lm", messages, temperature: 3 }))).toMatchObject({
      error: { param: "temperature", code: "invalid_value" }
    })
    expect(refusalOf(decodeChat({ model: "tiny-lm", messages: [{ role: "tool", content: "x" }] }))).toMatchObject({
      error: { param: "messages.0.role" }
    })
    expect(refusalOf(decodeChat([1, 2]))).toMatchObject({
      error: { message: "the request body must be a JSON object" }
    })
    expect(refusalOf(decodeRequest(EmbeddingRequest)({ model: "e", input: [1, 2] }))).toMatchObject({
      error: { param: "input" }
    })
  })

  it.effect("reads an adapter from `model: base:adapter` or `adapter`, and refuses two different ones", () =>
    Effect.gen(function*() {
      expect(yield* parseModelField("tiny-lm@1.0.0:mail@2.0.0", undefined)).toEqual({
        model: { id: "tiny-lm", version: "1.0.0" },
        adapter: "mail@2.0.0"
      })
      expect(yield* parseModelField("tiny-lm", "mail")).toEqual({
        model: { id: "tiny-lm", version: undefined },
        adapter: "mail"
      })
      const conflict = yield* Effect.flip(parseModelField("tiny-lm:a", "b"))
      expect(conflict.status).toBe(400)
    }))

  it("writes base64 embeddings as little-endian float32, as OpenAI's clients decode them", () => {
    const vector = Float32Array.from([1.5, -0.25, 3e-8])
    const bytes = Buffer.from(base64OfFloats(vector), "base64")
    expect(Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, 3))).toEqual(Array.from(vector))
  })

  it("gives OpenAI's listing to OpenAI clients or on request, and the registry's array to everyone else", () => {
    const request = (headers: Record<string, string>) =>
      HttpServerRequest.fromWeb(new Request("http://127.0.0.1/v1/models", { headers }))
    expect(listingFormat(request({}), undefined)).toBe("registry")
    expect(listingFormat(request({ authorization: "Bearer sk-unused" }), undefined)).toBe("openai")
    expect(listingFormat(request({ "x-stainless-lang": "js" }), undefined)).toBe("openai")
    expect(listingFormat(request({ authorization: "Bearer sk-unused" }), "registry")).toBe("registry")
    expect(listingFormat(request({}), "openai")).toBe("openai")
  })
})
