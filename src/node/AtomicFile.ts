/**
 * Durable, all-or-nothing file writes: a temporary file beside the target, written and fsynced, renamed
 * over the target, then the directory fsynced, so after a crash a reader finds the old content or the new.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"

export interface AtomicWriteOptions {
  /** Permissions of a new file (the target takes the temporary file's), e.g. 0o600 for a key. */
  readonly mode?: number | undefined
}

/** What a file is written with. */
export type Contents = string | Uint8Array

/** A name beside `file` no other writer (process, thread or concurrent call) picks. */
export const temporaryFor = (file: string) => `${file}.${process.pid}.${crypto.randomBytes(6).toString("hex")}.tmp`

// Some platforms and file systems cannot open or fsync a directory; there the rename is as durable as it gets.
const unsupported = new Set(["EISDIR", "EPERM", "EINVAL", "EACCES", "ENOTSUP"])
const isUnsupported = (error: unknown) => unsupported.has((error as NodeJS.ErrnoException).code ?? "")

/** Makes the directory's entries (a rename into it) durable. */
export const syncDirectorySync = (directory: string): void => {
  let descriptor: number
  try {
    descriptor = fs.openSync(directory, "r")
  } catch (error) {
    if (isUnsupported(error)) return
    throw error
  }
  try {
    fs.fsyncSync(descriptor)
  } catch (error) {
    if (!isUnsupported(error)) throw error
  } finally {
    fs.closeSync(descriptor)
  }
}

export const syncDirectory = async (directory: string): Promise<void> => {
  let handle: fs.promises.FileHandle
  try {
    handle = await fs.promises.open(directory, "r")
  } catch (error) {
    if (isUnsupported(error)) return
    throw error
  }
  try {
    await handle.sync()
  } catch (error) {
    if (!isUnsupported(error)) throw error
  } finally {
    await handle.close()
  }
}

/**
 * Renames a complete, already synced file over `target` (same file system) and syncs the target's
 * directory: the step that makes a file visible, for callers that verify a file before it may be seen.
 */
export const moveIntoPlaceSync = (source: string, target: string): void => {
  fs.renameSync(source, target)
  syncDirectorySync(path.dirname(target))
}

export const moveIntoPlace = async (source: string, target: string): Promise<void> => {
  await fs.promises.rename(source, target)
  await syncDirectory(path.dirname(target))
}

/** Writes `file` whole or not at all; on failure the target is untouched and no temporary file is left. */
export const writeFileAtomicallySync = (file: string, contents: Contents, options: AtomicWriteOptions = {}): void => {
  const temporary = temporaryFor(file)
  try {
    const descriptor = fs.openSync(temporary, "wx", options.mode ?? 0o666)
    try {
      fs.writeFileSync(descriptor, contents)
      fs.fsyncSync(descriptor)
    } finally {
      fs.closeSync(descriptor)
    }
    moveIntoPlaceSync(temporary, file)
  } catch (error) {
    fs.rmSync(temporary, { force: true })
    throw error
  }
}

/**
 * Writes `file` whole or not at all, from `contents` or from a function that writes through the
 * temporary file's handle; on failure the target is untouched and no temporary file is left.
 */
export const writeFileAtomically = async (
  file: string,
  contents: Contents | ((handle: fs.promises.FileHandle) => Promise<void>),
  options: AtomicWriteOptions = {}
): Promise<void> => {
  const temporary = temporaryFor(file)
  try {
    const handle = await fs.promises.open(temporary, "wx", options.mode ?? 0o666)
    try {
      if (typeof contents === "function") await contents(handle)
      else await handle.writeFile(contents)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await moveIntoPlace(temporary, file)
  } catch (error) {
    await fs.promises.rm(temporary, { force: true })
    throw error
  }
}
