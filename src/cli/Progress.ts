/**
 * Progress on the terminal, of downloads (bytes, rate, ETA) and of multi-step work such as optimize
 * (step, done/total, elapsed): a redrawn bar on a TTY, one JSON line per update with `--json` (for
 * scripts), and nothing in between when stderr is a plain pipe.
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

const formatClock = (seconds: number | undefined) => {
  if (seconds === undefined || !Number.isFinite(seconds)) return "--:--"
  const whole = Math.max(0, Math.round(seconds))
  const minutes = Math.floor(whole / 60)
  return `${String(minutes).padStart(2, "0")}:${String(whole % 60).padStart(2, "0")}`
}

const bar = (done: number, total: number, width: number) => {
  const fraction = total === 0 ? 1 : Math.min(1, done / total)
  const filled = Math.round(fraction * width)
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`
}

export const progressLine = (update: ProgressUpdate, width = 24): string =>
  `${update.label} ${bar(update.bytesDone, update.bytesTotal, width)} ${formatBytes(update.bytesDone)}/${
    formatBytes(update.bytesTotal)
  } ` +
  `${formatBytes(update.bytesPerSecond)}/s ETA ${formatClock(update.etaSeconds)}`

export interface StepUpdate {
  readonly step: string
  readonly done: number
  readonly total: number
  readonly elapsedSeconds: number
}

export const stepLine = (update: StepUpdate, width = 24): string =>
  `${update.step.padEnd(11)} ${bar(update.done, update.total, width)} ${update.done}/${update.total} elapsed ${
    formatClock(update.elapsedSeconds)
  }`

/** Where updates go: a JSON line on stdout, or `line` redrawn on stderr when it is a TTY. */
const sink = <U extends object>(json: boolean, line: (update: U, width: number) => string, reservedColumns: number) => {
  const tty = process.stderr.isTTY === true
  let drawn = false
  return {
    update: (update: U) => {
      if (json) {
        process.stdout.write(JSON.stringify({ event: "progress", ...update }) + "\n")
      } else if (tty) {
        process.stderr.write(
          `\r\x1b[2K${line(update, Math.max(10, Math.min(40, (process.stderr.columns ?? 80) - reservedColumns)))}`
        )
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

/** Download progress for one command run: JSON lines on stdout, or a bar on stderr when it is a TTY. */
export const progressReporter = (json: boolean) => sink(json, progressLine, 70)

/**
 * Step progress for one command run, timed from its creation: `update(step, done, total)` redraws the
 * step's bar; a new step leaves the last one's bar on its own line.
 */
export const stepReporter = (json: boolean) => {
  const started = performance.now()
  const steps = sink(json, stepLine, 45)
  let current: string | undefined
  return {
    update: (step: string, done: number, total: number) => {
      if (step !== current) steps.done()
      current = step
      steps.update({ step, done, total, elapsedSeconds: Math.round(performance.now() - started) / 1000 })
    },
    done: steps.done
  }
}
