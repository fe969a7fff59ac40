/**
 * The journal's writer thread. Commits (hashing, inserts, the head signature, SQLite's WAL writes
 * and any wait on another process's lock) run on a worker thread with its own connection, so the
 * node's event loop keeps serving while the disk works, and the two cores share the load. A quiet
 * journal commits on the event loop instead (see InlineCommits): a few small batches a second cost
 * it well under a millisecond each, and a node that appends now and then holds no thread at all.
 */
import { Duration, Effect } from "effect"
import * as path from "node:path"
import type { Worker } from "node:worker_threads"
import { moduleWorker } from "../node/ModuleWorker.js"
import type {
  OpenCommitter,
  WriteOutcome,
  WriteRequest,
  WriterMessage,
  WriterReply,
  WriterThreadData
} from "./SqliteCommitter.js"
import { openCommitter } from "./SqliteCommitter.js"
import { isBusy } from "./SqliteFile.js"

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

/**
 * When a batch is committed on the event loop rather than on the thread: while no thread runs, at
 * most `batchesPerSecond` batches a second, each taking less than `slowMs`. Past either, the thread
 * starts and takes every batch until it stops for want of work. So does a batch that finds the file
 * locked by another process: the event loop never waits on a lock.
 */
export interface InlineCommits {
  readonly batchesPerSecond: number
  readonly slowMs: number
}

export const DEFAULT_INLINE_COMMITS: InlineCommits = { batchesPerSecond: 20, slowMs: 5 }

interface WriterThread {
  readonly worker: Worker
  readonly pending: Map<number, (reply: WriterReply) => void>
  /** Asked to stop: its exit is expected. */
  stopping: boolean
}

/**
 * The journal's writer: with `inline`, the event loop's connection opens now (so a file it cannot
 * open fails the journal's start) and no thread starts until batches come fast; without, or if that
 * connection cannot open (another process holds the lock), the thread starts now. Closing the scope lets queued batches finish, then stops it. `idleStop`: null
 * keeps the thread, once started, for the scope's life.
 */
export const startWriter = (
  data: WriterThreadData,
  idleStop: Duration.DurationInput | null = DEFAULT_WRITER_IDLE_STOP,
  inline: InlineCommits | null = DEFAULT_INLINE_COMMITS
) =>
  Effect.acquireRelease(
    Effect.async<WriterHost, Error>((resume) => {
      const host = new WriterHost({ ...data, file: path.resolve(data.file) }, idleStop, inline)
      if (host.openInline()) return resume(Effect.succeed(host))
      host.start().then(() => resume(Effect.succeed(host)), (error: Error) => resume(Effect.fail(error)))
    }),
    (host) => Effect.promise(() => host.close()).pipe(Effect.timeout("10 seconds"), Effect.ignore)
  )

/**
 * Batches in the order they were sent, one writer at a time: the event loop commits only while no
 * thread runs or stops, and a thread starts only once the event loop's head file is written and its
 * connection closed, or once the last thread stopped.
 */
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
  /** The event loop's writer, while it commits. */
  private inline: OpenCommitter | undefined
  /** False from a thread's stop until it has exited: the event loop does not commit meanwhile. */
  private exited = true
  /** Counts the stops asked for: only the last one's exit lets the event loop commit again. */
  private stops = 0
  /** Batches committed on the event loop in the current second, which began at `windowStart`. */
  private windowStart = 0
  private windowBatches = 0

  constructor(
    private readonly data: WriterThreadData,
    idleStop: Duration.DurationInput | null,
    private readonly inlineCommits: InlineCommits | null
  ) {
    this.idleStopMs = idleStop === null ? undefined : Duration.toMillis(idleStop)
  }

  /** Opens the event loop's writer if commits may run there; false if they may not or it could not. */
  openInline(): boolean {
    if (this.inlineCommits === null) return false
    if (this.inline !== undefined) return true
    try {
      // No busy timeout: a lock held by another process sends the batch to the thread, which waits.
      this.inline = openCommitter(this.data, 0)
      return true
    } catch {
      return false
    }
  }

  /**
   * Commits on the event loop if it may: the outcomes, or undefined for the thread to commit the batch
   * (nothing was written). A failure of the commit itself is thrown, as the thread would answer it.
   */
  private commitInline(requests: ReadonlyArray<WriteRequest>, recordedAt: string) {
    if (this.inlineCommits === null || this.thread !== undefined || !this.exited) return undefined
    const now = performance.now()
    if (now - this.windowStart >= 1_000) {
      this.windowStart = now
      this.windowBatches = 0
    }
    if (this.windowBatches >= this.inlineCommits.batchesPerSecond || !this.openInline()) return undefined
    const inline = this.inline!
    let committed: ReturnType<OpenCommitter["commit"]>
    try {
      committed = inline.commit(requests, recordedAt)
    } catch (error) {
      if (!isBusy(error)) throw error
      this.leaveInline()
      return undefined
    }
    this.windowBatches++
    if (committed.head !== undefined) inline.headFile?.update(committed.head)
    if (performance.now() - now >= this.inlineCommits.slowMs) this.leaveInline()
    return committed.outcomes
  }

  /** Hands writing over to the thread: the event loop's head file is written and its connection closed first. */
  private leaveInline() {
    const leaving = this.inline
    if (leaving === undefined) return
    this.inline = undefined
    this.windowBatches = Number.POSITIVE_INFINITY // until the thread, started now, stops again
    this.stopped = this.stopped.then(() => leaving.headFile?.settled()).finally(() => {
      leaving.db.close()
    })
    void this.start().catch(() => undefined) // a failed start is tried again by the next batch
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
      try {
        const outcomes = this.commitInline(requests, recordedAt)
        if (outcomes !== undefined) return resume(Effect.succeed(outcomes))
      } catch (error) {
        return resume(Effect.die(error instanceof Error ? error : new Error(String(error))))
      }
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
    const inline = this.inline
    this.inline = undefined
    this.stop()
    if (inline === undefined) return this.stopped
    return Promise.all([this.stopped, inline.headFile?.settled()]).then(() => {
      inline.db.close()
    })
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
    this.exited = false
    const stop = ++this.stops
    this.stopped = thread.then(
      (running) =>
        new Promise<void>((resolve) => {
          running.stopping = true
          if (running.worker.threadId === -1) return resolve() // it has already ended (failed)
          running.worker.once("exit", () => resolve())
          running.worker.postMessage("close")
        }),
      () => undefined
    ).then(() => {
      // The event loop may commit again, unless a thread started (and stopped) since.
      if (stop !== this.stops || this.thread !== undefined) return
      this.exited = true
      this.windowBatches = 0
    })
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
