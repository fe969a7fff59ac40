/**
 * Quality reports on a shared adapter (model-distribution seed 9.2, AdapterReport), as the registry
 * records them: one report per reporter key and adapter, the latest one standing, and the adapter's
 * quality score derived from them.
 *
 * The score is the mean of every reporter's standing report, with the quality the publisher signed
 * into its manifest (when it declares one) counted as one more report. It is a function of the
 * recorded reports alone: "latest" is decided by the report's own signed timestamp (ties by signature),
 * never by arrival order, so every node that has recorded the same reports holds the same score,
 * however gossip ordered them. (A weight by the reporter's reputation would differ between nodes, whose
 * economies are their own.)
 */
import { Schema } from "effect"

export const QualityReport = Schema.Struct({
  /** The reporter's Ed25519 public key (hex), which signed the report. */
  reporter: Schema.String,
  /** In 0..1, as the wire's float carries it. */
  score: Schema.Number,
  feedback: Schema.String,
  /** Milliseconds since the epoch, as the reporter signed it. */
  timestamp: Schema.Number,
  /** The reporter's signature (hex) over the report's signed bytes (net/AdapterWire.ts). */
  signature: Schema.String
})
export type QualityReport = typeof QualityReport.Type

export const AdapterQualityReported = Schema.TaggedStruct("AdapterQualityReported", {
  id: Schema.String,
  ...QualityReport.fields
})

/** Whether `report` replaces `standing` as its reporter's report: a later timestamp, or the same one and a larger signature. */
export const supersedes = (report: QualityReport, standing: QualityReport | undefined): boolean =>
  standing === undefined ||
  report.timestamp > standing.timestamp ||
  (report.timestamp === standing.timestamp && report.signature > standing.signature)

export interface QualityScore {
  /** Undefined when there is neither a report nor a declared quality. */
  readonly score: number | undefined
  readonly reports: number
}

/** The mean of the standing reports and the publisher's declared quality (see the module comment). */
export const qualityScore = (
  reports: Readonly<Record<string, QualityReport>> | undefined,
  declared: number | undefined
): QualityScore => {
  const scores = Object.values(reports ?? {}).map((report) => report.score)
  const all = declared === undefined ? scores : [declared, ...scores]
  return {
    score: all.length === 0 ? undefined : all.reduce((sum, score) => sum + score, 0) / all.length,
    reports: scores.length
  }
}
