/**
 * Tracing for a running node: the spans its code already makes (Effect.withSpan, Effect.fn, the HTTP
 * server's request spans) exported over OTLP/HTTP (JSON) when an endpoint is configured; off otherwise.
 */
import { FetchHttpClient } from "@effect/platform"
import { Config, ConfigError, Duration, Effect, Either, Layer, Option } from "effect"
import { VERSION } from "./Version.js"

/**
 * `EDGE_NET_OTLP_ENDPOINT`, else the standard `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL
 * (traces go to `<url>/v1/traces`). `EDGE_NET_OTLP_EXPORT_INTERVAL` (default 5 seconds) is how often
 * spans are sent; the last ones are sent when the node stops.
 */
export const TelemetryConfig = Config.all({
  endpoint: Config.option(
    Config.string("EDGE_NET_OTLP_ENDPOINT").pipe(Config.orElse(() => Config.string("OTEL_EXPORTER_OTLP_ENDPOINT")))
  ),
  exportInterval: Config.duration("EDGE_NET_OTLP_EXPORT_INTERVAL").pipe(Config.withDefault(Duration.seconds(5)))
}).pipe(
  Config.mapOrFail(({ endpoint, exportInterval }) => {
    const url = Option.map(
      Option.filter(endpoint, (text) => text.trim() !== ""),
      (text) => text.trim().replace(/\/+$/, "")
    )
    if (Option.isSome(url) && !/^https?:\/\/[^\s/]+/.test(url.value)) {
      return Either.left(ConfigError.InvalidData([], `EDGE_NET_OTLP_ENDPOINT: "${url.value}" is not an http(s) URL`))
    }
    return Either.right({ endpoint: url, exportInterval })
  })
)

/**
 * Sets the OTLP tracer for everything built on top of it, when an endpoint is configured, and turns
 * tracing off when none is. The exporter's
 * modules are loaded only then (subpaths: the package index would also load the OpenTelemetry SDK), so a
 * node or a CLI command without tracing never pays for them.
 */
export const TelemetryLive = Layer.unwrapEffect(
  Effect.gen(function*() {
    const { endpoint, exportInterval } = yield* TelemetryConfig
    // Without an exporter nobody reads spans: the tracer is switched off, so each span made on the
    // way (Effect.fn, withSpan, the HTTP server's) is a no-op rather than a recorded span.
    if (Option.isNone(endpoint)) return Layer.setTracerEnabled(false)
    const [OtlpTracer, OtlpSerialization] = yield* Effect.promise(() =>
      Promise.all([import("@effect/opentelemetry/OtlpTracer"), import("@effect/opentelemetry/OtlpSerialization")])
    )
    return OtlpTracer.layer({
      url: `${endpoint.value}/v1/traces`,
      resource: { serviceName: "edge-net", serviceVersion: VERSION },
      exportInterval
    }).pipe(Layer.provide([OtlpSerialization.layerJson, FetchHttpClient.layer]))
  })
)
