/**
 * Entry point of a download's hashing thread (PartWriter.ts): it reads the `.part` file's verified
 * prefix as it grows (the main thread says how far, after each write), and feeds the whole-file SHA-256
 * and, when the target came without its leaves, the UnixFS layout. Reading back from the page cache
 * costs a copy; hashing on the main thread cost the time the network and the disk needed, since two
 * passes of SHA-256 over a large file take longer than loopback takes to deliver it.
 */
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import { parentPort, workerData } from "node:worker_threads"
import type { UnixFsLayout } from "./UnixFs.js"
import { UnixFsBuilder } from "./UnixFs.js"

export interface PrefixHashData {
  readonly file: string
  readonly size: number
  /** Whether to build the UnixFS layout too. */
  readonly layout: boolean
}

/** To the thread: the verified prefix now ends at `verifiedUpTo`. */
export interface PrefixHashMessage {
  readonly verifiedUpTo: number
}

/** From the thread, once: the whole file's hash and layout, or why it could not read them. */
export type PrefixHashReply =
  | { readonly sha256: string; readonly layout: UnixFsLayout | undefined }
  | { readonly error: string }

const READ_BYTES = 4 * 1024 * 1024
const port = parentPort
if (port === null) throw new Error("the prefix hash thread runs in a Node worker thread")
const { file, layout: buildLayout, size } = workerData as PrefixHashData

const hash = crypto.createHash("sha256")
const layout = buildLayout ? UnixFsBuilder.make() : undefined
const buffer = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(1, size)))
const fd = fs.openSync(file, "r")
let hashedUpTo = 0
let verifiedUpTo = 0

const finish = (reply: PrefixHashReply) => {
  fs.closeSync(fd)
  port.postMessage(reply)
  port.close()
}

const advance = () => {
  try {
    while (hashedUpTo < verifiedUpTo) {
      const bytesRead = fs.readSync(fd, buffer, 0, Math.min(buffer.length, verifiedUpTo - hashedUpTo), hashedUpTo)
      if (bytesRead === 0) return finish({ error: "the partial file is shorter than expected" })
      const bytes = buffer.subarray(0, bytesRead)
      hash.update(bytes)
      layout?.update(bytes)
      hashedUpTo += bytesRead
    }
    if (hashedUpTo === size) finish({ sha256: hash.digest("hex"), layout: layout?.finish() })
  } catch (error) {
    finish({ error: error instanceof Error ? error.message : String(error) })
  }
}

port.on("message", (message: PrefixHashMessage) => {
  if (message.verifiedUpTo <= verifiedUpTo) return
  verifiedUpTo = Math.min(message.verifiedUpTo, size)
  advance()
})
if (size === 0) advance()
