/**
 * Progress reports of one download: bytes verified, the receive rate smoothed over about a second, the
 * time left at that rate, and what each source has sent.
 */
import { Effect } from "effect"
import type { DownloadTarget, Progress } from "./Downloader.js"
import type { Coverage } from "./PartialFile.js"
import type { SourcePool } from "./SourcePool.js"

/** A report to `onProgress`; the final one says the whole file is done. */
export const progressReporter = (
  target: DownloadTarget,
  coverage: Coverage,
  pool: SourcePool,
  onProgress: ((progress: Progress) => void) | undefined
): (final: boolean) => Effect.Effect<void> => {
  let smoothedRate = 0
  let sampledAt = Date.now()
  let sampledBytes = 0
  return (final) =>
    Effect.sync(() => {
      const now = Date.now()
      const instant = now > sampledAt ? ((pool.bytesFetched - sampledBytes) * 1000) / (now - sampledAt) : 0
      smoothedRate = smoothedRate === 0 ? instant : smoothedRate * 0.8 + instant * 0.2
      sampledAt = now
      sampledBytes = pool.bytesFetched
      const bytesDone = final ? target.size : coverage.bytes
      try {
        onProgress?.({
          label: target.label,
          bytesDone,
          bytesTotal: target.size,
          bytesPerSecond: Math.round(smoothedRate),
          etaSeconds: final ? 0 : smoothedRate > 0 ? (target.size - bytesDone) / smoothedRate : undefined,
          sources: pool.stats()
        })
      } catch {
        // Progress display is never worth failing a download for.
      }
    })
}
