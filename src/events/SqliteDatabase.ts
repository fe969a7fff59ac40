/**
 * The embedded SQLite file behind the journal, snapshots and checkpoints: one better-sqlite3
 * connection per process, WAL mode, a busy timeout for other processes, and numbered migrations.
 */
import type Database from "better-sqlite3"
import { Context, Data, Effect, Layer } from "effect"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Worker } from "node:worker_threads"
import { keepIdleHeapHeld } from "../node/IdleHeap.js"
import { INLINE_CHECKPOINT_PAGES, openDatabase, type SqliteOptions } from "./SqliteFile.js"

export { INLINE_CHECKPOINT_PAGES, isBusy, openDatabase, type SqliteOptions, type Synchronous } from "./SqliteFile.js"

export class SqliteError extends Data.TaggedError("SqliteError")<{ readonly file: string; readonly reason: string }> {
  override get message() {
    return `sqlite ${this.file}: ${this.reason}`
  }
}

// Plain CommonJS so it runs as an eval'd worker both from sources (tests) and from dist. Once the WAL
// has been wholly checkpointed and has not grown for idleChecks looks, the thread truncates it (a
// writer in the middle of a commit makes that fail at once, and it tries again later) and stops.
const CHECKPOINTER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads")
const Database = require(workerData.driver)
const db = new Database(workerData.file, { timeout: workerData.busyTimeoutMs })
let timer
let lastLog = -1
let quiet = 0
const checkpoint = () => { try { return db.pragma("wal_checkpoint(PASSIVE)")[0] } catch { return undefined } }
const truncate = () => {
  try {
    db.pragma("busy_timeout = 0")
    return db.pragma("wal_checkpoint(TRUNCATE)")[0].busy === 0
  } catch { return false } finally { db.pragma("busy_timeout = " + workerData.busyTimeoutMs) }
}
const loop = () => {
  const state = checkpoint()
  const settled = state !== undefined && state.busy === 0 && state.log === state.checkpointed
  quiet = settled && state.log === lastLog ? quiet + 1 : 0
  lastLog = state === undefined ? -1 : state.log
  if (quiet >= workerData.idleChecks && truncate()) {
    db.close()
    parentPort.postMessage("idle")
    parentPort.close()
    return
  }
  timer = setTimeout(loop, workerData.intervalMs)
}
timer = setTimeout(loop, workerData.intervalMs)
parentPort.on("message", () => { clearTimeout(timer); checkpoint(); db.close(); parentPort.postMessage("closed"); parentPort.close() })
`

/** The WAL size at which the checkpointer thread starts, unless told otherwise. */
export const CHECKPOINTER_AFTER_WAL_BYTES = 4 * 1024 * 1024

/** How long the checkpointer thread stays once the WAL is checkpointed and idle, unless told otherwise. */
export const CHECKPOINTER_IDLE_STOP_MS = 30_000

const CHECKPOINT_INTERVAL_MS = 100

const startCheckpointer = (options: SqliteOptions): Worker => {
  const worker = new Worker(CHECKPOINTER_SOURCE, {
    eval: true,
    workerData: {
      driver: createRequire(import.meta.url).resolve("better-sqlite3"),
      file: path.resolve(options.file),
      busyTimeoutMs: options.busyTimeoutMs ?? 5_000,
      intervalMs: CHECKPOINT_INTERVAL_MS,
      idleChecks: Math.ceil((options.checkpointerIdleStopMs ?? CHECKPOINTER_IDLE_STOP_MS) / CHECKPOINT_INTERVAL_MS)
    }
  })
  worker.once("online", keepIdleHeapHeld)
  worker.unref()
  return worker
}

const stopCheckpointer = (worker: Worker) =>
  Effect.async<void>((resume) => {
    worker.once("message", () => resume(Effect.void))
    worker.once("exit", () => resume(Effect.void))
    worker.once("error", () => resume(Effect.void))
    worker.postMessage("stop")
  }).pipe(Effect.timeout("5 seconds"), Effect.ignore)

/**
 * The checkpointer thread, started once the WAL has grown past the threshold (its size is looked at
 * once a second, off the event loop), stopped when it has had nothing to do for a while (it truncates
 * the WAL first, so the next growth starts it again) and with the scope. Says whether it runs.
 */
const checkpointWhenWritten = (options: SqliteOptions) =>
  Effect.gen(function*() {
    const wal = `${path.resolve(options.file)}-wal`
    const threshold = options.checkpointerAfterWalBytes ?? CHECKPOINTER_AFTER_WAL_BYTES
    let worker: Worker | undefined
    let closed = false
    let look: ReturnType<typeof setInterval> | undefined
    const watch = () => {
      look = setInterval(() =>
        fs.stat(wal, (error, stats) => {
          if (error !== null || closed || worker !== undefined || stats.size < threshold) return
          clearInterval(look)
          const started = startCheckpointer(options)
          worker = started
          started.once("message", (message) => {
            if (message !== "idle" || closed) return
            worker = undefined
            watch()
          })
        }), 1_000)
      look.unref()
    }
    watch()
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        clearInterval(look)
        return worker === undefined ? Effect.void : stopCheckpointer(worker)
      })
    )
    return () => worker !== undefined
  })

export class SqliteDatabase extends Context.Tag("edge-net/SqliteDatabase")<
  SqliteDatabase,
  {
    readonly file: string
    readonly db: Database.Database
    readonly options: SqliteOptions
    /** Whether the background checkpointer thread has started (see `checkpointerAfterWalBytes`). */
    readonly checkpointing: () => boolean
  }
>() {
  static readonly layer = (options: SqliteOptions) =>
    Layer.scoped(
      SqliteDatabase,
      Effect.gen(function*() {
        const opened = yield* Effect.acquireRelease(
          Effect.try({
            try: () => {
              const db = openDatabase({ ...options, autoCheckpointPages: INLINE_CHECKPOINT_PAGES })
              // This thread's connection reads (WAL reads never wait) and writes only snapshots and
              // checkpoints. It must never sleep in SQLite's busy handler while the writer thread
              // holds the lock: that would stall the event loop. A busy write fails at once instead,
              // and its caller retries asynchronously or skips.
              db.pragma("busy_timeout = 0")
              return { file: options.file, db, options }
            },
            catch: (cause) =>
              new SqliteError({ file: options.file, reason: cause instanceof Error ? cause.message : String(cause) })
          }),
          ({ db }) => Effect.sync(() => db.close())
        )
        // Released before the connection closes: the last connection to close folds the WAL back in.
        const checkpointing = options.backgroundCheckpoints ?? true
          ? yield* checkpointWhenWritten(options)
          : () => false
        return { ...opened, checkpointing }
      })
    )
}
