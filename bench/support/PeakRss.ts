/**
 * Peak resident memory of one figure: Linux keeps a process's high-water mark (VmHWM) and lets the
 * process reset it to the current RSS (writing 5 to /proc/PID/clear_refs), so a figure's peak is read
 * after a reset at its start, in this process or in a child it started.
 */
import { execFile } from "node:child_process"
import * as fs from "node:fs"

/** Resets the high-water mark of `pid` (this process by default) to its current RSS. */
export const resetPeakRss = (pid: number | "self" = "self"): void => fs.writeFileSync(`/proc/${pid}/clear_refs`, "5")

/** The peak RSS of `pid` (this process by default) since its last reset, in MB. */
export const peakRssMb = (pid: number | "self" = "self"): number => {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kilobytes = /VmHWM:\s+(\d+) kB/.exec(status)
  if (kilobytes === null) throw new Error(`/proc/${pid}/status has no VmHWM`)
  return Number(kilobytes[1]) / 1024
}

/** Runs `work` and answers its peak RSS in this process, in MB. */
export const peakRssOf = async (work: () => unknown | Promise<unknown>): Promise<number> => {
  resetPeakRss()
  await work()
  return peakRssMb()
}

/** A command's peak RSS, in MB, through GNU time (the command runs to its end; a failure throws). */
export const commandPeakRssMb = (command: string, args: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve, reject) =>
    execFile("/usr/bin/time", ["-f", "%M", command, ...args], (error, _stdout, stderr) => {
      const kilobytes = Number(stderr.trim().split("\n").at(-1))
      if (error !== null || !Number.isFinite(kilobytes)) reject(error ?? new Error(`no peak RSS from ${command}`))
      else resolve(kilobytes / 1024)
    })
  )
