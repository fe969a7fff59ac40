/**
 * What a download still has to fetch, cut into work units: runs of whole pieces (or plain byte ranges
 * without a piece list) that one worker fetches from one source, sized so the workers share the file.
 */
import type { DownloadTarget } from "./Downloader.js"
import type { Coverage } from "./PartialFile.js"

const MAX_UNIT_BYTES = 16 * 1024 * 1024
const MIN_UNIT_BYTES = 64 * 1024

/** A run of the file one worker fetches from one source; `position` moves as its bytes are written. */
export interface WorkUnit {
  readonly end: number
  position: number
  /** With leaves: the next leaf to fetch, and one past the unit's last. */
  nextLeaf: number
  readonly leafEnd: number
}

/** Splits what is still missing into units: runs of whole leaves, or plain byte ranges without leaves. */
export const planUnits = (target: DownloadTarget, coverage: Coverage, parallel: number): Array<WorkUnit> => {
  const units: Array<WorkUnit> = []
  const missingBytes = target.size - coverage.bytes
  const unitBytes = Math.min(MAX_UNIT_BYTES, Math.max(MIN_UNIT_BYTES, Math.ceil(missingBytes / parallel)))
  const leaves = target.leaves
  if (leaves === undefined) {
    for (const [gapStart, gapEnd] of coverage.gaps(target.size)) {
      for (let position = gapStart; position < gapEnd; position += unitBytes) {
        units.push({ position, end: Math.min(gapEnd, position + unitBytes), nextLeaf: 0, leafEnd: 0 })
      }
    }
    return units
  }
  let current: { -readonly [K in keyof WorkUnit]: WorkUnit[K] } | undefined
  for (const [index, leaf] of leaves.entries()) {
    if (coverage.covers(leaf.offset, leaf.offset + leaf.length)) {
      current = undefined
      continue
    }
    if (current !== undefined && current.end - current.position + leaf.length <= unitBytes) {
      current.end = leaf.offset + leaf.length
      current.leafEnd = index + 1
    } else {
      current = { position: leaf.offset, end: leaf.offset + leaf.length, nextLeaf: index, leafEnd: index + 1 }
      units.push(current)
    }
  }
  return units
}
