/** Entry point of the journal's writer thread (see SqliteWriter.ts): one connection, batches in order. */
import { parentPort, workerData } from "node:worker_threads"
import { keyPairFromSeed } from "../content/NodeKeyPair.js"
import { initializeHeadFile, makeHeadFileWriter } from "./JournalHeadFile.js"
import { lastSignedHead, makeBatchCommitter, type WriteRequest, type WriterThreadData } from "./SqliteCommitter.js"
import { INLINE_CHECKPOINT_PAGES, openDatabase, type Synchronous } from "./SqliteFile.js"

const data = workerData as WriterThreadData
const port = parentPort!

try {
  const db = openDatabase({
    file: data.file,
    busyTimeoutMs: data.busyTimeoutMs,
    synchronous: data.synchronous as Synchronous,
    autoCheckpointPages: INLINE_CHECKPOINT_PAGES
  })
  const commit = makeBatchCommitter(db, keyPairFromSeed(data.seed), data.maxPayloadBytes)
  const hashAt = db.prepare<[number], string>("SELECT hash FROM events WHERE position = ?").pluck()
  const headFile = data.headFile === null
    ? undefined
    : makeHeadFileWriter(data.headFile, (position) => hashAt.get(position))
  if (data.headFile !== null) initializeHeadFile(data.headFile, lastSignedHead(db))
  port.on("message", (message: "close" | { id: number; requests: ReadonlyArray<WriteRequest>; recordedAt: string }) => {
    if (message === "close") {
      void (headFile?.settled() ?? Promise.resolve()).finally(() => {
        db.close()
        port.close()
      })
      return
    }
    try {
      const { head, outcomes } = commit(message.requests, message.recordedAt)
      port.postMessage({ id: message.id, outcomes })
      // After the reply: the callers go on while the head file is written in the background.
      if (head !== undefined) headFile?.update(head)
    } catch (error) {
      port.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) })
    }
  })
  port.postMessage("ready")
} catch (error) {
  port.postMessage({ error: error instanceof Error ? error.message : String(error) })
}
