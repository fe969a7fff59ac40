/**
 * The node's metrics as Effect Metrics (one process-wide registry, rendered at /metrics), named
 * `edge_net_...`. Each labelled series is made once, so an update costs no key lookup on hot paths.
 */
import { Metric, MetricBoundaries, MetricKey, MetricLabel } from "effect"

const labels = (tags: Readonly<Record<string, string>>) =>
  Object.entries(tags).map(([key, value]) => MetricLabel.make(key, value))

/** A counter series with fixed labels, e.g. `counter("edge_net_commands_handled_total", "...", { outcome: "ok" })`. */
export const counter = (name: string, description: string, tags: Readonly<Record<string, string>> = {}) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.counter(name, { description }), labels(tags)))

/** Seconds, from 0.5 ms to about 33 s: latencies of appends, commands and inference alike. */
export const LATENCY_SECONDS = MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 17 })

/** A histogram series with fixed labels, in seconds unless the name says otherwise. */
export const histogram = (
  name: string,
  description: string,
  tags: Readonly<Record<string, string>> = {},
  boundaries = LATENCY_SECONDS
) => Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.histogram(name, boundaries, description), labels(tags)))

/** A gauge series with fixed labels. */
export const gauge = (name: string, description: string, tags: Readonly<Record<string, string>> = {}) =>
  Metric.fromMetricKey(MetricKey.taggedWithLabels(MetricKey.gauge(name, { description }), labels(tags)))
