/** Entry point of the journal's writer thread (see SqliteWriter.ts): one connection, batches in order. */
import { parentPort, workerData } from "node:worker_threads"
import { openCommitter, type WriteRequest, type WriterThreadData } from "./SqliteCommitter.js"

const data = workerData as WriterThreadData
const port = parentPort!

try {
  const { commit, db, headFile } = openCommitter(data)
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
