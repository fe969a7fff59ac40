/**
 * The journal's writer thread. Commits (hashing, inserts, the head signature, SQLite's WAL writes
 * and any wait on another process's lock) run on a worker thread with its own connection, so the
 * node's event loop keeps serving while the disk works, and the two cores share the load.
 */
import { Duration, Effect } from "effect"
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

/**
 * How long the thread may sit without a batch before it stops; the next batch starts another (about
 * 60 ms). An idle node then does not keep a thread: a Node worker holds about 16 MB of its own, of which
 * about half goes back to the system when it stops (its heap; what the allocator keeps stays).
 */
export const DEFAULT_WRITER_IDLE_STOP = Duration.seconds(30)

interface WriterThread {
  readonly worker: Worker
  readonly pending: Map<number, (reply: WriterReply) => void>
  /** Asked to stop: its exit is expected. */
  stopping: boolean
}

/**
 * Starts the writer thread (so a file it cannot open fails the journal's start); closing the scope
 * lets queued batches finish, then stops it. `idleStop`: null keeps the thread for the scope's life.
 */
export const startWriter = (
  data: WriterThreadData,
  idleStop: Duration.DurationInput | null = DEFAULT_WRITER_IDLE_STOP
) =>
  Effect.acquireRelease(
    Effect.async<WriterHost, Error>((resume) => {
      const host = new WriterHost({ ...data, file: path.resolve(data.file) }, idleStop)
      host.start().then(() => resume(Effect.succeed(host)), (error: Error) => resume(Effect.fail(error)))
    }),
    (host) => Effect.promise(() => host.close()).pipe(Effect.timeout("10 seconds"), Effect.ignore)
  )

/** Batches in the order they were sent, one thread at a time: a new one starts only once the last stopped. */
class WriterHost {
  private nextId = 0
  private thread: Promise<WriterThread> | undefined
  /** Settles when the last thread asked to stop has exited. */
  private stopped: Promise<void> = Promise.resolve()
  /** Batches sent (or waiting for a thread) and not yet answered. */
  private unanswered = 0
  private idleTimer: ReturnType<typeof setTimeout> | undefined
  /** Set when a thread failed on its own: every later batch fails with it, as the journal cannot go on. */
  private failure: Error | undefined
  private readonly idleStopMs: number | undefined

  constructor(private readonly data: WriterThreadData, idleStop: Duration.DurationInput | null) {
    this.idleStopMs = idleStop === null ? undefined : Duration.toMillis(idleStop)
  }

  /** Whether a thread runs (or starts) now. */
  get running(): boolean {
    return this.thread !== undefined
  }

  start(): Promise<WriterThread> {
    if (this.thread !== undefined) return this.thread
    const thread = this.stopped.then(() => this.spawn())
    this.thread = thread
    // A thread that could not start is tried again by the next batch.
    thread.catch(() => {
      if (this.thread === thread) this.thread = undefined
    })
    return thread
  }

  /** Commits one batch; batches are committed in the order they were sent. */
  commit(requests: ReadonlyArray<WriteRequest>, recordedAt: string): Effect.Effect<ReadonlyArray<WriteOutcome>> {
    return Effect.async((resume) => {
      if (this.failure !== undefined) return resume(Effect.die(this.failure))
      clearTimeout(this.idleTimer)
      this.unanswered++
      const settle = (reply: WriterReply) => {
        if (--this.unanswered === 0) this.stopWhenIdle()
        resume("error" in reply ? Effect.die(new Error(reply.error)) : Effect.succeed(reply.outcomes))
      }
      // Each batch waits on the same start, and callbacks run in the order they were added: in order.
      this.start().then((thread) => {
        if (this.failure !== undefined) return settle({ id: -1, error: this.failure.message })
        const id = this.nextId++
        thread.pending.set(id, settle)
        thread.worker.postMessage({ id, requests, recordedAt } satisfies WriterMessage)
      }, (error: Error) => settle({ id: -1, error: error.message }))
    })
  }

  /** Stops the thread once queued batches are written (the thread answers them before it reads "close"). */
  close(): Promise<void> {
    clearTimeout(this.idleTimer)
    this.stop()
    return this.stopped
  }

  private stopWhenIdle() {
    if (this.idleStopMs === undefined) return
    this.idleTimer = setTimeout(() => {
      if (this.unanswered === 0) this.stop()
    }, this.idleStopMs)
    this.idleTimer.unref()
  }

  private stop() {
    const thread = this.thread
    if (thread === undefined) return
    this.thread = undefined
    this.stopped = thread.then(
      (running) =>
        new Promise<void>((resolve) => {
          running.stopping = true
          if (running.worker.threadId === -1) return resolve() // it has already ended (failed)
          running.worker.once("exit", () => resolve())
          running.worker.postMessage("close")
        }),
      () => undefined
    )
  }

  private spawn(): Promise<WriterThread> {
    return new Promise((resolve, reject) => {
      const worker = moduleWorker(import.meta.url, "./SqliteWriterThread", { workerData: this.data })
      const thread: WriterThread = { worker, pending: new Map(), stopping: false }
      const failAll = (error: Error) => {
        if (!thread.stopping) this.failure = error
        for (const [id, settle] of thread.pending) settle({ id, error: error.message })
        thread.pending.clear()
      }
      worker.once("message", (message) => {
        if (message !== "ready") {
          return reject(new Error(String((message as { error?: string }).error ?? message)))
        }
        worker.on("message", (reply: WriterReply) => {
          const settle = thread.pending.get(reply.id)
          thread.pending.delete(reply.id)
          settle?.(reply)
        })
        worker.on("error", failAll)
        worker.on("exit", (code) => failAll(new Error(`journal writer thread exited (code ${code})`)))
        resolve(thread)
      })
      worker.once("error", reject)
    })
  }
}

// tsx is a devDependency: only the from-sources path (tests, `node --import tsx`) ever loads it.
