/**
 * The journal's last signed head, kept in a file beside the database (`journal.head`): a log whose
 * tail was cut off together with its signed heads still verifies on its own, but no longer reaches
 * the head recorded here. Written atomically (temp file, fsync, rename), off the commit path.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { writeFileAtomically, writeFileAtomicallySync } from "../node/AtomicFile.js"
import type { RecordedHead, SignedHead } from "./Journal.js"

/**
 * The file's JSON as a signed head, or undefined. Checked by hand rather than with a Schema: the
 * journal's writer thread reads the file too, and loads no Effect runtime.
 */
const decodeHeadFile = (text: string): SignedHead | undefined => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null) return undefined
  const { hash, position, publicKey, signature } = value as Record<string, unknown>
  return Number.isSafeInteger(position) && (position as number) >= 0 && typeof hash === "string" &&
      /^[0-9a-f]{64}$/.test(hash) && typeof publicKey === "string" && typeof signature === "string"
    ? { position: position as number, hash, publicKey, signature }
    : undefined
}

/** `<dir>/journal.db` -> `<dir>/journal.head`. */
export const headFileFor = (databaseFile: string): string => {
  const resolved = path.resolve(databaseFile)
  return path.join(path.dirname(resolved), `${path.basename(resolved, path.extname(resolved))}.head`)
}

export const readHeadFile = (file: string): RecordedHead => {
  let text: string
  try {
    text = fs.readFileSync(file, "utf8")
  } catch (error) {
    if (typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT") {
      return { _tag: "Missing" }
    }
    return { _tag: "Unreadable", reason: error instanceof Error ? error.message : String(error) }
  }
  const head = decodeHeadFile(text)
  return head !== undefined ? { _tag: "Recorded", head } : { _tag: "Unreadable", reason: "not a signed journal head" }
}

/** Writes `head` (mode 0600) atomically, so a reader sees the old head or the new one. */
export const writeHeadFileSync = (file: string, head: SignedHead): void =>
  writeFileAtomicallySync(file, JSON.stringify(head) + "\n", { mode: 0o600 })

/** The shortest time between two writes of the head file while commits keep coming. */
export const MIN_WRITE_INTERVAL_MS = 200

const writeHeadFile = (file: string, head: SignedHead): Promise<void> =>
  writeFileAtomically(file, JSON.stringify(head) + "\n", { mode: 0o600 })

/**
 * Keeps the head file up to date from a writer's commits: at most one write in flight, and only the
 * newest head is written when it lands (a burst of commits costs one or two fsyncs, not one each).
 * It replaces the recorded head only with one that extends it (`hashAt` its position is its hash): a
 * database cut short, or rewritten, must not erase the evidence of what it was.
 */
export const makeHeadFileWriter = (file: string, hashAt: (position: number) => string | undefined) => {
  const extendsRecorded = (head: SignedHead) => {
    const recorded = readHeadFile(file)
    if (recorded._tag === "Missing") return true
    if (recorded._tag === "Unreadable") return false
    return head.position >= recorded.head.position &&
      (recorded.head.position === 0 || hashAt(recorded.head.position) === recorded.head.hash)
  }

  let latest: SignedHead | undefined // the newest head not written yet
  let flushing: Promise<void> | undefined
  // Between two writes the writer rests a little, so a node under load pays an fsync a few times a
  // second rather than after every commit; `settled` cuts the rest short.
  let wake: (() => void) | undefined
  let hurry = false
  const rest = () =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, MIN_WRITE_INTERVAL_MS)
      wake = () => {
        clearTimeout(timer)
        resolve()
      }
    }).finally(() => (wake = undefined))

  const flush = async () => {
    await undefined // always asynchronous, so `flushing` is set before this runs on
    while (latest !== undefined) {
      const head = latest
      latest = undefined
      try {
        if (extendsRecorded(head)) await writeHeadFile(file, head)
      } catch {
        // The file is evidence, not state: a failed write is redone with the next commit's head.
      }
      if (!hurry) await rest()
    }
    flushing = undefined
  }

  return {
    /** Records the head after a commit; returns at once. */
    update: (head: SignedHead): void => {
      latest = head
      flushing ??= flush()
    },
    /** Resolves once the newest head is on disk. */
    settled: (): Promise<void> => {
      hurry = true
      wake?.()
      return flushing ?? Promise.resolve()
    }
  }
}

/** Records the database's head when no file exists yet (a journal from before head files, or a new one). */
export const initializeHeadFile = (file: string, head: SignedHead | undefined): void => {
  if (head === undefined || readHeadFile(file)._tag !== "Missing") return
  writeHeadFileSync(file, head)
}
