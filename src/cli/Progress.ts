/**
 * Download progress on the terminal: a redrawn bar with bytes, rate and ETA on a TTY, one JSON line
 * per update with `--json` (for scripts), and nothing in between when stderr is a plain pipe.
 */

export interface ProgressUpdate {
  readonly label: string
  readonly bytesDone: number
  readonly bytesTotal: number
  readonly bytesPerSecond: number
  readonly etaSeconds: number | undefined
}

export const formatBytes = (bytes: number): string => {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`
}

const formatEta = (seconds: number | undefined) => {
  if (seconds === undefined || !Number.isFinite(seconds)) return "--:--"
  const whole = Math.max(0, Math.round(seconds))
  const minutes = Math.floor(whole / 60)
  return `${String(minutes).padStart(2, "0")}:${String(whole % 60).padStart(2, "0")}`
}

export const progressLine = (update: ProgressUpdate, width = 24): string => {
  const fraction = update.bytesTotal === 0 ? 1 : Math.min(1, update.bytesDone / update.bytesTotal)
  const filled = Math.round(fraction * width)
  const bar = "#".repeat(filled) + "-".repeat(width - filled)
  return `${update.label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(update.bytesDone)}/${formatBytes(update.bytesTotal)} ` +
    `${formatBytes(update.bytesPerSecond)}/s ETA ${formatEta(update.etaSeconds)}`
}

/** A progress sink for one command run: JSON lines on stdout, or a bar on stderr when it is a TTY. */
export const progressReporter = (json: boolean) => {
  const tty = process.stderr.isTTY === true
  let drawn = false
  return {
    update: (update: ProgressUpdate) => {
      if (json) {
        process.stdout.write(JSON.stringify({ event: "progress", ...update }) + "\n")
      } else if (tty) {
        process.stderr.write(`\r\x1b[2K${progressLine(update, Math.max(10, Math.min(40, (process.stderr.columns ?? 80) - 70)))}`)
        drawn = true
      }
    },
    /** Ends the bar's line so what follows starts on a fresh one. */
    done: () => {
      if (drawn) process.stderr.write("\n")
      drawn = false
    }
  }
}
