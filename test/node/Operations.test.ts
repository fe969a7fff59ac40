/**
 * What an operator sees of a real node process: /metrics in Prometheus' text format moving with the
 * commands it handles, a policy's dead letter on /health and in `node info`, and spans exported over
 * OTLP/HTTP to a collector on loopback when tracing is configured.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema } from "effect"
import { execFile } from "node:child_process"
import * as http from "node:http"
import { promisify } from "node:util"
import { Journal } from "../../src/events/Journal.js"
import { sqliteKernel } from "../../src/layers/Kernel.js"
import { signingClientLayer } from "../../src/rpc/CommandSigning.js"
import { cliArgs, startNode } from "../support/NodeProcess.js"
import { nodeRpcClient, rpcProtocol } from "../support/RpcClient.js"
import { as, operatorKeyOf, testKey } from "../support/Signing.js"
import { tempDir } from "../support/TempDir.js"

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const SAMPLE =
  /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\+Inf|-Inf)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"/g

/**
 * Parses exposition text as Prometheus does, failing on any line it would refuse: every sample after
 * its family's TYPE, histogram buckets cumulative and ending at +Inf = _count.
 */
const parsePrometheus = (text: string): ReadonlyArray<Sample> => {
  expect(text.endsWith("\n")).toBe(true)
  const types = new Map<string, string>()
  const samples: Array<Sample> = []
  for (const line of text.slice(0, -1).split("\n")) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
    if (type !== null) {
      expect(types.has(type[1]!), `TYPE of ${type[1]} given twice`).toBe(false)
      types.set(type[1]!, type[2]!)
      continue
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$/.test(line)) continue
    const sample = SAMPLE.exec(line)
    expect(sample, `not a sample line: ${line}`).not.toBeNull()
    const name = sample![1]!
    const family = name.replace(/_(bucket|sum|count)$/, "")
    expect(
      types.has(name) || types.get(family) === "histogram" || types.get(family) === "summary",
      `${name} before its TYPE`
    ).toBe(true)
    const labels = Object.fromEntries([...(sample![2] ?? "").matchAll(LABEL)].map((match) => [match[1]!, match[2]!]))
    samples.push({ name, labels, value: sample![3] === "+Inf" ? Infinity : Number(sample![3]) })
  }
  for (const [family, type] of types) {
    if (type !== "histogram") continue
    const buckets = samples.filter((sample) => sample.name === `${family}_bucket`)
    expect(buckets.length).toBeGreaterThan(0)
    const series = new Map<string, Array<Sample>>()
    for (const bucket of buckets) {
      const { le: _le, ...rest } = bucket.labels
      const key = JSON.stringify(rest)
      series.set(key, [...(series.get(key) ?? []), bucket])
    }
    for (const [key, list] of series) {
      const counts = list.map((bucket) => bucket.value)
      expect(counts).toEqual([...counts].sort((a, b) => a - b))
      expect(list[list.length - 1]!.labels["le"]).toBe("+Inf")
      const count = samples.find((sample) => sample.name === `${family}_count` && JSON.stringify(sample.labels) === key)
      expect(count?.value).toBe(counts[counts.length - 1])
    }
  }
  return samples
}

const valueOf = (samples: ReadonlyArray<Sample>, name: string, labels: Readonly<Record<string, string>> = {}) =>
  samples
    .filter((sample) =>
      sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
    )
    .reduce((sum, sample) => sum + sample.value, 0)

