/**
 * A token bucket shared by every worker of a download: caps the bytes per second taken from all sources
 * together, so one pull at full speed does not starve the node's other traffic.
 */
import { Duration, Effect } from "effect"

export interface ByteRate {
  /** The cap, or `Infinity` for a limiter that never waits. */
  readonly bytesPerSecond: number
  /**
   * Waits until `bytes` may pass. The bucket may go into debt for a request larger than what it holds:
   * that request waits for the debt, and so does every later one, in the order they asked.
   */
  readonly take: (bytes: number) => Effect.Effect<void>
}

export interface ByteRateOptions {
  /** How much may pass at once after a quiet spell; default an eighth of a second's worth, at least 64 KiB. */
  readonly burstBytes?: number
}

export const unlimited: ByteRate = { bytesPerSecond: Infinity, take: () => Effect.void }

/** A limiter for `bytesPerSecond` (undefined, zero or negative: no limit), starting with a full bucket. */
export const make = (bytesPerSecond: number | undefined, options: ByteRateOptions = {}): Effect.Effect<ByteRate> =>
  bytesPerSecond === undefined || !(bytesPerSecond > 0) || bytesPerSecond === Infinity
    ? Effect.succeed(unlimited)
    : Effect.clockWith((clock) =>
      Effect.sync(() => {
        const burst = options.burstBytes ?? Math.max(64 * 1024, bytesPerSecond / 8)
        let tokens = burst
        let refilledAt = clock.unsafeCurrentTimeMillis()
        const take = (bytes: number): Effect.Effect<void> =>
          Effect.suspend(() => {
            const now = clock.unsafeCurrentTimeMillis()
            tokens = Math.min(burst, tokens + ((now - refilledAt) * bytesPerSecond) / 1000)
            refilledAt = now
            tokens -= bytes
            // Debt is paid by sleeping; the refill after the sleep brings the bucket back to zero.
            return tokens >= 0 ? Effect.void : Effect.sleep(Duration.millis((-tokens * 1000) / bytesPerSecond))
          })
        return { bytesPerSecond, take }
      })
    )
