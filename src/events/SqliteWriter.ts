/**
 * The journal's writer thread. Commits (hashing, inserts, the head signature, SQLite's WAL writes
 * and any wait on another process's lock) run on a worker thread with its own connection, so the
 * node's event loop keeps serving while the disk works, and the two cores share the load.
 */
import { Effect } from "effect"
import * as path from "node:path"
import type { Worker } from "node:worker_threads"
import { moduleWorker } from "../node/ModuleWorker.js"
import type { WriteOutcome, WriteRequest, WriterMessage, WriterReply, WriterThreadData } from "./SqliteCommitter.js"

export {
  lastSignedHead,
  makeBatchCommitter,
  type WriteOutcome,
  type WriteRequest,
  type WriterThreadData,
  type Written,
  writtenHash
} from "./SqliteCommitter.js"

/** Starts the writer thread; closing the scope lets queued batches finish, then stops it. */
export const startWriter = (data: WriterThreadData) =>
  Effect.acquireRelease(
    Effect.async<Worker, Error>((resume) => {
      const workerData = { ...data, file: path.resolve(data.file) }
      const worker = moduleWorker(import.meta.url, "./SqliteWriterThread", { workerData })
      worker.once("message", (message) =>
        message === "ready"
          ? resume(Effect.succeed(worker))
          : resume(Effect.fail(new Error(String((message as { error?: string }).error ?? message)))))
      worker.once("error", (error) => resume(Effect.fail(error)))
    }),
    (worker) =>
      Effect.async<void>((resume) => {
        worker.once("exit", () => resume(Effect.void))
        worker.postMessage("close")
      }).pipe(Effect.timeout("10 seconds"), Effect.ignore)
  ).pipe(Effect.map(writerClient))

const writerClient = (worker: Worker) => {
  let nextId = 0
  const pending = new Map<number, (reply: WriterReply) => void>()
  let failure: Error | undefined
  const failAll = (error: Error) => {
    failure = error
    for (const [id, settle] of pending) settle({ id, error: error.message })
    pending.clear()
  }
  worker.on("message", (reply: WriterReply) => {
    const settle = pending.get(reply.id)
    pending.delete(reply.id)
    settle?.(reply)
  })
  worker.on("error", failAll)
  worker.on("exit", (code) => failAll(new Error(`journal writer thread exited (code ${code})`)))
  return {
    /** Commits one batch; batches are committed in the order they were sent. */
    commit: (requests: ReadonlyArray<WriteRequest>, recordedAt: string) =>
      Effect.async<ReadonlyArray<WriteOutcome>>((resume) => {
        if (failure !== undefined) return resume(Effect.die(failure))
        const id = nextId++
        pending.set(
          id,
          (reply) => resume("error" in reply ? Effect.die(new Error(reply.error)) : Effect.succeed(reply.outcomes))
        )
        worker.postMessage({ id, requests, recordedAt } satisfies WriterMessage)
      })
  }
}

// tsx is a devDependency: only the from-sources path (tests, `node --import tsx`) ever loads it.
