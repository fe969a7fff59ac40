/**
 * GET /metrics: the process's Effect metrics in Prometheus' text exposition format (0.0.4), with
 * each policy's lag and dead letters, and the journal's head, read at the moment of the scrape.
 */
import { HttpLayerRouter, HttpServerResponse } from "@effect/platform"
import { Effect, Metric, MetricState } from "effect"
import type { MetricPair } from "effect"
import * as Metrics from "../domain/Metrics.js"
import { Checkpoints } from "../events/Checkpoints.js"
import { NodeStatus } from "../layers/NodeStatus.js"

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, "\\\"")
const escapeHelp = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")
const sanitizeName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/^([0-9])/, "_$1")

const formatValue = (value: number | bigint) =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isNaN(value)
    ? "NaN"
    : value === Infinity
    ? "+Inf"
    : value === -Infinity
    ? "-Inf"
    : String(value)

const labelText = (labels: ReadonlyArray<readonly [string, string]>) =>
  labels.length === 0
    ? ""
    : `{${labels.map(([key, value]) => `${sanitizeName(key)}="${escapeLabel(value)}"`).join(",")}}`

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string
  /** Each series' samples, under its labels' text, so series sort stably and a histogram's buckets keep their order. */
  readonly series: Array<readonly [string, ReadonlyArray<string>]>
}

/** The samples of one metric series, with its labels, as exposition lines. */
const samplesOf = (
  name: string,
  labels: ReadonlyArray<readonly [string, string]>,
  state: MetricState.MetricState.Untyped
): Array<string> => {
  if (MetricState.isCounterState(state)) return [`${name}${labelText(labels)} ${formatValue(state.count)}`]
  if (MetricState.isGaugeState(state)) return [`${name}${labelText(labels)} ${formatValue(state.value)}`]
  if (MetricState.isHistogramState(state)) {
    const lines = state.buckets
      .filter(([boundary]) => boundary !== Infinity)
      .map(([boundary, cumulative]) =>
        `${name}_bucket${labelText([...labels, ["le", formatValue(boundary)]])} ${cumulative}`
      )
    lines.push(`${name}_bucket${labelText([...labels, ["le", "+Inf"]])} ${state.count}`)
    lines.push(
      `${name}_sum${labelText(labels)} ${formatValue(state.sum)}`,
      `${name}_count${labelText(labels)} ${state.count}`
    )
    return lines
  }
  if (MetricState.isSummaryState(state)) {
    const lines = state.quantiles.flatMap(([quantile, value]) =>
      value._tag === "Some"
        ? [`${name}${labelText([...labels, ["quantile", String(quantile)]])} ${formatValue(value.value)}`]
        : []
    )
    lines.push(
      `${name}_sum${labelText(labels)} ${formatValue(state.sum)}`,
      `${name}_count${labelText(labels)} ${state.count}`
    )
    return lines
  }
  // A frequency: one counter series per word it counted.
  if (MetricState.isFrequencyState(state)) {
    return [...state.occurrences].map(([word, count]) => `${name}${labelText([...labels, ["key", word]])} ${count}`)
  }
  return []
}

const typeOf = (state: MetricState.MetricState.Untyped): Family["type"] =>
  MetricState.isGaugeState(state)
    ? "gauge"
    : MetricState.isHistogramState(state)
    ? "histogram"
    : MetricState.isSummaryState(state)
    ? "summary"
    : "counter"

/**
 * Renders metric pairs as Prometheus text: one HELP and TYPE per family, its series after them, in
 * name order so a scrape reads the same each time.
 */
export const renderPrometheus = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  for (const pair of pairs) {
    const name = sanitizeName(pair.metricKey.name)
    const labels = pair.metricKey.tags.map((label) => [label.key, label.value] as const)
    const family = families.get(name) ??
      {
        type: typeOf(pair.metricState),
        help: pair.metricKey.description._tag === "Some" ? pair.metricKey.description.value : name,
        series: []
      }
    families.set(name, family)
    family.series.push([labelText(labels), samplesOf(name, labels, pair.metricState)])
  }
  const text: Array<string> = []
  for (const name of [...families.keys()].sort()) {
    const family = families.get(name)
    if (family === undefined || family.series.every(([, lines]) => lines.length === 0)) continue
    text.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`)
    for (const [, lines] of family.series.sort(([a], [b]) => a.localeCompare(b))) {
      for (const line of lines) text.push(line)
    }
  }
  return text.join("\n") + "\n"
}

/** Reads what is state rather than an event (the journal's head, each policy's lag) into gauges, then snapshots. */
export const scrape = Effect.gen(function*() {
  const status = yield* NodeStatus
  const checkpoints = yield* Checkpoints
  const head = yield* status.head
  yield* Metric.set(
    Metrics.gauge("edge_net_journal_head_position", "Position of the last event in the journal"),
    head.position
  )
  for (const policy of yield* status.policies()) {
    yield* Metric.set(
      Metrics.gauge(
        "edge_net_policy_lag_events",
        "Events of the journal a policy has still to look at (head minus checkpoint)",
        { policy: policy.name }
      ),
      policy.lag
    )
    yield* Metric.set(
      Metrics.gauge("edge_net_policy_checkpoint_position", "Last position a policy finished", { policy: policy.name }),
      policy.checkpoint
    )
  }
  yield* Metric.set(
    Metrics.gauge("edge_net_dead_letters", "Events policies gave up on, recorded in the journal's database"),
    yield* checkpoints.deadLetterCount
  )
  return renderPrometheus(yield* Metric.snapshot)
}).pipe(Effect.withSpan("Metrics.scrape"))

export const MetricsRoute = HttpLayerRouter.add(
  "GET",
  "/metrics",
  Effect.map(scrape, (text) => HttpServerResponse.text(text, { contentType: PROMETHEUS_CONTENT_TYPE }))
)
