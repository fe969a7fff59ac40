/**
 * A client of another node's registry, built from the node's own `HttpApi` (`NodeApi`): the paths,
 * query parameters, answers and errors are the server's Schemas, so client and server cannot disagree.
 *
 * Signed documents are the exception: a manifest is fetched and published byte for byte by
 * `content/RegistryTransfer.ts`, because decoding and re-encoding it through a Schema would drop the
 * fields this version does not know, and with them the publisher's signature.
 */
import { FetchHttpClient, HttpApiClient, HttpClientError } from "@effect/platform"
import { Effect, ParseResult } from "effect"
import { RegistryError } from "../content/RegistryTransfer.js"
import { NodeApi } from "./Api.js"

const base = (registry: string) => registry.replace(/\/+$/, "")

/** The typed client of the registry at `registry` (`http://host:port`), over the platform's fetch. */
export const registryClient = (registry: string) =>
  HttpApiClient.make(NodeApi, { baseUrl: base(registry) }).pipe(Effect.provide(FetchHttpClient.layer))

/** Transport failures and answers of another shape become one line naming the URL. */
const oneLine = (url: string) => (error: unknown): RegistryError => {
  if (ParseResult.isParseError(error)) {
    return new RegistryError({
      url,
      reason: `unexpected answer: ${ParseResult.TreeFormatter.formatErrorSync(error).split("\n").join(" ")}`,
      status: 200
    })
  }
  if (HttpClientError.isHttpClientError(error)) {
    if (error._tag === "ResponseError") {
      return new RegistryError({ url, reason: `HTTP ${error.response.status}`, status: error.response.status })
    }
    const cause = error.cause instanceof Error ? error.cause.message : error.message
    return new RegistryError({ url, reason: cause })
  }
  return new RegistryError({ url, reason: error instanceof Error ? error.message : String(error) })
}

/** The latest version of every model, optionally of one type and quantization. */
export const listModels = (
  registry: string,
  filter: { readonly type?: string | undefined; readonly quantization?: "FP32" | "FP16" | "INT8" | "INT4" | undefined }
) =>
  Effect.flatMap(registryClient(registry), (client) => client.registry.list({ urlParams: filter })).pipe(
    Effect.mapError(oneLine(`${base(registry)}/v1/models`))
  )

/** The latest version of every shared adapter, optionally for one base model and domain. */
export const listAdapters = (
  registry: string,
  filter: { readonly baseModel?: string | undefined; readonly domain?: string | undefined }
) =>
  Effect.flatMap(registryClient(registry), (client) => client.registry.adapters({ urlParams: filter })).pipe(
    Effect.mapError(oneLine(`${base(registry)}/v1/adapters`))
  )