const scrape = (url: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}/metrics`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("text/plain; version=0.0.4")
    return parsePrometheus(await response.text())
  })

const HealthBody = Schema.Struct({
  status: Schema.String,
  deadLetterCount: Schema.Number,
  deadLetters: Schema.Array(
    Schema.Struct({
      policy: Schema.String,
      position: Schema.Number,
      eventType: Schema.String,
      streamId: Schema.String,
      error: Schema.String,
      attempts: Schema.Number
    })
  )
})
const health = (url: string) =>
  Effect.promise(() => fetch(`${url}/health`).then((response) => response.json())).pipe(
    Effect.flatMap(Schema.decodeUnknown(HealthBody)),
    Effect.orDie
  )

describe("operating a node", () => {
  it.live(
    "/metrics is Prometheus text, and its counters move with the commands the node handles",
    () =>
      Effect.gen(function*() {
        const dataDir = tempDir()
        const node = yield* Effect.promise(() => startNode(dataDir))
        try {
          const before = yield* scrape(node.url)
          const alice = testKey()
          const bob = testKey()
          yield* Effect.gen(function*() {
            const client = yield* nodeRpcClient
            yield* as(operatorKeyOf(dataDir))(
              client.LedgerMint({ account: alice.account, amount: 1_000n, operationId: "mint-ops-1" as never })
            )
            for (let i = 0; i < 3; i++) {
              yield* as(alice)(
                client.LedgerTransfer({
                  from: alice.account,
                  to: bob.account,
                  amount: 10n,
                  transferId: `ops-${i}` as never
                })
              )
            }
            // One the ledger refuses: more than alice holds.
            yield* Effect.either(
              as(alice)(
                client.LedgerTransfer({
                  from: alice.account,
                  to: bob.account,
                  amount: 1_000_000n,
                  transferId: "ops-too-much" as never
                })
              )
            )
          }).pipe(Effect.scoped, Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer)))

          // The credits policy completes each transfer; its lag comes back to 0 once it has.
          const after = yield* scrape(node.url).pipe(
            Effect.filterOrFail((samples) =>
              valueOf(samples, "edge_net_policy_lag_events", { policy: "ledger.credits" }) === 0 &&
              valueOf(samples, "edge_net_commands_handled_total", { category: "Account", outcome: "ok" }) >= 7
            ),
            Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
          )
          const moved = (name: string, labels: Record<string, string> = {}) =>
            valueOf(after, name, labels) - valueOf(before, name, labels)
          // Mint, 3 debits, 3 credits (the policy finds each credit done).
          expect(moved("edge_net_commands_handled_total", { category: "Account", outcome: "ok" }))
            .toBeGreaterThanOrEqual(7)
          expect(moved("edge_net_commands_handled_total", { category: "Account", outcome: "refused" })).toBe(1)
          expect(moved("edge_net_events_appended_total")).toBeGreaterThanOrEqual(7)
          // One append for the mint, one per transfer (its debit and credit are written together).
          expect(moved("edge_net_journal_append_seconds_count")).toBeGreaterThanOrEqual(4)
          expect(moved("edge_net_policy_events_handled_total", { policy: "ledger.credits" })).toBe(3)
          expect(valueOf(after, "edge_net_journal_head_position")).toBeGreaterThanOrEqual(8)
          expect(
            after.some((sample) =>
              sample.name === "edge_net_policy_lag_events" && sample.labels["policy"] === "staking.settlement"
            )
          ).toBe(true)
          expect(valueOf(after, "edge_net_dead_letters")).toBe(0)
        } finally {
          yield* Effect.promise(() => node.kill("SIGTERM"))
        }
      }),
    90_000
  )

  it.live(
    "an event a policy can never handle is a dead letter on /health, in node info and in /metrics, and later events still go through",
    () =>
      Effect.gen(function*() {
        const dataDir = tempDir()
        // A debit whose payload the credits policy cannot decode, in the node's own signed journal.
        const poisoned = yield* Effect.flatMap(Journal, (journal) =>
          journal.append("Account-poisoned", "none", [{
            eventType: "Debited",
            payload: { _tag: "Debited", transferId: "t-poison" }
          }])).pipe(Effect.provide(sqliteKernel({ dataDir, synchronous: "normal" })), Effect.scoped)
        const position = poisoned.envelopes[0]!.position
        const node = yield* Effect.promise(() => startNode(dataDir))
        try {
          const reported = yield* health(node.url).pipe(
            Effect.filterOrFail((body) => body.deadLetterCount > 0),
            Effect.retry({ schedule: Schedule.spaced("200 millis"), times: 100 })
          )
          expect(reported.status).toBe("degraded")
          expect(reported.deadLetters).toEqual([
            expect.objectContaining({
              policy: "ledger.credits",
              position,
              eventType: "Debited",
              streamId: "Account-poisoned",
              attempts: 7
            })
          ])
          expect(reported.deadLetters[0]!.error).toContain("ParseError")

          // The policy went on: a transfer after it is credited.
          const alice = testKey()
          const bob = testKey()
          const balance = yield* Effect.gen(function*() {
            const client = yield* nodeRpcClient
            yield* as(operatorKeyOf(dataDir))(
              client.LedgerMint({ account: alice.account, amount: 100n, operationId: "mint-after-poison" as never })
            )
            yield* as(alice)(
              client.LedgerTransfer({
                from: alice.account,
                to: bob.account,
                amount: 40n,
                transferId: "after-poison" as never
              })
            )
            return yield* client.LedgerBalance({ account: bob.account }).pipe(
              Effect.filterOrFail((balance) => balance.available === 40n),
              Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 })
            )
          }).pipe(Effect.scoped, Effect.provide(Layer.merge(rpcProtocol(node.url), signingClientLayer)))
          expect(balance.available).toBe(40n)

          const metrics = yield* scrape(node.url)
          expect(valueOf(metrics, "edge_net_dead_letters")).toBe(1)
          expect(valueOf(metrics, "edge_net_policy_dead_letters_total", { policy: "ledger.credits" })).toBe(1)

          const { stdout } = yield* Effect.promise(() =>
            promisify(execFile)(process.execPath, cliArgs("node", "info", "--node", node.url))
          )
          expect(stdout).toContain("1 dead letter")
          expect(stdout).toContain(
            `ledger.credits gave up on position ${position} (Debited on Account-poisoned) after 7 attempts`
          )
          expect(stdout).toMatch(/policy {5}ledger\.credits at \d+, \d+ behind/)
        } finally {
          yield* Effect.promise(() => node.kill("SIGTERM"))
        }
        // After a restart the dead letter is still reported.
        const again = yield* Effect.promise(() => startNode(dataDir))
        try {
          expect(yield* health(again.url)).toMatchObject({ status: "degraded", deadLetterCount: 1 })
        } finally {
          yield* Effect.promise(() => again.kill("SIGTERM"))
        }
      }),
    120_000
  )

  it.live("with an OTLP endpoint configured, the node's spans arrive at the collector", () =>
    Effect.gen(function*() {
      const bodies: Array<unknown> = []
      const collector = http.createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          if (request.method === "POST" && request.url === "/v1/traces") {
            bodies.push(JSON.parse(Buffer.concat(chunks).toString("utf8")))
          }
          response.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      const port = yield* Effect.async<number>((resume) => {
        collector.listen(0, "127.0.0.1", () => resume(Effect.succeed((collector.address() as { port: number }).port)))
      })
      const node = yield* Effect.promise(() =>
        startNode(tempDir(), undefined, {
          EDGE_NET_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
          EDGE_NET_OTLP_EXPORT_INTERVAL: "200 millis"
        })
      )
      try {
        for (let i = 0; i < 3; i++) yield* health(node.url)
        const spanNames = () => {
          const names: Array<string> = []
          for (const body of bodies) {
            const decoded = Schema.decodeUnknownSync(TraceBody)(body)
            for (const resource of decoded.resourceSpans) {
              expect(resource.resource.attributes).toContainEqual({
                key: "service.name",
                value: { stringValue: "edge-net" }
              })
              for (const scope of resource.scopeSpans) for (const span of scope.spans) names.push(span.name)
            }
          }
          return names
        }
        const names = yield* Effect.sync(spanNames).pipe(
          Effect.filterOrFail((names) => names.includes("NodeStatus.health")),
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 })
        )
        expect(names.filter((name) => name === "NodeStatus.health").length).toBeGreaterThanOrEqual(3)
        expect(names.some((name) => name.startsWith("http.server"))).toBe(true)
      } finally {
        yield* Effect.promise(() => node.kill("SIGTERM"))
        collector.close()
      }
    }), 90_000)
})

const TraceBody = Schema.Struct({
  resourceSpans: Schema.Array(Schema.Struct({
    resource: Schema.Struct({ attributes: Schema.Array(Schema.Struct({ key: Schema.String, value: Schema.Unknown })) }),
    scopeSpans: Schema.Array(Schema.Struct({ spans: Schema.Array(Schema.Struct({ name: Schema.String })) }))
  }))
})
