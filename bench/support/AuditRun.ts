/** What bench/support/AuditProcess.ts prints: one audit's seconds, peak RSS and findings. */
import { Schema } from "effect"

export const AuditRun = Schema.Struct({
  seconds: Schema.Number,
  peakRssMb: Schema.Number,
  ok: Schema.Boolean,
  events: Schema.Number,
  summary: Schema.String
})
export type AuditRun = typeof AuditRun.Type

export const decodeAuditRun = Schema.decodeUnknownSync(Schema.parseJson(AuditRun))
