/**
 * A download's partial file on disk: the sparse `.part` file, the byte ranges of it already verified,
 * and the `.state.json` that records them (written only after the data it names is synced).
 */
import { Either, Schema } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { jsonDecoder } from "../domain/JsonText.js"
import { isAlive } from "./BlobIndex.js"

/** What the partial file needs to know of a download: what it will hold, and its pieces if known. */
export interface PartialTarget {
  readonly sha256: string
  readonly size: number
  readonly leaves?: ReadonlyArray<{ readonly offset: number; readonly length: number }> | undefined
}

export const partFileOf = (partialDir: string, sha256: string) => path.join(partialDir, `${sha256}.part`)
export const stateFileOf = (partialDir: string, sha256: string) => path.join(partialDir, `${sha256}.state.json`)

/**
 * Byte ranges of the `.part` file whose data is written (and, with leaves, verified piece by piece),
 * kept merged and sorted.
 */
export class Coverage {
  private ranges: Array<[number, number]> = []
  add(start: number, end: number) {
    if (end <= start) return
    let first = 0
    while (first < this.ranges.length && this.ranges[first]![1] < start) first++
    let last = first
    let mergedStart = start
    let mergedEnd = end
    while (last < this.ranges.length && this.ranges[last]![0] <= end) {
      mergedStart = Math.min(mergedStart, this.ranges[last]![0])
      mergedEnd = Math.max(mergedEnd, this.ranges[last]![1])
      last++
    }
    this.ranges.splice(first, last - first, [mergedStart, mergedEnd])
  }
  /** Where the verified run that contains `from` ends (`from` itself when it is not covered). */
  contiguousEnd(from: number) {
    for (const [start, end] of this.ranges) if (start <= from && from < end) return end
    return from
  }
  covers(start: number, end: number) {
    return this.ranges.some(([from, to]) => from <= start && end <= to)
  }
  gaps(size: number): Array<[number, number]> {
    const gaps: Array<[number, number]> = []
    let position = 0
    for (const [start, end] of this.ranges) {
      if (start > position) gaps.push([position, start])
      position = end
    }
    if (position < size) gaps.push([position, size])
    return gaps
  }
  get bytes() {
    return this.ranges.reduce((sum, [start, end]) => sum + end - start, 0)
  }
  snapshot(): Array<[number, number]> {
    return this.ranges.map(([start, end]) => [start, end])
  }
}

const Offset = Schema.Number.pipe(Schema.int(), Schema.nonNegative())
const PartialStateSchema = Schema.Struct({
  format: Schema.Literal(1),
  sha256: Schema.String,
  size: Offset,
  done: Schema.Array(Schema.Tuple(Offset, Offset))
})
export type PartialState = typeof PartialStateSchema.Type
const decodeState = jsonDecoder(PartialStateSchema)

/**
 * Opens the `.part` file and what an earlier run verified in it; without a state that matches the target
 * and a file of the right size, starts over with a fresh sparse file.
 */
export const openPartial = async (target: PartialTarget, partFile: string, stateFile: string) => {
  const state = await readState(stateFile, target)
  if (state !== undefined) {
    const handle = await fs.promises.open(partFile, "r+").catch(() => undefined)
    if (handle !== undefined) {
      const stat = await handle.stat()
      if (stat.size === target.size) {
        const recorded = new Coverage()
        for (const [start, end] of state.done) recorded.add(start, end)
        // With leaves only whole verified leaves count: a range from a run without them may split one.
        const coverage = target.leaves === undefined ? recorded : new Coverage()
        for (const leaf of target.leaves ?? []) {
          if (recorded.covers(leaf.offset, leaf.offset + leaf.length)) {
            coverage.add(leaf.offset, leaf.offset + leaf.length)
          }
        }
        return { handle, coverage }
      }
      await handle.close()
    }
  }
  await fs.promises.rm(stateFile, { force: true })
  const handle = await fs.promises.open(partFile, "w+")
  try {
    await handle.truncate(target.size)
  } catch (error) {
    await handle.close()
    throw error
  }
  return { handle, coverage: new Coverage() }
}

const readState = async (stateFile: string, target: PartialTarget): Promise<PartialState | undefined> => {
  try {
    // A state that does not decode, or describes another download, is no state: the download starts over.
    const decoded = decodeState(await fs.promises.readFile(stateFile, "utf8"), stateFile)
    if (Either.isLeft(decoded)) return undefined
    const parsed = decoded.right
    const rangesValid = parsed.done.every(([start, end]) => start < end && end <= target.size)
    return parsed.sha256 === target.sha256 && parsed.size === target.size && rangesValid ? parsed : undefined
  } catch {
    return undefined
  }
}

export const writeChunks = async (
  handle: fs.promises.FileHandle,
  chunks: ReadonlyArray<Uint8Array>,
  position: number
) => {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0)
  const written = (await handle.writev(chunks as Array<Uint8Array>, position)).bytesWritten
  // writev may stop short (signals, quotas); finish the rest from one copy, which is rare enough.
  if (written < total) {
    const rest = Buffer.concat(chunks as Array<Uint8Array>).subarray(written)
    for (let offset = 0; offset < rest.length;) {
      offset += (await handle.write(rest, offset, rest.length - offset, position + written + offset)).bytesWritten
    }
  }
}

export const removeQuietly = async (...files: ReadonlyArray<string>) => {
  for (const file of files) await fs.promises.rm(file, { force: true }).catch(() => undefined)
}

const heldHere = new Set<string>()

/**
 * Claims a download for this process: `<sha256>.lock` holds the owner's pid, created exclusively. A lock
 * left by a process that died (a killed pull) is taken over; a live owner's is an error naming it.
 */
export const lockDownload = (
  partialDir: string,
  sha256: string
): { readonly ownerPid?: number; readonly release?: () => void } => {
  fs.mkdirSync(partialDir, { recursive: true })
  const file = path.join(partialDir, `${sha256}.lock`)
  if (heldHere.has(file)) return { ownerPid: process.pid }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: "wx" })
      heldHere.add(file)
      return {
        release: () => {
          heldHere.delete(file)
          fs.rmSync(file, { force: true })
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
      const owner = Number(fs.readFileSync(file, "utf8"))
      if (Number.isSafeInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        return { ownerPid: owner }
      }
      fs.rmSync(file, { force: true })
    }
  }
  return { ownerPid: -1 }
}
