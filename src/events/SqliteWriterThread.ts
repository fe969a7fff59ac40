/** Entry point of the journal's writer thread (see SqliteWriter.ts): one connection, batches in order. */
import { parentPort, workerData } from "node:worker_threads"
import { keyPairFromSeed } from "../content/NodeKey.js"
import { INLINE_CHECKPOINT_PAGES, openDatabase, type Synchronous } from "./SqliteDatabase.js"
import { makeBatchCommitter, type WriteRequest, type WriterThreadData } from "./SqliteWriter.js"

const data = workerData as WriterThreadData
const port = parentPort!

try {
  const db = openDatabase({
    file: data.file, busyTimeoutMs: data.busyTimeoutMs, synchronous: data.synchronous as Synchronous, autoCheckpointPages: INLINE_CHECKPOINT_PAGES
  })
  const commit = makeBatchCommitter(db, keyPairFromSeed(data.seed), data.maxPayloadBytes)
  port.on("message", (message: "close" | { id: number; requests: ReadonlyArray<WriteRequest>; recordedAt: string }) => {
    if (message === "close") {
      db.close()
      port.close()
      return
    }
    try {
      port.postMessage({ id: message.id, outcomes: commit(message.requests, message.recordedAt) })
    } catch (error) {
      port.postMessage({ id: message.id, error: error instanceof Error ? error.message : String(error) })
    }
  })
  port.postMessage("ready")
} catch (error) {
  port.postMessage({ error: error instanceof Error ? error.message : String(error) })
}
