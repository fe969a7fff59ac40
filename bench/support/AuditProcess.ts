/**
 * One `audit replay` or `audit verify` of a node's data dir, in a process of its own as the CLI runs it:
 * the market bench starts it as a child, so the peak RSS it prints is the audit's alone. Prints one
 * line of JSON: seconds, peak RSS and what the audit found.
 */
import { Effect, ManagedRuntime } from "effect"
import { nodeServices } from "../../src/layers/Node.js"
import { NodeAudit } from "../../src/layers/NodeAudit.js"
import type { AuditRun } from "./AuditRun.js"

const [dataDir, mode] = process.argv.slice(2)
if (dataDir === undefined || (mode !== "replay" && mode !== "verify" && mode !== "both")) {
  console.error("usage: AuditProcess.ts <data dir> replay|verify|both")
  process.exit(2)
}
const runtime = ManagedRuntime.make(nodeServices({ dataDir, host: "127.0.0.1", port: 0, synchronous: "normal" }))
const audit = await runtime.runPromise(NodeAudit)
const start = process.hrtime.bigint()
const found = await runtime.runPromise(
  mode === "replay"
    ? Effect.map(audit.replay(), (report) => ({
      ok: report.ok,
      events: report.head.position,
      summary: report.ok
        ? report.actors.map((actor) => `${actor.category} ${actor.entities}`).join(", ")
        : JSON.stringify(report, (_key, value) => (typeof value === "bigint" ? `${value}` : value))
    }))
    : mode === "verify"
    ? Effect.map(audit.verify(), (report) => ({
      ok: report.ok,
      events: report.eventsChecked,
      summary: report.problem ?? `${report.headsChecked} signed heads`
    }))
    : Effect.map(audit.replayAndVerify(), ({ chain, replay }) => ({
      ok: chain.ok && replay.ok,
      events: chain.eventsChecked,
      summary: chain.problem ?? (replay.ok ? `${chain.headsChecked} signed heads` : "replay is not ok")
    }))
)
const seconds = Number(process.hrtime.bigint() - start) / 1e9
await runtime.dispose()
const run: AuditRun = { seconds, peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024), ...found }
console.log(JSON.stringify(run))
