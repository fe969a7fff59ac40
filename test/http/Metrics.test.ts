/**
 * The Prometheus text rendering of Effect metrics on its own: each kind of metric, labels that need
 * escaping, and families in a stable order.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric, MetricBoundaries } from "effect"
import * as Metrics from "../../src/domain/Metrics.js"
import { renderPrometheus } from "../../src/http/Metrics.js"

describe("renderPrometheus", () => {
  it.effect("renders counters, gauges and histograms with HELP, TYPE and escaped labels", () =>
    Effect.gen(function*() {
      const ok = Metrics.counter("test_render_commands_total", "Commands\nhandled", { outcome: "ok" })
      const odd = Metrics.counter("test_render_commands_total", "Commands\nhandled", { outcome: "say \"no\"\\" })
      const lag = Metrics.gauge("test_render_lag", "Lag", { policy: "ledger.credits" })
      const seconds = Metrics.histogram("test_render_seconds", "Latency", {}, MetricBoundaries.fromIterable([0.1, 1]))
      yield* Metric.incrementBy(ok, 3)
      yield* Metric.increment(odd)
      yield* Metric.set(lag, 7)
      for (const value of [0.05, 0.5, 0.7, 5]) yield* Metric.update(seconds, value)
      const text = renderPrometheus(
        (yield* Metric.snapshot).filter((pair) => pair.metricKey.name.startsWith("test_render_"))
      )
      expect(text).toBe([
        "# HELP test_render_commands_total Commands\\nhandled",
        "# TYPE test_render_commands_total counter",
        "test_render_commands_total{outcome=\"ok\"} 3",
        "test_render_commands_total{outcome=\"say \\\"no\\\"\\\\\"} 1",
        "# HELP test_render_lag Lag",
        "# TYPE test_render_lag gauge",
        "test_render_lag{policy=\"ledger.credits\"} 7",
        "# HELP test_render_seconds Latency",
        "# TYPE test_render_seconds histogram",
        "test_render_seconds_bucket{le=\"0.1\"} 1",
        "test_render_seconds_bucket{le=\"1\"} 3",
        "test_render_seconds_bucket{le=\"+Inf\"} 4",
        "test_render_seconds_sum 6.25",
        "test_render_seconds_count 4",
        ""
      ].join("\n"))
    }))
})
